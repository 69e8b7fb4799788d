import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { elementText, findElement } from "./xml-read.ts";

describe("libvirt XML reading", () => {
  it("finds elements, attributes, self-closing tags and text; not a longer tag name", () => {
    const xml = `<domainCapabilities><features><sevx/><sev supported='yes'><cbitpos>51</cbitpos>
      <reducedPhysBits>1</reducedPhysBits></sev><empty/><a b="x&amp;y"/></features></domainCapabilities>`;
    assert.deepEqual(findElement(xml, "sev")?.attrs, { supported: "yes" });
    assert.equal(elementText(xml, "cbitpos"), "51");
    assert.deepEqual(findElement(xml, "empty"), { attrs: {}, inner: "" });
    assert.deepEqual(findElement(xml, "a")?.attrs, { b: "x&y" });
    assert.equal(findElement(xml, "se"), undefined, "a prefix of another tag's name is not that tag");
    assert.equal(findElement("<cv:vm id='1'>x</cv:vm>", "cv:vm")?.inner, "x");
    assert.equal(findElement("<sev\n  supported='no'>", "sev")?.attrs["supported"], "no");
    assert.equal(findElement("<sev supported='yes'", "sev"), undefined, "cut short: no element");
    assert.equal(findElement("<sev>unclosed", "sev")?.inner, "", "no closing tag: empty inner");
  });

  // A backtracking pattern took O(n²) on this shape; 400,000 openers would not finish within the timeout.
  it("reads hostile input with many unclosed openers in linear time", { timeout: 10_000 }, () => {
    const hostile = "<sev ".repeat(400_000);
    assert.equal(findElement(hostile, "sev"), undefined);
    assert.equal(elementText(`${"<sev a='".repeat(100_000)}`, "sev"), undefined);
    const many = `${"<sevx ".repeat(200_000)}<sev>ok</sev>`;
    assert.equal(elementText(many, "sev"), "ok", "200,000 longer names skipped, each looked at once");
  });
});

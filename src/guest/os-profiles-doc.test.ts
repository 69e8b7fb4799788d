import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { GUEST_OS_PROFILES } from "./os-profiles.ts";
import { renderGuestOsProfiles } from "./os-profiles-doc.ts";

describe("docs/guest-os-profiles.md", () => {
  it("is the guest OS profile table as rendered now (run `npm run docs` after editing the table)", () => {
    const doc = readFileSync(new URL("../../docs/guest-os-profiles.md", import.meta.url), "utf8");
    assert.equal(doc, renderGuestOsProfiles());
    for (const p of GUEST_OS_PROFILES) assert.ok(doc.includes(`| \`${p.id}\` |`), p.id);
  });
});

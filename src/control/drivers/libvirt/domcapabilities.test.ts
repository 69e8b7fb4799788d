import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { isCiphervisorError } from "../../../errors.ts";
import { powerState } from "./domain-state.ts";
import { parseDomCapabilities, parseNodeSevInfo, toHostCapabilities } from "./domcapabilities.ts";

const fixture = (name: string) =>
  readFileSync(new URL(`../../../../test/fixtures/libvirt/${name}`, import.meta.url), "utf8");

describe("libvirt domcapabilities", () => {
  it("reads <sev supported='yes'> of a Rome host into HostCapabilities", () => {
    const sev = parseDomCapabilities(fixture("domcapabilities-rome-sev.xml"));
    assert.deepEqual(sev, {
      supported: true,
      cbitpos: 47,
      reducedPhysBits: 1,
      maxGuests: 509,
      maxESGuests: 99,
      cpuModel: "EPYC-Rome",
    });
    const node = parseNodeSevInfo(fixture("nodesevinfo-rome.txt"));
    const caps = toHostCapabilities("rome-lv", sev, { sev: 2, sevEs: 1 }, node);
    assert.equal(caps.generation, "rome");
    assert.equal(caps.sevSupported, true);
    assert.equal(caps.sevEsSupported, true);
    assert.equal(caps.sevState, "working");
    assert.equal(caps.minSevAsid, 100);
    assert.deepEqual(caps.pools.sev, { first: 100, last: 608, size: 509, used: 2, free: 507 });
    assert.deepEqual(caps.pools.sevEs, { first: 1, last: 99, size: 99, used: 1, free: 98 });
    assert.deepEqual(caps.firmware, { apiMajor: 0, apiMinor: 24, build: 15 });
    assert.equal(caps.pdh, "UERIAAAAAAA=");
    assert.equal(caps.cpu0Id, "0a1b2c3d");
  });

  it("a host without <sev> has SEV unsupported, with the reason", () => {
    const sev = parseDomCapabilities(fixture("domcapabilities-no-sev.xml"));
    assert.equal(sev.supported, false);
    assert.match(sev.reason ?? "", /no <sev> feature/);
    const caps = toHostCapabilities("intel-1", sev, { sev: 0, sevEs: 0 });
    assert.equal(caps.sevSupported, false);
    assert.equal(caps.sevEsSupported, false);
    assert.equal(caps.sevState, "uninitialized");
    assert.match(caps.sevEsUnavailableReason ?? "", /no <sev>/);
    const no = parseDomCapabilities(
      "<domainCapabilities><features><sev supported='no'/></features></domainCapabilities>",
    );
    assert.equal(no.supported, false);
  });

  it("infers the generation from the numbers when libvirt names no EPYC model", () => {
    const at = (cbitpos: number, maxGuests: number, maxESGuests: number) =>
      toHostCapabilities(
        "h",
        { supported: true, cbitpos, reducedPhysBits: 1, maxGuests, maxESGuests },
        { sev: 0, sevEs: 0 },
      ).generation;
    assert.equal(at(47, 15, 0), "naples");
    assert.equal(at(47, 410, 99), "rome");
    assert.equal(at(51, 410, 99), "milan");
    assert.equal(at(51, 806, 200), "genoa");
  });

  it("rejects what is not domain capabilities, or a malformed <sev>, as MALFORMED", () => {
    for (const xml of [
      "<capabilities/>",
      "<domainCapabilities><sev supported='yes'><cbitpos>x</cbitpos><reducedPhysBits>1</reducedPhysBits></sev></domainCapabilities>",
      "<domainCapabilities><sev supported='yes'><reducedPhysBits>1</reducedPhysBits></sev></domainCapabilities>",
    ]) {
      assert.throws(
        () => parseDomCapabilities(xml),
        (e) => isCiphervisorError(e, "MALFORMED"),
      );
    }
  });

  it("maps domstate --reason to power states", () => {
    assert.equal(powerState("running (booted)").power, "running");
    assert.equal(powerState("shut off (unknown)").power, "defined");
    assert.equal(powerState("shut off (destroyed)").power, "stopped");
    assert.equal(powerState("shut off (saved)").power, "suspended");
    assert.equal(powerState("paused (user)").power, "paused");
    assert.equal(powerState("crashed (panicked)").power, "crashed");
  });
});

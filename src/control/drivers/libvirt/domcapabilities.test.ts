import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { isCiphervisorError } from "../../../errors.ts";
import { powerState } from "./domain-state.ts";
import {
  inferGeneration,
  parseDomCapabilities,
  parseNodeSevInfo,
  toHostCapabilities,
} from "./domcapabilities.ts";

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

  it("a host without <sev> (here an Intel host model) has SEV unsupported, with the reason, and an unknown generation", () => {
    const sev = parseDomCapabilities(fixture("domcapabilities-no-sev.xml"));
    assert.equal(sev.supported, false);
    assert.equal(sev.cpuModel, "Skylake-Server-IBRS");
    assert.match(sev.reason ?? "", /no <sev> feature/);
    const caps = toHostCapabilities("intel-1", sev, { sev: 0, sevEs: 0 });
    assert.equal(caps.generation, "unknown");
    assert.equal(caps.family, "unknown CPU generation, no SEV; libvirt CPU model Skylake-Server-IBRS");
    assert.equal(caps.sevSupported, false);
    assert.equal(caps.sevEsSupported, false);
    assert.equal(caps.sevState, "uninitialized");
    assert.match(caps.sevEsUnavailableReason ?? "", /no <sev>/);
    assert.equal(caps.pools.sev.size, 0);
    assert.equal(caps.pools.sevEs.size, 0);
    assert.equal(caps.maxSevGuests + caps.maxSevEsGuests, 0);
    const no = parseDomCapabilities(
      "<domainCapabilities><features><sev supported='no'/></features></domainCapabilities>",
    );
    assert.equal(no.supported, false);
  });

  it("names the generation from QEMU's CPU model, Turin included (its SEV numbers equal Genoa's)", () => {
    const base = { supported: true, cbitpos: 51, reducedPhysBits: 1, maxGuests: 1006, maxESGuests: 0 };
    const cases: [string | undefined, string][] = [
      ["EPYC-Turin", "turin"],
      ["EPYC-Turin-v1", "turin"],
      ["EPYC-Genoa", "genoa"],
      ["EPYC-Milan-v2", "milan"],
      [undefined, "genoa"],
    ];
    for (const [cpuModel, generation] of cases) {
      assert.equal(
        inferGeneration({ ...base, ...(cpuModel ? { cpuModel } : {}) }),
        generation,
        String(cpuModel),
      );
    }
  });

  it("never guesses a generation without SEV: not naples for a bare answer, not rome for an EPYC-Rome host model", () => {
    const bare = parseDomCapabilities("<domainCapabilities><features/></domainCapabilities>");
    assert.equal(inferGeneration(bare), "unknown");
    assert.equal(
      toHostCapabilities("h", bare, { sev: 0, sevEs: 0 }).family,
      "unknown CPU generation, no SEV",
    );
    // SEV off in the BIOS of an EPYC: libvirt still names the nearest CPU model, but reports <sev supported='no'>.
    const off = parseDomCapabilities(
      `<domainCapabilities><cpu><mode name='host-model' supported='yes'><model fallback='forbid'>EPYC-Rome</model>
       <vendor>AMD</vendor></mode></cpu><features><sev supported='no'/></features></domainCapabilities>`,
    );
    assert.equal(off.cpuModel, "EPYC-Rome");
    const caps = toHostCapabilities("epyc-sev-off", off, { sev: 0, sevEs: 0 });
    assert.equal(caps.generation, "unknown");
    assert.deepEqual([caps.pools.sev.size, caps.pools.sevEs.size], [0, 0]);
    // What the libvirt driver passes for a connection without domain capabilities (libvirt's test driver).
    const none = { supported: false, cbitpos: 0, reducedPhysBits: 0, maxGuests: 0, maxESGuests: 0 };
    assert.equal(inferGeneration(none), "unknown");
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

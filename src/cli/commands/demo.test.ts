import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { memoryIo } from "../io.ts";
import { main } from "../main.ts";

async function run(...argv: string[]) {
  const io = memoryIo();
  const code = await main(argv, io);
  return { code, out: io.stdout, err: io.stderr };
}

interface Doc {
  mode: string;
  canaries: { registers: string[]; memory: string[] };
  exposedByGuest: string[];
  hypervisorView: { saveAreas: string[]; ghcb: string[]; memory: string[] };
  hostWrite?: { refused: boolean; unchanged: boolean; fault?: { code: string; errorCode: string } };
}

/** Searches the hex dumps for a canary at any byte offset, either byte order — what a reader of the JSON would do. */
function visible(doc: Doc, canary: string): boolean {
  const le = Buffer.from(canary, "hex").reverse().toString("hex");
  const dumps = [...doc.hypervisorView.saveAreas, ...doc.hypervisorView.ghcb, ...doc.hypervisorView.memory];
  return dumps.some((d) => {
    for (const needle of [le, canary]) {
      for (let at = d.indexOf(needle); at >= 0; at = d.indexOf(needle, at + 1)) if (at % 2 === 0) return true;
    }
    return false;
  });
}

describe("ciphervisor demo hypervisor-view", () => {
  it("--json prints the issue's document: canaries, what the guest exposed, every byte the hypervisor could read", async () => {
    const { code, out, err } = await run(
      "demo",
      "hypervisor-view",
      "--mode",
      "sev-es",
      "--exits",
      "6",
      "--json",
    );
    assert.equal(code, 0, err);
    const doc = JSON.parse(out) as Doc;
    // Streamed: the per-exit dumps first, the members known only at the end after them (canary-json.ts).
    assert.deepEqual(Object.keys(doc), ["mode", "hypervisorView", "canaries", "exposedByGuest"]);
    assert.deepEqual(Object.keys(doc.canaries), ["registers", "memory"]);
    assert.deepEqual(Object.keys(doc.hypervisorView), ["saveAreas", "ghcb", "memory"]);
    assert.equal(doc.mode, "sev-es");
    assert.ok(doc.canaries.registers.length >= 6 * 14);
    assert.equal(doc.canaries.memory.length, 6);
    assert.ok(doc.hypervisorView.saveAreas.every((h) => h.length === 8192));
    assert.ok(doc.hypervisorView.ghcb.length > 0);
    const exposed = new Set(doc.exposedByGuest);
    const leaked = [...doc.canaries.registers, ...doc.canaries.memory].filter(
      (c) => visible(doc, c) && !exposed.has(c),
    );
    assert.deepEqual(leaked, []);
    assert.ok(
      doc.canaries.registers.some((c) => exposed.has(c)),
      "CPUID's RCX and WRMSR's RAX/RDX are exposed",
    );
  });

  it("plain SEV: the same search finds the register canaries, not the memory ones", async () => {
    const { code, out } = await run(
      "demo",
      "hypervisor-view",
      "--mode",
      "sev",
      "--exits",
      "4",
      "--json",
      "--seed",
      "9",
    );
    assert.equal(code, 0);
    const doc = JSON.parse(out) as Doc;
    assert.equal(doc.hypervisorView.ghcb.length, 0);
    assert.ok(doc.canaries.registers.every((c) => visible(doc, c)));
    assert.ok(doc.canaries.memory.every((c) => !visible(doc, c)));
    const none = JSON.parse(
      (await run("demo", "hypervisor-view", "--mode", "none", "--exits", "4", "--json")).out,
    ) as Doc;
    assert.ok(
      none.canaries.memory.every((c) => visible(none, c)),
      "without SEV memory is plaintext",
    );
  });

  it("is deterministic from the seed", async () => {
    const a = await run(
      "demo",
      "hypervisor-view",
      "--mode",
      "sev-es",
      "--exits",
      "3",
      "--json",
      "--seed",
      "42",
    );
    const b = await run(
      "demo",
      "hypervisor-view",
      "--mode",
      "sev-es",
      "--exits",
      "3",
      "--json",
      "--seed",
      "42",
    );
    const c = await run(
      "demo",
      "hypervisor-view",
      "--mode",
      "sev-es",
      "--exits",
      "3",
      "--json",
      "--seed",
      "43",
    );
    assert.equal(a.out, b.out);
    assert.notEqual(a.out, c.out);
  });

  it("human output shows what the guest holds next to what the hypervisor read", async () => {
    const { code, out } = await run("demo", "hypervisor-view", "--mode", "sev-es", "--exits", "4");
    assert.equal(code, 0);
    assert.match(out, /Hypervisor view: mode sev-es, 4 exits, seed 1/);
    assert.match(out, /reg {2}guest holds {8}hypervisor reads {3}found by the hypervisor/);
    assert.match(out, /rcx {2}[0-9a-f]{16} {3}[0-9a-f]{16} {3}GHCB \+0x308: the guest put it there/);
    assert.match(out, /of which not exposed by the guest itself: 0\n/);
    const sev = (await run("demo", "hypervisor-view", "--mode", "sev", "--exits", "2")).out;
    assert.match(sev, /rbx {2}([0-9a-f]{16}) {3}\1 {3}VMCB \+0x718/);
    assert.match(sev, /visible to the hypervisor: (\d+) \(100\.0%\)/);
  });

  it("refuses bad flags and impossible setups with one line and a documented exit code", async () => {
    const bad = await run("demo", "hypervisor-view", "--mode", "tdx");
    assert.equal(bad.code, 2);
    assert.match(
      bad.err,
      /^ciphervisor: --mode must be one of none, sev, sev-es, sev-snp, got 'tdx' \[INVALID_INPUT\]\n$/,
    );
    const many = await run("demo", "hypervisor-view", "--mode", "sev", "--exits", "0");
    assert.equal(many.code, 2);
    const naples = await run("demo", "hypervisor-view", "--mode", "sev-es", "--generation", "naples");
    assert.equal(naples.code, 6);
    assert.match(naples.err, /naples .* does not support SEV-ES: .*\[REQUIREMENT_FAILED\]\n$/);
    const old = await run("demo", "hypervisor-view", "--mode", "sev-es", "--guest-os", "linux-4.16");
    assert.equal(old.code, 6);
    assert.match(old.err, /Linux 4\.16–5\.9 does not support SEV-ES/);
  });

  it("run-guest assembles a user's program and runs it; a kernel without SEV-ES support stops with a reason", async () => {
    const hello = await run("demo", "run-guest", "examples/guests/hello.s", "--mode", "sev-es");
    assert.equal(hello.code, 0, hello.err);
    assert.match(hello.out, /console:\n {2}Hello from an encrypted guest!\nstopped: the guest powered off/);
    const old = await run(
      "demo",
      "run-guest",
      "examples/guests/cpuid-vendor.s",
      "--mode",
      "sev-es",
      "--guest-os",
      "linux-4.16",
    );
    assert.match(
      old.out,
      /stopped: guest OS Linux 4\.16–5\.9 does not support SEV-ES: unhandled #VC on CPUID at RIP 0x1000/,
    );
    const missing = await run("demo", "run-guest", "no-such-file.s", "--mode", "sev");
    assert.equal(missing.code, 1);
    assert.match(missing.err, /no such file \[IO\]/);
  });

  it("SEV-SNP --json: the streamed document adds hostWrite, refused by the RMP; no canary the guest did not expose is visible", async () => {
    const { code, out, err } = await run(
      "demo",
      "hypervisor-view",
      "--mode",
      "sev-snp",
      "--exits",
      "6",
      "--json",
    );
    assert.equal(code, 0, err);
    const doc = JSON.parse(out) as Doc;
    assert.deepEqual(Object.keys(doc), ["mode", "hypervisorView", "canaries", "exposedByGuest", "hostWrite"]);
    assert.equal(doc.mode, "sev-snp");
    assert.ok(doc.canaries.registers.length >= 6 * 14);
    assert.equal(doc.canaries.memory.length, 6);
    assert.ok(doc.hypervisorView.saveAreas.every((h) => h.length === 8192));
    assert.ok(doc.hypervisorView.ghcb.length > 0);
    const exposed = new Set(doc.exposedByGuest);
    const leaked = [...doc.canaries.registers, ...doc.canaries.memory].filter(
      (c) => visible(doc, c) && !exposed.has(c),
    );
    assert.deepEqual(leaked, []);
    assert.ok(
      doc.canaries.memory.every((c) => !visible(doc, c)),
      "no page canary in DRAM as stored",
    );
    assert.deepEqual(
      [
        doc.hostWrite?.refused,
        doc.hostWrite?.unchanged,
        doc.hostWrite?.fault?.code,
        doc.hostWrite?.fault?.errorCode,
      ],
      [true, true, "RMP_VIOLATION", "0x80000003"],
    );
    const es = JSON.parse(
      (await run("demo", "hypervisor-view", "--mode", "sev-es", "--exits", "2", "--json")).out,
    );
    assert.equal("hostWrite" in es, false, "SEV-ES documents keep their shape");
  });

  it("SEV-SNP human output: the registers as under SEV-ES, then the refused write; a part without SNP is refused", async () => {
    const { code, out, err } = await run("demo", "hypervisor-view", "--mode", "sev-snp", "--exits", "4");
    assert.equal(code, 0, err);
    assert.match(out, /Hypervisor view: mode sev-snp, 4 exits, seed 1/);
    assert.match(out, /the VMSA \(ciphertext\), the GHCB/);
    assert.match(out, /of which not exposed by the guest itself: 0\n/);
    assert.match(out, /memory canaries: 4; visible in DRAM: 0 \(0\.0%\)/);
    assert.match(
      out,
      /what SEV-SNP adds: at #VMEXIT \d+ the hypervisor wrote the memory canaries' page back/,
    );
    assert.match(
      out,
      /was refused: #PF \(error code 0x80000003, RMP\).*\[RMP_VIOLATION\]; the page is unchanged/,
    );
    assert.match(out, /the Reverse Map Table refused its write/);
    const rome = await run("demo", "hypervisor-view", "--mode", "sev-snp", "--generation", "rome");
    assert.equal(rome.code, 6);
    assert.match(rome.err, /rome .* does not support SEV-SNP.*\[REQUIREMENT_FAILED\]\n$/);
    const old = await run("demo", "hypervisor-view", "--mode", "sev-snp", "--guest-os", "linux-5.10");
    assert.equal(old.code, 6);
    assert.match(old.err, /does not support SEV-SNP/);
  });

  it("--json at a large count streams one valid document in bounded chunks", async () => {
    const io = memoryIo();
    const chunks: number[] = [];
    const out = io.out.bind(io);
    io.out = (c: string) => {
      chunks.push(c.length);
      out(c);
    };
    const code = await main(["demo", "hypervisor-view", "--mode", "sev-es", "--exits", "3000", "--json"], io);
    assert.equal(code, 0, io.stderr);
    assert.ok(chunks.length > 10, `written in many chunks, not one document: ${chunks.length}`);
    assert.ok(Math.max(...chunks) < 2 * 1024 * 1024, "each chunk is bounded");
    const doc = JSON.parse(io.stdout) as Doc;
    assert.ok(doc.hypervisorView.saveAreas.length > 3000);
    assert.ok(doc.hypervisorView.ghcb.length > 2000);
    assert.ok(
      doc.hypervisorView.ghcb.every((h) => h.length === 8192),
      "GHCB pages come back whole",
    );
    assert.ok(doc.canaries.registers.length >= 3000 * 14);
    assert.equal(doc.canaries.memory.length, 3000);
  });
});

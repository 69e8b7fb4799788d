/**
 * SEV-SNP VMs give their frames back at power-off (host.ts `stop`, snp-reclaim.ts; SNP ABI 56860 SNP_PAGE_RECLAIM):
 * SNP_DECOMMISSION → WBINVD → DF_FLUSH, then every page the guest or the firmware held goes back to the hypervisor
 * — SNP_PAGE_RECLAIM for Immutable ones, then RMPUPDATE — and is zeroed and reused. Before this, each power cycle
 * left the launched pages assigned in the RMP and the host lost them for good.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isCiphervisorError } from "../errors.ts";
import { PAGE_SIZE } from "../machine/dram.ts";
import { SNP_VMSA_GPA } from "../measure/snp-launch-digest.ts";
import { Host } from "./host.ts";
import type { HypervisorView } from "./introspection/hypervisor-view.ts";
import { vmSpec } from "./test-support.ts";

const CYCLES = 50;
/** Where the host's frame pool starts and how far the tests look for the firmware's pages (host.ts FRAMES_BASE). */
const FRAMES_BASE = 4 * 1024 * 1024;
const SCANNED_FRAMES = 2048;

/** "NEWOWNER", the plaintext the next owner keeps in its private memory. */
const PATTERN = 0x4e45574f574e4552n;
const NEW_OWNER = `; fills 64 KiB of private memory with one 64-bit pattern, then idles
.private data, 65536
.entry start
start:
    mov   rbx, data
    mov   rcx, 8192
fill:
    mov   rax, 0x${PATTERN.toString(16)}
    store [rbx], rax
    add   rbx, 8
    sub   rcx, 1
    jnz   fill
idle:
    hlt
    jmp   idle
`;

function milan(seed = "snp-reclaim"): Host {
  return new Host({ name: "milan-reclaim", generation: "milan", seed });
}

function startSnp(host: Host, name: string, program?: string): HypervisorView {
  host.define(vmSpec(name, { security: "sev-snp", ...(program ? { program } : {}) }));
  const s = host.start(name).status;
  assert.equal(s.power, "running", `${name}: ${s.reason}`);
  return host.view(name)!;
}

/** Every host frame a VM maps, with its GPA, plus its VMSA page (at the GPA KVM gives VMSAs). */
function framesOf(view: HypervisorView): { gpa: number; hpa: number; vmsa?: true }[] {
  const out: { gpa: number; hpa: number; vmsa?: true }[] = [...view.guest.npt.entries()].map(([gpa, e]) => ({
    gpa,
    hpa: e.hpa,
  }));
  out.push({ gpa: SNP_VMSA_GPA, hpa: view.guest.vmcb.control.vmsaPa, vmsa: true });
  return out;
}

/** Host frames the RMP holds for the firmware (ASID 0): the guest context pages. */
function firmwarePages(host: Host): number[] {
  const out: number[] = [];
  for (let i = 0; i < SCANNED_FRAMES; i++) {
    const pa = FRAMES_BASE + i * PAGE_SIZE;
    const e = host.rmpEntry(pa)!;
    if (e.assigned && e.asid === 0) out.push(pa);
  }
  return out;
}

function contains(bytes: Uint8Array, value: bigint): boolean {
  const le = Buffer.alloc(8);
  le.writeBigUInt64LE(value);
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return buf.includes(le) || buf.includes(Buffer.from(le).reverse());
}

describe("SEV-SNP frames go back to the host at power-off", () => {
  it(`${CYCLES} power cycles of an SNP VM on one host: frame use does not grow, nothing is leaked`, () => {
    const host = milan();
    host.define(vmSpec("snp", { security: "sev-snp" }));
    const idle = host.frameUsage();
    assert.deepEqual(idle.leaked, 0);
    for (let i = 0; i < CYCLES; i++) {
      const s = host.start("snp").status;
      assert.equal(s.power, "running", `cycle ${i}: ${s.reason}`);
      assert.ok(host.frameUsage().free < idle.free, "a running VM holds frames");
      host.stop("snp");
      assert.deepEqual(host.frameUsage(), idle, `after cycle ${i}`);
    }
  });

  it("every page the VM and the firmware held reads as hypervisor-owned afterwards; the host may write it again", () => {
    const host = milan();
    const view = startSnp(host, "snp");
    const frames = framesOf(view);
    const gctx = firmwarePages(host);
    assert.equal(gctx.length, 1, "one guest context page, a firmware page");
    const vmsa = host.rmpEntry(view.guest.vmcb.control.vmsaPa)!;
    assert.deepEqual([vmsa.assigned, vmsa.vmsa, vmsa.immutable], [true, true, true]);
    const assigned = frames.filter((f) => host.rmpEntry(f.hpa)!.assigned);
    assert.ok(assigned.length > 16, `${assigned.length} guest pages assigned in the RMP while it runs`);
    assert.throws(
      () => view.writePhysical(view.guest.vmcb.control.vmsaPa, new Uint8Array(8)),
      (e) => isCiphervisorError(e, "RMP_VIOLATION"),
      "while the VM runs, a host write to its VMSA faults",
    );

    host.stop("snp");
    for (const pa of [...frames.map((f) => f.hpa), ...gctx]) {
      const e = host.rmpEntry(pa)!;
      assert.deepEqual(
        [e.assigned, e.asid, e.immutable, e.validated],
        [false, 0, false, false],
        `0x${pa.toString(16)}`,
      );
      assert.deepEqual(view.readPhysical(pa, PAGE_SIZE), new Uint8Array(PAGE_SIZE), "zeroed");
    }
    view.writePhysical(view.guest.vmcb.control.vmsaPa, new Uint8Array(8)); // no longer refused
    assert.deepEqual(firmwarePages(host), []);
  });

  it("powering one SNP VM off gives back only its pages: the other keeps every RMP entry and runs on", () => {
    const host = milan();
    startSnp(host, "a");
    const b = startSnp(host, "b");
    const entries = () => framesOf(b).map((f) => host.rmpEntry(f.hpa));
    const before = entries();
    assert.ok(before.filter((e) => e?.assigned).length > 16);
    assert.equal(firmwarePages(host).length, 2);
    host.stop("a");
    assert.deepEqual(entries(), before);
    assert.equal(firmwarePages(host).length, 1, "b's context page stays the firmware's");
    const report = host.attestationReport("b", new Uint8Array(64).fill(7)).report;
    assert.equal(report.length, 0x4a0, "b's guest still answers with a signed report");
    assert.equal(host.status("b").power, "running");
  });

  it("a stale mapping of the old guest reads only ciphertext of the next owner, and cannot write its pages", () => {
    const host = milan("snp-reclaim-stale");
    const stale = startSnp(host, "old");
    const oldFrames = framesOf(stale).filter((f) => !f.vmsa);
    host.stop("old");
    const next = startSnp(host, "new", NEW_OWNER);
    const owner = new Map(framesOf(next).map((f) => [f.hpa, f.gpa] as const));
    const asid = host.status("new").asid;
    const reused = oldFrames.filter((f) => owner.has(f.hpa));
    assert.ok(reused.length > 16, `${reused.length} of the old guest's frames now belong to the new one`);
    let privatePages = 0;
    for (const f of oldFrames) {
      const seen = stale.readGuestPhysical(f.gpa, PAGE_SIZE);
      assert.ok(!contains(seen, PATTERN), `GPA 0x${f.gpa.toString(16)}: plaintext of the new owner`);
      const e = host.rmpEntry(f.hpa)!;
      if (!owner.has(f.hpa)) {
        assert.equal(e.assigned, false, "a frame nobody took again is hypervisor-owned");
        continue;
      }
      if (!e.assigned) continue; // one of the new owner's shared pages
      privatePages++;
      assert.deepEqual([e.asid, e.gpa], [asid, owner.get(f.hpa)], "the RMP names the new owner's mapping");
      assert.throws(
        () => stale.writeGuestPhysical(f.gpa, seen),
        (err) => isCiphervisorError(err, "RMP_VIOLATION"),
      );
    }
    assert.ok(privatePages > 16, `${privatePages} reused frames are the new owner's private pages`);
  });

  it("control: the same stale mapping finds the pattern when the next owner is an ordinary VM", () => {
    const host = milan("snp-reclaim-stale");
    const stale = startSnp(host, "old");
    const oldFrames = framesOf(stale).filter((f) => !f.vmsa);
    host.stop("old");
    host.define(vmSpec("plain", { program: NEW_OWNER }));
    assert.equal(host.start("plain").status.power, "running");
    const hits = oldFrames.filter((f) => contains(stale.readGuestPhysical(f.gpa, PAGE_SIZE), PATTERN));
    assert.ok(hits.length > 0, "plaintext is in frames the stale mapping reaches");
  });
});

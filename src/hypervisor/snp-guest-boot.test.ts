/**
 * SEV-SNP VMs on an emulated host, end to end through `Host` (host.ts, snp-guest-memory.ts, kvm/snp-vcpus.ts;
 * docs/sev-interface.md §14.2): the guest validates its own memory, makes its GHCB and agent buffers shared with
 * page state changes, and starts its APs with SNP AP creation — the launch still measures every vCPU's launch VMSA,
 * so the report carries the owner's digest either way. A host that does not advertise AP creation boots the same
 * guest on one CPU; one that does not advertise SNP is refused by the guest.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseSnpReport } from "../certs/snp-report.ts";
import { apPages, GHCB_GPA } from "../guest/layout.ts";
import { toHex } from "../lib/bytes.ts";
import { GhcbHvFeature } from "../machine/ghcb.ts";
import { computeSnpLaunchDigest } from "../measure/snp-launch-digest.ts";
import { builtinUefiImage } from "./builtin-uefi.ts";
import { Host } from "./host.ts";
import { vmSpec } from "./test-support.ts";

const PROGRAM = `
.private data, 4096
.shared  mailbox, 4096
start:
    mov   rax, 0x600d600d600d600d
    store [data], rax
loop:
    hlt
    load  rbx, [data]
    store [mailbox], rbx
    jmp   loop
`;

function host(snpHvFeatures?: bigint): Host {
  return new Host({
    name: "milan-snp",
    generation: "milan",
    seed: "snp-guest-boot",
    ...(snpHvFeatures !== undefined ? { snpHvFeatures } : {}),
  });
}

const spec = (vcpus: number) => vmSpec("snp", { security: "sev-snp", vcpus, program: PROGRAM });

describe("SEV-SNP guests boot themselves on an emulated host", () => {
  it("4 vCPUs: 3 APs created by the guest, all launch VMSAs measured, the report carries the owner's digest", () => {
    const h = host();
    h.define(spec(4));
    const { status } = h.start("snp");
    assert.equal(status.power, "running", status.reason);
    assert.match(status.console ?? "", /^smp: Brought up 1 node, 4 CPUs\n/);
    const vcpus = h.vcpus("snp")!;
    assert.deepEqual(
      vcpus.map((v) => [v.apicId, v.vmsa, v.registeredGhcb]),
      [
        [0, "launch", GHCB_GPA],
        [1, "guest", apPages(1).ghcb],
        [2, "guest", apPages(2).ghcb],
        [3, "guest", apPages(3).ghcb],
      ],
    );
    for (const v of vcpus.slice(1)) assert.equal(h.rmpEntry(v.vmsaPa)?.vmsa, true);
    const inputs = status.launchInputs!;
    const digest = toHex(
      computeSnpLaunchDigest({
        firmware: builtinUefiImage(),
        vcpus: 4,
        vcpuSignature: inputs.cpu.signature,
        vmmType: "QEMU",
        guestFeatures: 1n,
      }),
    );
    assert.equal(status.launchDigest, digest);
    const report = parseSnpReport(h.attestationReport("snp", new Uint8Array(64).fill(7)).report);
    assert.equal(toHex(report.measurement), digest);
    assert.equal(h.status("snp").power, "running");
  });

  it("the host validates nothing: the guest's data page is validated, not Immutable; RMPUPDATE wipes it and the guest stops", () => {
    const h = host();
    h.define(spec(1));
    h.start("snp");
    const view = h.view("snp")!;
    const data = 0x101000;
    const frame = view.frameOf(data)!;
    const e = h.rmpEntry(frame)!;
    assert.deepEqual([e.assigned, e.validated, e.immutable], [true, true, false]);
    assert.equal(h.rmpEntry(view.frameOf(GHCB_GPA)!)?.assigned, false, "the GHCB was made shared");
    assert.equal(h.run("snp", 50).power, "running");
    const mailbox = view.readGuestPhysical(0x102000, 8);
    assert.equal(new DataView(mailbox.buffer, mailbox.byteOffset).getBigUint64(0, true), 0x600d600d600d600dn);
    // The hypervisor re-assigns the page in place: Validated is cleared, and the guest's next load is #VC 0x404.
    assert.equal(view.rmp!.rmpupdate(frame, { assigned: true, asid: e.asid, gpa: data }), 0);
    const after = h.run("snp", 50);
    assert.equal(after.power, "crashed");
    assert.match(after.reason ?? "", /requested termination \(reason set 0, code 0/);
  });

  it("a host without SNP AP creation boots the same guest on one CPU: the APs keep their launch VMSAs", () => {
    const h = host(GhcbHvFeature.SNP);
    h.define(spec(3));
    const { status } = h.start("snp");
    assert.equal(status.power, "running");
    assert.match(status.console ?? "", /^smp: Brought up 1 node, 1 CPU\n/);
    assert.deepEqual(
      h.vcpus("snp")!.map((v) => [v.vmsa, v.mpState]),
      [
        ["launch", "runnable"],
        ["launch", "uninitialized"],
        ["launch", "uninitialized"],
      ],
    );
  });

  it("a host that does not advertise SNP: the guest ends itself (reason set 0, code 2)", () => {
    const h = host(0n);
    h.define(spec(1));
    const { status } = h.start("snp");
    assert.equal(status.power, "crashed");
    assert.match(status.reason ?? "", /reason set 0, code 2: SEV-SNP not supported/);
  });

  it("power-off returns the AP VMCBs and the guest-built VMSA pages: a second boot finds the same free frames", () => {
    const h = host();
    h.define(spec(3));
    h.start("snp");
    h.stop("snp");
    const free = h.frameUsage().free;
    h.start("snp");
    assert.match(h.status("snp").console ?? "", /3 CPUs/);
    h.stop("snp");
    assert.equal(h.frameUsage().free, free);
    assert.equal(h.frameUsage().leaked, 0);
  });
});

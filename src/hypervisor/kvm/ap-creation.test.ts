/**
 * KVM's SNP AP Creation (ap-creation.ts, snp-vcpus.ts) through the host's VMGEXIT handling: CREATE records the VMSA
 * GPA and kicks the target, which installs the guest's page as its VMSA before it next runs; CREATE_ON_INIT records
 * it without a kick; DESTROY leaves the vCPU without a VMSA, never entered. Every refusal — an unknown APIC ID,
 * SEV_FEATURES that are not the guest's, a VMSA address that is no page or is 2 MiB aligned, a page the RMP does not
 * hold as this guest's VMSA — is answered to the guest and changes nothing; a host that does not advertise the
 * feature does not know the event.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ApCreationRequest, apCreationExitInfo1, SNP_AP_CREATION_EXIT } from "../../machine/ap-creation.ts";
import { cpuModel } from "../../machine/cpu-models.ts";
import { Dram } from "../../machine/dram.ts";
import {
  GHCB_SIZE,
  GhcbError,
  GhcbHvFeature,
  GhcbResponse,
  GhcbView,
  KVM_HV_FEATURES,
} from "../../machine/ghcb.ts";
import type { Machine } from "../../machine/machine.ts";
import { NestedPageTable } from "../../machine/nested-page-table.ts";
import { Rmp, RmpReturn } from "../../machine/rmp.ts";
import { Vmcb } from "../../machine/vmcb.ts";
import { HostDevices } from "./devices.ts";
import { runVcpu, SnpVcpu, SnpVcpuSet, updateProtectedGuestState } from "./snp-vcpus.ts";
import { handleVmgexit } from "./vmgexit.ts";

const ASID = 2;
const FEATURES = 0x1n;
const GHCB_GPA = 0x10000;
const GHCB_HPA = 0x80000;
const VMSA_GPA = 0x31000;
const VMSA_HPA = 0x90000;
const PLAIN_GPA = 0x32000;
const PLAIN_HPA = 0x91000;
const ALIGNED_GPA = 0x400000;
const ALIGNED_HPA = 0x92000;
const LAUNCH_VMSA = 0xa0000;

function bench(opts: { hvFeatures?: bigint; vcpus?: boolean } = {}) {
  const memory = new Dram(16 * 1024 * 1024);
  const npt = new NestedPageTable();
  const rmp = new Rmp({ end: memory.size });
  npt.map(GHCB_GPA, GHCB_HPA);
  /** A private page of the guest, validated, optionally made a VMSA with RMPADJUST (VMPL1, VMSA bit). */
  const privatePage = (gpa: number, hpa: number, vmsa: boolean) => {
    npt.map(gpa, hpa);
    assert.equal(rmp.rmpupdate(hpa, { assigned: true, asid: ASID, gpa }), RmpReturn.SUCCESS);
    rmp.pvalidate(hpa, { asid: ASID, gpa, validate: true });
    if (vmsa) rmp.rmpadjust(hpa, { asid: ASID, gpa, targetVmpl: 1, perms: 0, vmsa: true });
  };
  privatePage(VMSA_GPA, VMSA_HPA, true);
  privatePage(PLAIN_GPA, PLAIN_HPA, false);
  privatePage(ALIGNED_GPA, ALIGNED_HPA, true);
  const vcpu = (id: number) =>
    new SnpVcpu(
      id,
      new Vmcb(0x100000 + id * 0x1000, {
        asid: ASID,
        mode: "sev-snp",
        npt,
        vmsaPa: LAUNCH_VMSA + id * 0x1000,
      }),
      id === 0 ? "runnable" : "uninitialized",
    );
  const set = new SnpVcpuSet(FEATURES, [vcpu(0), vcpu(1), vcpu(2)]);
  const call = (request: number, o: { apicId?: number; gpa?: number; rax?: bigint | null } = {}) => {
    const g = new GhcbView(new Uint8Array(GHCB_SIZE));
    g.set("swExitCode", SNP_AP_CREATION_EXIT);
    g.set("swExitInfo1", apCreationExitInfo1(o.apicId ?? 1, request));
    g.set("swExitInfo2", BigInt(o.gpa ?? VMSA_GPA));
    if (o.rax !== null) g.set("rax", o.rax ?? FEATURES);
    memory.write(GHCB_HPA, g.bytes);
    return handleVmgexit({
      memory,
      npt,
      devices: new HostDevices(cpuModel("milan"), "sev-snp"),
      cBit: 51,
      ghcbMsr: BigInt(GHCB_GPA),
      respond: () => {},
      registeredGhcb: { gpa: BigInt(GHCB_GPA) },
      snpGuest: {
        rmp,
        asid: ASID,
        hvFeatures: opts.hvFeatures ?? KVM_HV_FEATURES,
        ...(opts.vcpus === false ? {} : { vcpus: set }),
      },
    });
  };
  return { npt, rmp, set, call, ap: set.byApicId(1)! };
}

const OK = { info1: 0n, info2: 0n };
const INVALID_INPUT = { info1: BigInt(GhcbResponse.MALFORMED_INPUT), info2: BigInt(GhcbError.INVALID_INPUT) };

/** A machine that must not be entered: runVcpu of a vCPU without a VMSA never calls VMRUN. */
const NO_VMRUN = {
  vmrun: () => assert.fail("VMRUN of a vCPU without a valid VMSA"),
} as unknown as Machine;

describe("SNP AP creation (GHCB 56421 NAE 0x8000_0013)", () => {
  it("CREATE: the target is kicked and takes the guest's page as its VMSA before it runs", () => {
    const b = bench();
    const r = b.call(ApCreationRequest.CREATE);
    assert.deepEqual(r.ghcb?.response, OK);
    assert.deepEqual(
      [b.ap.pendingVmsaGpa, b.ap.waitingForReset, b.ap.updateRequested],
      [VMSA_GPA, true, true],
    );
    assert.equal(b.ap.vmcb.control.vmsaPa, LAUNCH_VMSA + 0x1000, "nothing changes until the target updates");
    updateProtectedGuestState(b.ap, b.npt);
    assert.deepEqual(b.ap.status(), {
      apicId: 1,
      mpState: "runnable",
      vmsa: "guest",
      vmsaPa: VMSA_HPA,
      vmsaGpa: VMSA_GPA,
      exits: 0,
    });
    assert.equal(b.ap.vmcb.control.ghcbGpa, 0n, "a fresh VMSA starts with a GHCB MSR of zero");
  });

  it("CREATE_ON_INIT records the VMSA without a kick: the AP keeps its launch VMSA until INIT", () => {
    const b = bench();
    assert.deepEqual(b.call(ApCreationRequest.CREATE_ON_INIT).ghcb?.response, OK);
    assert.deepEqual(
      [b.ap.pendingVmsaGpa, b.ap.waitingForReset, b.ap.updateRequested],
      [VMSA_GPA, true, false],
    );
    assert.deepEqual(
      [b.ap.vmsa, b.ap.mpState, b.ap.vmcb.control.vmsaPa],
      ["launch", "uninitialized", LAUNCH_VMSA + 0x1000],
    );
  });

  it("DESTROY: RAX not needed; the vCPU has no VMSA afterwards and the host does not enter it", () => {
    const b = bench();
    b.call(ApCreationRequest.CREATE);
    updateProtectedGuestState(b.ap, b.npt);
    assert.deepEqual(b.call(ApCreationRequest.DESTROY, { rax: null }).ghcb?.response, OK);
    assert.equal(b.ap.updateRequested, true);
    const r = runVcpu(NO_VMRUN, b.ap, {} as never, 10);
    assert.deepEqual(r, { stopped: false });
    assert.deepEqual([b.ap.vmsa, b.ap.mpState, b.ap.exits], ["none", "halted", 0]);
  });

  it("refusals are answered to the guest (INVALID_INPUT, KVM's reason) and leave the target as it was", () => {
    const cases: [string, number, { apicId?: number; gpa?: number; rax?: bigint }, RegExp][] = [
      ["an APIC ID with no vCPU", ApCreationRequest.CREATE, { apicId: 9 }, /invalid AP APIC ID 0x9/],
      [
        "SEV_FEATURES other than the guest's",
        ApCreationRequest.CREATE,
        { rax: 0x21n },
        /mismatched AP sev_features/,
      ],
      [
        "a VMSA address that is no page",
        ApCreationRequest.CREATE,
        { gpa: VMSA_GPA + 8 },
        /invalid AP VMSA address/,
      ],
      [
        "a 2 MiB-aligned VMSA (the SNP erratum)",
        ApCreationRequest.CREATE,
        { gpa: ALIGNED_GPA },
        /2M aligned/,
      ],
      ["a page not marked VMSA in the RMP", ApCreationRequest.CREATE, { gpa: PLAIN_GPA }, /not marked VMSA/],
      [
        "a GPA that is not guest memory",
        ApCreationRequest.CREATE_ON_INIT,
        { gpa: 0x5000_1000 },
        /not guest memory/,
      ],
      ["an unknown request", 7, {}, /invalid AP creation request 0x7/],
    ];
    for (const [what, request, o, why] of cases) {
      const b = bench();
      const r = b.call(request, o);
      assert.deepEqual(r.ghcb?.response, INVALID_INPUT, what);
      assert.match(r.ghcb?.refusal ?? "", why, what);
      assert.deepEqual(
        [b.ap.pendingVmsaGpa, b.ap.waitingForReset, b.ap.updateRequested],
        [undefined, false, false],
      );
    }
  });

  it("the page must be this guest's VMSA at that GPA: remapped to one held at another GPA, it is refused", () => {
    const b = bench();
    b.npt.map(0x33000, VMSA_HPA);
    const r = b.call(ApCreationRequest.CREATE, { gpa: 0x33000 });
    assert.match(r.ghcb?.refusal ?? "", /not a private 4 KiB page of this guest/);
  });

  it("RAX missing for CREATE: MISSING_INPUT", () => {
    const r = bench().call(ApCreationRequest.CREATE, { rax: null });
    assert.deepEqual(r.ghcb?.response, {
      info1: BigInt(GhcbResponse.MALFORMED_INPUT),
      info2: BigInt(GhcbError.MISSING_INPUT),
    });
  });

  it("a host that does not advertise SNP AP creation does not know the event (INVALID_EVENT); no vCPU changes", () => {
    const b = bench({ hvFeatures: GhcbHvFeature.SNP });
    const r = b.call(ApCreationRequest.CREATE);
    assert.deepEqual(r.ghcb?.response, {
      info1: BigInt(GhcbResponse.MALFORMED_INPUT),
      info2: BigInt(GhcbError.INVALID_EVENT),
    });
    assert.equal(b.ap.waitingForReset, false);
    const without = bench({ vcpus: false }).call(ApCreationRequest.CREATE);
    assert.deepEqual(without.ghcb?.response, INVALID_INPUT);
  });
});

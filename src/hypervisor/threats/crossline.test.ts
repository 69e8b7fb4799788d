/**
 * docs/threat-model.md §8 item 6 (E-CROSSLINE), §2.2 note 7: CrossLine V1 (Li, Zhang, Lin, CCS'21, arXiv 2008.00146).
 *
 * The model. SEV picks the memory-encryption key from the ASID in the VMCB at VMRUN (machine.ts, vmcb.ts) and
 * nothing ties an ASID to "its" VM's VMCB or NPT. So the hypervisor launches an attacker VM of its own (an ordinary
 * LAUNCH_START/ACTIVATE/… sequence that KVM issues for any VM), then writes the *victim's* ASID into the attacker's
 * VMCB and points a page of the attacker's own NPT at a victim frame. When the attacker vCPU runs, its first
 * instruction fetch walks its guest page table, and walks are always private (guest-paging.ts): the walk decrypts
 * the victim's frame with the victim's key and uses the 8 bytes at `cr3 + 8·pd(rip)` as a directory entry. If that
 * block is PTE-shaped (present bit set), the walk follows its address, which the attacker's NPT does not map: the
 * automatic #NPF exit hands the hypervisor exit_info_2 = the address bits [cBit−1:12] of the victim's plaintext.
 * The attacker VM then "crashes" (security by crash) — too late, the bits are out.
 *
 * - SEV: the attacker's VMCB save area is plaintext and the hypervisor's, so it sets CR3 and RIP freely and picks
 *   which of the 512 blocks of the victim frame to leak (pd index of RIP).
 * - SEV-ES: the attacker vCPU must load registers from a VMSA that VMRUN accepts under the victim's ASID. In this
 *   machine that is only the victim's own VMSA (trusted-memory.ts keys its record by ASID and VMSA address), so the
 *   attacker's VMCB points VMSA_PA at the victim's VMSA page — one more VMCB field the hypervisor owns. The victim's
 *   CR3 GPA is known to the host (it built the boot image); the attacker's NPT maps it onto the target frame, and
 *   the block at pd(victim RIP) leaks the same way. Because no instruction retires, the CPU re-encrypts an identical
 *   VMSA at #VMEXIT (deterministic XEX), so the victim's VMSA stays valid. Whether real hardware would also accept
 *   the attacker's *own* VMSA under the victim's ASID is [unconfirmed]; this test does not depend on it.
 * - The victim's data carries the Accessed (and Dirty) bits, as real PTEs do, so a hardware walker would have no
 *   A/D bit to set in it; the emulator's walker sets none anyway. Either way the victim's memory is unchanged.
 *
 * Not modelled: SEV-SNP's RMP owner check (the RMP entry's ASID must match the running guest's on every access),
 * which makes the same walk fault without decrypting anything; the "SNP mode: 0 leaks" half of §8 item 6 waits for
 * the SNP reference mode. CrossLine V2 (executing victim instructions as an oracle) is not exercised here.
 *
 * Counts: 100 trials per mode; in SEV mode 16 random blocks per trial, in SEV-ES mode one block per trial.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { sha256 } from "../../crypto/hash.ts";
import { seededRandom } from "../../crypto/random.ts";
import { assemble } from "../../guest/assembler.ts";
import { buildGuestImage } from "../../guest/image.ts";
import { guestOsProfile } from "../../guest/os-profiles.ts";
import { PAGE_SIZE } from "../../machine/dram.ts";
import { SvmExit, VMEXIT_INVALID } from "../../machine/exit-codes.ts";
import { pageTableIndices } from "../../machine/guest-paging.ts";
import { SAVE_AREA_SIZE, type SecurityMode } from "../../machine/vmcb.ts";
import { decodeVmsa, encodeVmsa } from "../../measure/vmsa.ts";
import { FramePool } from "../frames.ts";
import { createLab, type Lab } from "../introspection/lab.ts";
import { handleExit } from "../kvm/exit-handler.ts";
import { type LaunchedGuest, launchGuest } from "../kvm/launch.ts";

const TRIALS = 100;
/** Blocks leaked per trial in SEV mode, where the hypervisor chooses the block through the attacker's RIP. */
const BLOCKS_PER_TRIAL = 16;
/** PTE-shaped: address bits [46:12] random (below the C-bit on every CPU model), P|RW|A|D set. */
const ADDRESS_MASK = 0x0000_7fff_ffff_f000n;
const PTE_FLAGS = 0x63n;
/** A GPA the attacker's own image does not use: the attacker's "page directory", remapped onto victim frames. */
const ATTACKER_CR3_GPA = 0x3fe0_0000;
/** Attacker frames live far above the victim's (the lab's FramePool starts at GUEST_BASE). */
const ATTACKER_FRAMES_BASE = 96 * 1024 * 1024;

/**
 * The victim fills one private page with fresh PTE-shaped secrets, halts (the attack window), then folds the page
 * with XOR and publishes only the fold on a shared page: its continued, correct execution shows its memory survived.
 */
const VICTIM = `
.private secret, 4096
.shared  mailbox, 4096
start:
loop:
    mov   rcx, 0
fill:
    rdrand rax
    and   rax, ${ADDRESS_MASK}
    or    rax, ${PTE_FLAGS}
    store [rcx+secret], rax
    add   rcx, 8
    cmp   rcx, 4096
    jnz   fill
    hlt                         ; CrossLine window: the hypervisor runs the attacker vCPU now
    mov   rcx, 0
    mov   rbx, 0
fold:
    load  rax, [rcx+secret]
    xor   rbx, rax
    add   rcx, 8
    cmp   rcx, 4096
    jnz   fold
    store [mailbox], rbx
    hlt
    jmp   loop
`;

/** The attacker VM's own program never matters: it never retires an instruction under the victim's ASID. */
const ATTACKER = "start:\n    hlt\n";

function u64(bytes: Uint8Array, off = 0): bigint {
  return new DataView(bytes.buffer, bytes.byteOffset + off, 8).getBigUint64(0, true);
}

/** Runs the victim to its next HLT, letting the host handle every other exit. */
function toHlt(lab: Lab): void {
  for (let i = 0; i < 50; i++) {
    const h = handleExit(lab.vm, lab.machine.vmrun(lab.vm.vmcb));
    if (h.exit.exitCode === SvmExit.HLT) return;
    assert.equal(h.outcome.action, "resume", h.outcome.action === "stop" ? h.outcome.reason : "");
  }
  assert.fail("victim never reached HLT");
}

/** The attacker VM, launched like any other guest on the same host, with its own ASID, VMCB, NPT (and VMSA). */
function launchAttacker(lab: Lab, mode: Exclude<SecurityMode, "none">): LaunchedGuest {
  const image = buildGuestImage(assemble(ATTACKER), {
    profile: guestOsProfile("linux-5.19"),
    mode,
    model: lab.machine.model,
  });
  return launchGuest({
    machine: lab.machine,
    memory: lab.platform.dram,
    image,
    frames: new FramePool(ATTACKER_FRAMES_BASE, lab.platform.dram.size),
    asid: lab.platform.asids.allocate(mode === "sev-es" ? "es" : "sev"),
    firmware: lab.platform.client,
  });
}

/** Everything of the victim's that lives in DRAM, as stored: its guest frames, VMCB page and (ES) VMSA page. */
function victimDigest(lab: Lab): string {
  const parts = [...lab.vm.frames.values()]
    .sort((a, b) => a - b)
    .map((pa) => lab.view.readPhysical(pa, PAGE_SIZE));
  parts.push(lab.view.vmcbPage());
  if (lab.vm.vmcb.control.sevEsEnable) parts.push(lab.view.saveArea().bytes);
  return Buffer.from(sha256(...parts)).toString("hex");
}

/** Victim setup shared by both modes: the lab, the secret page's frame, and the ground-truth RDRAND values. */
function victim(mode: Exclude<SecurityMode, "none">, seed: string) {
  const rdrand: bigint[] = [];
  const lab = createLab({ source: VICTIM, mode, seed, observer: { onRdrand: (v) => rdrand.push(v) } });
  const sym = lab.image.program.symbols;
  const secretFrame = lab.view.frameOf(sym.get("secret")!)!;
  const mailbox = sym.get("mailbox")!;
  /** The 512 secrets of the current round, from what the CPU handed the guest (test ground truth only). */
  const secrets = () => rdrand.slice(-512).map((v) => (v & ADDRESS_MASK) | PTE_FLAGS);
  return { lab, secretFrame, mailbox, secrets };
}

/** After the attack window: the victim resumes, folds its page and reports the right value. */
function assertVictimContinues(v: ReturnType<typeof victim>, want: readonly bigint[]): void {
  toHlt(v.lab);
  const fold = want.reduce((a, b) => a ^ b, 0n);
  assert.equal(u64(v.lab.view.readGuestPhysical(v.mailbox, 8)), fold);
}

describe("CrossLine V1: an attacker vCPU run with the victim's ASID (E-CROSSLINE)", () => {
  it(`sev: ${TRIALS} trials × ${BLOCKS_PER_TRIAL} blocks, every PTE-shaped victim block leaks via #NPF`, () => {
    const v = victim("sev", "crossline-sev");
    const attacker = launchAttacker(v.lab, "sev");
    const victimAsid = v.lab.vm.asid;
    assert.notEqual(attacker.asid, victimAsid);
    const pick = seededRandom("crossline-sev-blocks");
    let leaked = 0;
    let controlLeaks = 0;
    for (let t = 0; t < TRIALS; t++) {
      toHlt(v.lab);
      const want = v.secrets();
      const before = victimDigest(v.lab);
      attacker.npt.map(ATTACKER_CR3_GPA, v.secretFrame);
      for (let k = 0; k < BLOCKS_PER_TRIAL; k++) {
        const block = pick.bytes(2).reduce((a, b) => (a << 8) | b, 0) & 511;
        // The hypervisor edits its own attacker's plaintext save area: CR3 onto the remapped GPA, RIP so that
        // pd(RIP) selects the block (and stays out of the native-kernel range).
        const page = new Uint8Array(PAGE_SIZE);
        page.set(v.lab.view.readPhysical(attacker.vmcb.saveAreaPa, SAVE_AREA_SIZE));
        const state = decodeVmsa(page);
        state.cr3 = BigInt(ATTACKER_CR3_GPA);
        state.rip = BigInt(block * (1 << 21));
        assert.equal(pageTableIndices(Number(state.rip)).pd, block);
        v.lab.view.writePhysical(attacker.vmcb.saveAreaPa, encodeVmsa(state).subarray(0, SAVE_AREA_SIZE));

        // Attack: the victim's ASID in the attacker's VMCB.
        attacker.vmcb.control.asid = victimAsid;
        const exit = v.lab.machine.vmrun(attacker.vmcb);
        assert.equal(exit.exitCode, SvmExit.NPF, exit.reason ?? exit.name);
        if (exit.exitInfo2 === (want[block]! & ~0xfffn)) leaked++;

        // Negative control: the very same run under the attacker's own ASID decrypts with the wrong key.
        attacker.vmcb.control.asid = attacker.asid;
        v.lab.view.writePhysical(attacker.vmcb.saveAreaPa, encodeVmsa(state).subarray(0, SAVE_AREA_SIZE));
        const ctl = v.lab.machine.vmrun(attacker.vmcb);
        if (ctl.exitCode === SvmExit.NPF && ctl.exitInfo2 === (want[block]! & ~0xfffn)) controlLeaks++;
      }
      assert.equal(victimDigest(v.lab), before, `trial ${t}: the victim's memory changed`);
      assertVictimContinues(v, want);
    }
    assert.equal(leaked, TRIALS * BLOCKS_PER_TRIAL);
    assert.equal(controlLeaks, 0);
  });

  it(`sev-es: ${TRIALS} trials, the victim's PTE-shaped block leaks via #NPF; its VMSA stays valid`, () => {
    const v = victim("sev-es", "crossline-es");
    const attacker = launchAttacker(v.lab, "sev-es");
    const victimAsid = v.lab.vm.asid;
    const victimVmsaPa = v.lab.vm.vmcb.control.vmsaPa;
    const victimCr3 = Number(v.lab.image.initialState.cr3!);
    let leaked = 0;
    let controlLeaks = 0;
    for (let t = 0; t < TRIALS; t++) {
      toHlt(v.lab);
      const want = v.secrets();
      const before = victimDigest(v.lab);
      // The block the walk reads is fixed by the victim's RIP, which the host cannot set under SEV-ES; the test
      // reads it from the ground truth only to know which secret to compare with.
      const block = pageTableIndices(Number(v.lab.image.program.symbols.get("start")!)).pd;

      attacker.npt.map(victimCr3, v.secretFrame);
      attacker.vmcb.control.asid = victimAsid;
      attacker.vmcb.control.vmsaPa = victimVmsaPa;
      const exit = v.lab.machine.vmrun(attacker.vmcb);
      assert.equal(exit.exitCode, SvmExit.NPF, exit.reason ?? exit.name);
      if (exit.exitInfo2 === (want[block]! & ~0xfffn)) leaked++;

      // Negative control: the attacker's own ASID on the victim's VMSA is refused outright (no record for it).
      attacker.vmcb.control.asid = attacker.asid;
      const ctl = v.lab.machine.vmrun(attacker.vmcb);
      assert.equal(ctl.exitCode, VMEXIT_INVALID);
      if (ctl.exitInfo2 === (want[block]! & ~0xfffn)) controlLeaks++;

      assert.equal(victimDigest(v.lab), before, `trial ${t}: the victim's memory or VMSA changed`);
      assertVictimContinues(v, want);
    }
    assert.equal(leaked, TRIALS);
    assert.equal(controlLeaks, 0);
  });
});

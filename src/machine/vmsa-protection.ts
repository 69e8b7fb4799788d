/**
 * VMSA register protection — SEV_FEATURES bit 14, the CipherLeaks mitigation (docs/sev-interface.md §12.1, docs/threat-model.md
 * §2.2 item 9): a nonce stored at VMSA offset 0x300 is mixed into the register fields, so that the same register
 * value no longer gives the same ciphertext across exits. Off by default (docs/threat-model.md §1.1: later mitigations are
 * opt-in switches), enabled by a guest whose initial VMSA sets the bit.
 *
 * The model: at every #VMEXIT the CPU draws a fresh 64-bit nonce, writes it at 0x300 and XORs it into each
 * protected field before encryption; VMRUN removes it after decryption. Which fields AMD protects, and how the nonce
 * is mixed, are [unconfirmed] (AMD's firmware source names the bit and the nonce offset only); the GPRs, RIP and
 * RFLAGS are protected here.
 */
import { VMSA_LAYOUT } from "../measure/vmsa.ts";

export const SEV_FEATURE_VMSA_REG_PROT = 1n << 14n;
export const VMSA_NONCE_OFFSET = 0x300;

const PROTECTED = [
  "rax",
  "rbx",
  "rcx",
  "rdx",
  "rsp",
  "rbp",
  "rsi",
  "rdi",
  "r8",
  "r9",
  "r10",
  "r11",
  "r12",
  "r13",
  "r14",
  "r15",
  "rip",
  "rflags",
] as const;
const OFFSETS = PROTECTED.map((f) => VMSA_LAYOUT[f].offset);

function view(page: Uint8Array): DataView {
  return new DataView(page.buffer, page.byteOffset, page.byteLength);
}

/** Whether a plaintext VMSA page asks for register protection (its sev_features field). */
export function wantsRegisterProtection(page: Uint8Array): boolean {
  return (view(page).getBigUint64(VMSA_LAYOUT.sevFeatures.offset, true) & SEV_FEATURE_VMSA_REG_PROT) !== 0n;
}

/** Mixes `nonce` into the protected fields of a plaintext VMSA page, in place, and stores it at 0x300. */
export function protectRegisters(page: Uint8Array, nonce: bigint): void {
  const v = view(page);
  v.setBigUint64(VMSA_NONCE_OFFSET, nonce, true);
  for (const off of OFFSETS) v.setBigUint64(off, v.getBigUint64(off, true) ^ nonce, true);
}

/** Removes the nonce stored at 0x300 from the protected fields, in place (a zero nonce changes nothing). */
export function unprotectRegisters(page: Uint8Array): void {
  const v = view(page);
  const nonce = v.getBigUint64(VMSA_NONCE_OFFSET, true);
  for (const off of OFFSETS) v.setBigUint64(off, v.getBigUint64(off, true) ^ nonce, true);
  v.setBigUint64(VMSA_NONCE_OFFSET, 0n, true);
}

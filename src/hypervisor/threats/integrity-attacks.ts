/**
 * The guest programs and run helpers the memory-integrity attacks share, so that the attacks against SEV/SEV-ES
 * (integrity-gaps.test.ts, where they succeed) and against SEV-SNP (snp-integrity.test.ts, where the RMP stops
 * them) run exactly the same guest.
 */
import assert from "node:assert/strict";
import { SvmExit } from "../../machine/exit-codes.ts";
import type { HandledExit } from "../kvm/exit-handler.ts";

export function u64(bytes: Uint8Array): bigint {
  return new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
}

/** Runs the guest to its next HLT, handling every other exit; returns the exit that stopped it instead, if any. */
export function toHlt(step: () => HandledExit): HandledExit | undefined {
  for (let i = 0; i < 20; i++) {
    const h = step();
    if (h.exit.exitCode === SvmExit.HLT) return undefined;
    if (h.outcome.action === "stop") return h;
    assert.equal(h.outcome.action, "resume");
  }
  assert.fail("no HLT");
}

/** Runs the guest to its next HLT; the guest stopping instead fails the test with its reason. */
export function mustHlt(step: () => HandledExit): void {
  const stopped = toHlt(step);
  assert.equal(stopped, undefined, stopped?.outcome.action === "stop" ? stopped.outcome.reason : "");
}

/** Replay: the guest writes A, then B, then reports what it reads — A again if the hypervisor put A's ciphertext back. */
export const REPLAY = `
.private cell, 4096
.shared  mailbox, 4096
start:
loop:
    rdrand rax
    store [cell], rax           ; value A
    hlt                         ; the hypervisor copies the ciphertext of cell
    rdrand rax
    store [cell], rax           ; value B overwrites it
    hlt                         ; the hypervisor writes (or tries to write) A's ciphertext back
    load  rbx, [cell]
    store [mailbox], rbx        ; the guest's own service reports what it read
    hlt
    jmp   loop
`;

/** SEVered: an echo service that sends its response buffer — the secret, if the hypervisor remaps the GPA. */
export const SEVERED = `
.private secret, 4096
.private response, 4096
.shared  mailbox, 4096
start:
    mov   rax, 0x5afe5afe5afe5afe
    store [response], rax       ; what the echo service should send
loop:
    rdrand rax
    store [secret], rax         ; a fresh secret the guest never sends
    hlt                         ; a request arrives
    load  rbx, [response]
    store [mailbox], rbx        ; echo service: response buffer → shared mailbox
    hlt
    jmp   loop
`;

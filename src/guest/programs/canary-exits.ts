/**
 * The guest program behind `ciphervisor demo hypervisor-view` and the register-leak tests (docs/threat-model.md §8
 * item 1): before each of N exits it writes a fresh random 64-bit canary into private memory and loads fresh
 * canaries into all 16 general registers (RSP included), then takes one exit of a mixed kind — CPUID, OUT, IN,
 * WRMSR, RDMSR, HLT. Canaries come from RDRAND inside the guest, so the hypervisor never sees them in the image.
 *
 * Operands an exit needs are set after the canaries: CPUID's leaf (RCX stays a canary — Linux still sends it as
 * the sub-leaf), the MSR index (RAX/RDX of WRMSR stay canaries — Linux sends both in full), OUT's value stays a
 * canary (Linux sends only the low bytes the port takes). Those are the exposures the GHCB valid bits declare.
 */
import { GPR_NAMES } from "../../machine/isa.ts";

/** Exit kinds in the order the loop cycles through them (counter mod 8). */
export const CANARY_EXIT_KINDS = ["cpuid", "out", "wrmsr", "hlt", "cpuid", "in", "rdmsr", "hlt"] as const;

const FILL = GPR_NAMES.map((r) => `    rdrand ${r}`).join("\n");

/** Assembly source for `exits` iterations (ISA: docs/guest-isa.md). */
export function canaryExitsProgram(exits: number): string {
  if (!Number.isInteger(exits) || exits < 1 || exits > 1_000_000)
    throw new RangeError("exits must be 1..1000000");
  const secretBytes = Math.ceil((exits * 8) / 4096) * 4096;
  return `; canary-exits: fresh canaries in every register and in private memory before each exit
.equ EXITS, ${exits}
.equ TSC_AUX, 0xc0000103
.private state, 4096            ; [state] = exits left, [state+8] = next memory-canary slot
.private secrets, ${secretBytes}
.entry start
start:
    mov   rax, EXITS
    store [state], rax
    mov   rax, secrets
    store [state+8], rax
loop:
    rdrand rax                   ; a memory canary, kept in private memory
    load  rbx, [state+8]
    store [rbx], rax
    add   rbx, 8
    store [state+8], rbx
    load  rcx, [state]
    and   rcx, 7
    cmp   rcx, 0
    jz    do_cpuid
    cmp   rcx, 1
    jz    do_out
    cmp   rcx, 2
    jz    do_wrmsr
    cmp   rcx, 4
    jz    do_cpuid
    cmp   rcx, 5
    jz    do_in
    cmp   rcx, 6
    jz    do_rdmsr
do_hlt:
${FILL}
    hlt
    jmp   next
do_cpuid:
${FILL}
    mov   rax, 0x8000001f        ; leaf; RCX (a canary) goes along as the sub-leaf
    cpuid
    jmp   next
do_out:
${FILL}
    out32 0x80                   ; POST port: only the low 32 bits of RAX leave the guest
    jmp   next
do_in:
${FILL}
    in8   0x3fd
    jmp   next
do_wrmsr:
${FILL}
    mov   rcx, TSC_AUX           ; RAX and RDX (canaries) are the value written
    wrmsr
    jmp   next
do_rdmsr:
${FILL}
    mov   rcx, TSC_AUX
    rdmsr
next:
    load  rax, [state]
    sub   rax, 1
    store [state], rax
    jnz   loop
    mov   rax, 0
    out8  0xf4                   ; isa-debug-exit: power off
`;
}

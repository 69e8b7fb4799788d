/**
 * The kernel's `printk`: the one piece of kernel text written in the guest ISA rather than run natively, so that
 * every byte of a kernel message reaches the serial port through a real `OUT` — an IOIO intercept for an ordinary
 * or SEV guest, a #VC and a GHCB exchange for an SEV-ES guest — exactly the path a program's own output takes.
 *
 * Calling convention (the native kernel sets it up): RSI = the text, RCX = its length (≥ 1), RDI = where to go
 * when done. Clobbers RAX, RCX, RSI.
 */
import { assemble, type GuestProgram } from "../assembler.ts";
import { PRINTK_GPA } from "../layout.ts";

const SOURCE = `; kernel printk: write RCX bytes at [RSI] to COM1, then jump to RDI
.entry printk
printk:
    load8 rax, [rsi]
    out8 0x3f8
    add rsi, 1
    sub rcx, 1
    jnz printk
    jmp rdi
`;

let cached: GuestProgram | undefined;

/** The assembled routine, at PRINTK_GPA (one page). */
export function printkProgram(): GuestProgram {
  cached ??= assemble(SOURCE, { base: PRINTK_GPA });
  return cached;
}

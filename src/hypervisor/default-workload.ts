/**
 * The guest program a VM runs unless its spec names one: counts in private memory, reports over the serial port
 * and idles. Small, and it exercises an intercepted instruction in every security mode.
 */
import { assemble, type GuestProgram } from "../guest/assembler.ts";

export const DEFAULT_WORKLOAD = `; ciphervisor default workload
.private state, 4096
.entry start
start:
    mov rbx, 0
    mov rcx, 16
count:
    add rbx, 1
    store [state], rbx
    sub rcx, 1
    jnz count
    mov rax, 0x4f
    out8 0x3f8
    mov rax, 0x4b
    out8 0x3f8
    mov rax, 0x0a
    out8 0x3f8
idle:
    hlt
    jmp idle
`;

let assembled: GuestProgram | undefined;

/**
 * `DEFAULT_WORKLOAD` assembled, once per process: every boot of a VM without its own program loads it, and
 * assembling it again at each power-on cost about a tenth of the boot. `buildGuestImage` copies the code into the
 * guest's pages and never writes to the program, so one assembly serves every VM.
 */
export function defaultWorkloadProgram(): GuestProgram {
  assembled ??= assemble(DEFAULT_WORKLOAD);
  return assembled;
}

/**
 * The guest program a VM runs unless its spec names one: counts in private memory, reports over the serial port
 * and idles. Small, and it exercises an intercepted instruction in every security mode.
 */
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

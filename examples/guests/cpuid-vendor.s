; cpuid-vendor.s — asks CPUID leaf 0 for the vendor string and prints it, then the SEV leaf
; 0x8000001F: under SEV the host reports the SEV bits and the C-bit position (EBX[5:0]).
; The answers are also left in a shared page, where the hypervisor (and a test) can read them.
; modes: none sev sev-es
; expect-console: AuthenticAMD\n

.shared answers, 4096
.entry start
start:
    mov   rax, 0
    mov   rcx, 0
    cpuid                       ; vendor in EBX, EDX, ECX
    mov   r8, rbx
    call  put4
    mov   r8, rdx
    call  put4
    mov   r8, rcx
    call  put4
    mov   rax, 10
    out8  0x3f8
    mov   rax, 0x8000001f
    mov   rcx, 0
    cpuid
    store32 [answers], rax      ; SEV feature bits
    store32 [answers+4], rbx    ; C-bit position, reduced physical-address bits
    mov   rax, 0
    out8  0xf4

; put4: prints the four bytes of r8, lowest first.
put4:
    mov   r9, 4
put4_next:
    mov   rax, r8
    and   rax, 0xff
    out8  0x3f8
    shr   r8, 8
    sub   r9, 1
    jnz   put4_next
    ret

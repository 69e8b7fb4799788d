; ghcb-msr-protocol.s — an SEV-ES guest program that talks to the hypervisor itself through the GHCB
; MSR protocol (sev-interface.md §12.4): it writes a CPUID request into the GHCB MSR (0xC001_0130),
; executes VMGEXIT, and reads the answer back from the same MSR. No GHCB page and no #VC involved:
; the request code lives in bits 11:0, the leaf in 63:32, the register (1 = EBX) in 31:30.
; modes: sev-es
; expect-console: 3\n

.equ GHCB_MSR, 0xc0010130
.equ CPUID_REQ, 0x004
.shared answers, 4096
.entry start
start:
    mov   rcx, GHCB_MSR
    rdmsr                       ; save the GHCB GPA the kernel registered
    mov   r12, rax
    mov   r13, rdx
    mov   rax, 0x40000000 + CPUID_REQ  ; bits 31:30 = 1: EBX
    mov   rdx, 0x8000001f              ; leaf in bits 63:32
    wrmsr
    vmgexit
    rdmsr                       ; EDX = EBX of leaf 0x8000001F, EAX low 12 bits = 0x005
    store32 [answers], rax
    store32 [answers+4], rdx
    mov   r8, rdx
    and   r8, 0x3f              ; the C-bit position
    mov   rax, r12              ; restore the GHCB GPA for the kernel's #VC handler
    mov   rdx, r13
    wrmsr
    ; print the C-bit position's last digit class: 51 → '3' (51 mod 16 = 3), 47 → 'f'
    mov   rax, r8
    and   rax, 0xf
    add   rax, '0'
    out8  0x3f8
    mov   rax, 10
    out8  0x3f8
    mov   rax, 0
    out8  0xf4

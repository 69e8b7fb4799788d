; secret-loop.s — the CipherLeaks victim (Li et al., USENIX Security 2021; threat-model.md §2.2 item 9).
; The guest draws a 1,024-bit secret with RDRAND and, bit by bit, leaves 0 or 1 in RAX at a HLT exit.
; Under SEV-ES the VMSA is encrypted — but deterministically at a fixed address, so the ciphertext
; of the 16-byte block holding RAX (VMSA 0x1F0) repeats for equal values: the hypervisor reads the
; secret from the ciphertext (see src/hypervisor/threats/ciphertext.test.ts). The two first exits use known
; values, as the public code before a secret computation does.
; modes: none sev sev-es

.equ WORDS, 16
.private secret, 4096
.entry start
start:
    mov   rax, 0
    hlt
    mov   rax, 1
    hlt
    mov   rbx, secret
    mov   rcx, WORDS
fill:
    rdrand rdx
    store [rbx], rdx
    add   rbx, 8
    sub   rcx, 1
    jnz   fill
    mov   rbx, secret
    mov   rcx, WORDS
word:
    load  rdx, [rbx]
    mov   rsi, 64
bit:
    mov   rax, rdx
    and   rax, 1
    hlt
    shr   rdx, 1
    sub   rsi, 1
    jnz   bit
    add   rbx, 8
    sub   rcx, 1
    jnz   word
    mov   rax, 0
    out8  0xf4

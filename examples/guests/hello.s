; hello.s — prints a greeting on the serial console (COM1, port 0x3f8) and powers off through
; isa-debug-exit (port 0xf4). Under SEV-ES every OUT becomes a #VC; the guest kernel's handler sends
; only the byte being written through the GHCB.
;
;   ciphervisor's test suite runs it in every mode (src/guest/examples.test.ts).
; modes: none sev sev-es
; expect-console: Hello from an encrypted guest!\n

.entry start
msg:
    .asciz "Hello from an encrypted guest!\n"
    .align 4
start:
    mov   rbx, msg
next:
    load8 rax, [rbx]            ; code pages are private: this read is decrypted
    cmp   rax, 0
    jz    done
    out8  0x3f8
    add   rbx, 1
    jmp   next
done:
    mov   rax, 0
    out8  0xf4

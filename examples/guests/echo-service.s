; echo-service.s — the SEVered victim (Morbitzer et al., EuroSec 2018; threat-model.md §2.2 item 3).
; A service copies its private response buffer into a shared mailbox whenever a request arrives
; (a HLT exit). Before SNP nothing stops the hypervisor from re-pointing the response buffer's GPA
; at another private page: the guest then "echoes" that page in plaintext
; (see src/hypervisor/threats/integrity-gaps.test.ts).
; modes: none sev sev-es
; max-exits: 6

.private secret, 4096
.private response, 4096
.shared  mailbox, 4096
.entry start
start:
    mov   rax, 0x5afe5afe5afe5afe
    store [response], rax
loop:
    rdrand rax
    store [secret], rax
    hlt                         ; a request arrives
    load  rbx, [response]
    store [mailbox], rbx
    hlt
    jmp   loop

/**
 * `GET /v1/vms/{id}/hypervisor-view`: a VM's registers and a private memory page as the guest holds them, beside
 * what the hypervisor can read of them. Values are hex strings: the 64-bit canaries are random numbers the guest drew
 * (RDRAND) for the experiment, and the hypervisor's bytes are what it reads anyway — no key, no key slot, no
 * firmware handle is part of this answer.
 */
import { Type } from "typebox";
import { SECURITY_MODES } from "../../control/inventory/types.ts";

const Hex = (description: string) => Type.String({ pattern: "^[0-9a-f]*$", description });

export const HypervisorViewRegisterSchema = Type.Object({
  reg: Type.String({ description: "A general register (rax … r15)" }),
  guest: Hex("The 64-bit value the guest held in it at the exit"),
  hypervisor: Hex("The 8 bytes at this register's slot in the save area the hypervisor reads, as a number"),
  foundAt: Type.Union([Type.String(), Type.Null()], {
    description:
      "Where the hypervisor can find the guest's value at that exit, e.g. 'VMCB +0x5f8'; null: nowhere",
  }),
  exposedByGuest: Type.Boolean({
    description: "The guest itself copied this value into the GHCB and set its valid bit (SEV-ES)",
  }),
});

/** SEV-SNP only: what SNP adds over SEV-ES, the hypervisor's write to the private page and the RMP's answer. */
export const HypervisorViewHostWriteSchema = Type.Object(
  {
    vmexit: Type.Integer({ description: "The #VMEXIT (1-based) after which the hypervisor tried" }),
    gpa: Type.Integer({ description: "Guest-physical address of the private page" }),
    hpa: Type.Integer({ description: "The host frame it maps to" }),
    wrote: Type.Literal("replay", {
      description: "What it wrote: the page's ciphertext as launched, before the guest stored its canaries",
    }),
    refused: Type.Boolean({
      description: "The write faulted (#PF with the RMP bit) and nothing was written",
    }),
    fault: Type.Optional(
      Type.Object({
        code: Type.String({ description: "RMP_VIOLATION" }),
        errorCode: Type.String({ description: "The #PF error code, e.g. 0x80000003 (P | W | RMP)" }),
        message: Type.String(),
      }),
    ),
    unchanged: Type.Boolean({ description: "DRAM holds the page as it was before the attempt" }),
    rmp: Type.Optional(
      Type.Object(
        {
          assigned: Type.Boolean(),
          asid: Type.Integer(),
          gpa: Type.Integer(),
          validated: Type.Boolean(),
          immutable: Type.Boolean(),
        },
        { description: "The frame's RMP entry: why the write was refused" },
      ),
    ),
  },
  { description: "SEV-SNP only: the hypervisor's replay of the private page and what the RMP did" },
);

export const HypervisorViewSchema = Type.Object(
  {
    vmId: Type.String(),
    vm: Type.String(),
    mode: Type.Enum([...SECURITY_MODES]),
    generation: Type.String(),
    guestOs: Type.String(),
    lab: Type.String({
      description: "How the view was produced (a deterministic boot of this configuration)",
    }),
    saveArea: Type.Object({
      kind: Type.Enum(["vmcb", "vmsa-ciphertext"]),
      label: Type.String(),
    }),
    columns: Type.Object({
      guest: Type.String({ description: "What the guest column shows" }),
      hypervisor: Type.String({ description: "What the hypervisor column shows" }),
    }),
    exits: Type.Array(
      Type.Object({
        kind: Type.String({ description: "CPUID, IO, MSR or HLT" }),
        vmexit: Type.Integer({ description: "Number of the #VMEXIT it produced (1-based)" }),
        registers: Type.Array(HypervisorViewRegisterSchema),
      }),
    ),
    ghcb: Type.Object({
      exposed: Type.Array(Hex("A register value the guest put in the GHCB with its valid bit set")),
    }),
    memory: Type.Object({
      gpa: Type.Integer({ description: "Guest-physical address of the private page" }),
      hpa: Type.Integer({ description: "The host frame the hypervisor's nested page table maps it to" }),
      guest: Hex("The page's first bytes as the guest holds them (the canaries it stored)"),
      hypervisor: Hex("The same bytes as stored in DRAM, read by the hypervisor"),
      canaries: Type.Array(
        Type.Object({
          value: Hex("A 64-bit canary the guest stored in the page"),
          visible: Type.Boolean({ description: "Found anywhere in DRAM as stored (either byte order)" }),
        }),
      ),
    }),
    summary: Type.Object({
      registersHeld: Type.Integer(),
      registersVisible: Type.Integer(),
      visibleNotExposed: Type.Integer({ description: "Visible without the guest having exposed them" }),
      memoryCanaries: Type.Integer(),
      memoryCanariesVisible: Type.Integer(),
    }),
    hostWrite: Type.Optional(HypervisorViewHostWriteSchema),
    verdict: Type.String(),
  },
  { $id: "HypervisorView" },
);

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
    verdict: Type.String(),
  },
  { $id: "HypervisorView" },
);

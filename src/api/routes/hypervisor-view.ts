/**
 * `GET /v1/vms/{id}/hypervisor-view`: what a hypervisor can read of this VM, next to what the guest holds — the
 * dashboard's "hypervisor view" page. The VM's configuration (security mode, host CPU generation, guest OS) is
 * booted on an emulated lab host, deterministically from the VM's id, with the guest program of `ciphervisor demo
 * hypervisor-view`: fresh RDRAND canaries in all 16 registers and in a private page before every exit. The
 * hypervisor's column comes only from `hypervisor/introspection` (the save area it reads, the GHCB, DRAM as stored),
 * so it can show nothing real hardware would hide. `?mode=` boots the same VM in another mode, to compare. An SEV-SNP
 * VM boots through SNP's launch and the RMP (introspection/snp-lab.ts), and its answer adds `hostWrite`: the
 * hypervisor's replay of the private page, refused by the RMP (introspection/host-write.ts).
 */
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import type { SecurityMode } from "../../control/inventory/types.ts";
import { getVm } from "../../control/services/context.ts";
import { canaryExitsProgram } from "../../guest/programs/canary-exits.ts";
import { findValue, hex64, runCanaryExperiment } from "../../hypervisor/introspection/canary-experiment.ts";
import { type HostWriteAttempt, snpVerdict } from "../../hypervisor/introspection/host-write.ts";
import { createModeLab } from "../../hypervisor/introspection/mode-lab.ts";
import { GENERATIONS, type Generation } from "../../machine/cpu-models.ts";
import type { OperationDeps } from "../operation-response.ts";
import { errorResponses, IdParams } from "../schemas/common.ts";
import { HypervisorViewSchema } from "../schemas/hypervisor-view.ts";
import { SecurityModeSchema } from "../schemas/vm.ts";

/** Exits the guest takes; the first `SHOWN_EXITS` are answered register by register, the summary counts all. */
const EXITS = 8;
const SHOWN_EXITS = 4;
/** Canary slots of the private page shown byte for byte (8 bytes each). */
const SHOWN_SLOTS = 4;

/** The save area the hypervisor reads at an exit, per mode (docs/sev-interface.md §12.5). */
const SAVE_AREA: Record<SecurityMode, { kind: "vmcb" | "vmsa-ciphertext"; label: string }> = {
  none: { kind: "vmcb", label: "VMCB save area (plaintext)" },
  sev: { kind: "vmcb", label: "VMCB save area (plaintext)" },
  "sev-es": { kind: "vmsa-ciphertext", label: "VMSA (ciphertext)" },
  "sev-snp": { kind: "vmsa-ciphertext", label: "VMSA (ciphertext)" },
};

const HYPERVISOR_COLUMN: Record<SecurityMode, string> = {
  none: "No encryption: the hypervisor reads every register in the VMCB save area and every page of DRAM in plaintext.",
  sev: "Plain SEV: private pages are ciphertext in DRAM, but at every exit the CPU leaves all registers in the VMCB save area in plaintext.",
  "sev-es":
    "SEV-ES: registers stay in the VMSA, encrypted with the VM's key; the hypervisor reads ciphertext there and only the GHCB fields the guest marked valid.",
  "sev-snp":
    "SEV-SNP: as SEV-ES, registers stay in the encrypted VMSA and the hypervisor reads only valid GHCB fields; the Reverse Map Table also refuses its writes to guest pages.",
};

/** Verdicts that follow from the mode alone; SEV-SNP's comes from the run (`snpVerdict`, host-write.ts). */
const VERDICT: Record<Exclude<SecurityMode, "sev-snp">, string> = {
  none: "No encryption: registers and memory are plaintext to the hypervisor.",
  sev: "Plain SEV: memory is encrypted, but every register lands in the VMCB save area in plaintext at every exit.",
  "sev-es":
    "SEV-ES: registers stay in the encrypted VMSA; the hypervisor sees only what the guest put in the GHCB with a valid bit.",
};

const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");

/** The answer's `hostWrite` member (schemas/hypervisor-view.ts). */
function hostWriteAnswer(h: HostWriteAttempt) {
  return {
    vmexit: h.exitIndex + 1,
    gpa: h.gpa,
    hpa: h.hpa,
    wrote: h.wrote,
    refused: h.refused,
    ...(h.fault ? { fault: h.fault } : {}),
    unchanged: h.unchanged,
    ...(h.rmp ? { rmp: h.rmp } : {}),
  };
}

/** The private page the guest program stores its memory canaries in: as the guest holds it and as DRAM stores it. */
function privatePage(mode: SecurityMode, generation: Generation, guestOs: string, seed: string) {
  const stored = new Map<number, bigint>();
  let secrets = -1;
  const lab = createModeLab({
    source: canaryExitsProgram(SHOWN_SLOTS),
    mode,
    generation,
    guestOs,
    seed: `hypervisor-view-page:${seed}`,
    observer: {
      onStore: (gva, size, value) => {
        if (size === 8 && gva >= secrets && gva < secrets + SHOWN_SLOTS * 8) stored.set(gva - secrets, value);
      },
    },
  });
  // The tiny guest maps guest-virtual = guest-physical (guest/image.ts).
  secrets = lab.image.program.symbols.get("secrets") ?? 0;
  lab.run({ maxExits: SHOWN_SLOTS * 2 + 64 });
  const guest = new Uint8Array(SHOWN_SLOTS * 8);
  const dv = new DataView(guest.buffer);
  for (const [off, v] of stored) dv.setBigUint64(off, v, true);
  const image = lab.view.memoryImage();
  const canaries = [...stored.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([, v]) => ({
      value: hex64(v),
      visible: image.some((f) => findValue(f.bytes, v).length > 0),
    }));
  return {
    gpa: secrets,
    hpa: lab.view.frameOf(secrets) ?? 0,
    guest: hex(guest),
    hypervisor: hex(lab.view.readGuestPhysical(secrets, guest.length)),
    canaries,
  };
}

export function hypervisorViewRoutes(root: FastifyInstance, deps: OperationDeps): void {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  const inv = deps.cp.context.inventory;

  app.get(
    "/v1/vms/:id/hypervisor-view",
    {
      config: { permission: "inventory.read", action: "vm.hypervisor-view" },
      schema: {
        tags: ["vms"],
        summary:
          "What the hypervisor can read of this VM's registers and memory, beside what the guest holds",
        description:
          "Boots the VM's configuration (mode, host CPU generation, guest OS) on an emulated lab host, deterministically from its id, with fresh random canaries in every register and a private page before each exit; the hypervisor's column is read through the hypervisor's view only. ?mode= compares another mode.",
        params: IdParams,
        querystring: Type.Object(
          { mode: Type.Optional(SecurityModeSchema) },
          { additionalProperties: false },
        ),
        response: { 200: HypervisorViewSchema, ...errorResponses },
      },
    },
    async (req) => {
      const vm = await getVm(inv, req.params.id);
      const mode = (req.query.mode ?? vm.securityMode) as SecurityMode;
      const host = vm.hostId === null ? undefined : await inv.hosts.get(vm.hostId);
      const generation: Generation = (GENERATIONS as readonly string[]).includes(host?.cpuGeneration ?? "")
        ? (host?.cpuGeneration as Generation)
        : "milan";
      const guestOs = vm.spec.guestOs;
      const r = runCanaryExperiment({ mode, exits: EXITS, seed: vm.id, generation, guestOs });
      const exposed = new Set(r.exposedByGuest);
      return {
        vmId: vm.id,
        vm: vm.name,
        mode,
        generation,
        guestOs,
        lab: `a deterministic boot of this VM's configuration on an emulated ${generation} lab host (seed: the VM id), ${EXITS} exits`,
        saveArea: SAVE_AREA[mode],
        columns: {
          guest:
            "What the guest holds: the random 64-bit values it drew into its registers just before each exit, and the bytes of its private page.",
          hypervisor: HYPERVISOR_COLUMN[mode],
        },
        exits: r.perExit.slice(0, SHOWN_EXITS).map((e) => ({
          kind: e.kind,
          vmexit: e.exitIndex + 1,
          registers: e.registers.map((s) => ({
            reg: s.reg,
            guest: hex64(s.value),
            hypervisor: hex64(s.saveAreaReads),
            foundAt: s.foundAt ?? null,
            exposedByGuest: s.foundAt !== undefined && exposed.has(s.value),
          })),
        })),
        ghcb: { exposed: r.exposedByGuest.map(hex64) },
        memory: privatePage(mode, generation, guestOs, vm.id),
        summary: {
          registersHeld: r.registerVisibility.held,
          registersVisible: r.registerVisibility.visible,
          visibleNotExposed: r.registerVisibility.visibleNotExposed,
          memoryCanaries: r.canaries.memory.length,
          memoryCanariesVisible: r.memoryCanariesVisible.length,
        },
        ...(r.hostWrite ? { hostWrite: hostWriteAnswer(r.hostWrite) } : {}),
        verdict: mode === "sev-snp" ? snpVerdict(r.hostWrite) : VERDICT[mode],
      };
    },
  );
}

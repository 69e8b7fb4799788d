/** Host request and response schemas. */
import { Type } from "typebox";
import { HOST_DRIVERS, HOST_ES_MODES } from "../../control/inventory/types.ts";
import { GENERATIONS } from "../../machine/cpu-models.ts";
import { HOST_VMM_PROFILES } from "../../measure/vmsa.ts";
import { Text } from "./common.ts";

const PoolSchema = Type.Object({
  first: Type.Integer(),
  last: Type.Integer(),
  size: Type.Integer(),
  used: Type.Integer(),
  free: Type.Integer(),
});

const FirmwareSchema = Type.Object({
  apiMajor: Type.Integer(),
  apiMinor: Type.Integer(),
  build: Type.Integer(),
});

/** docs/sev-interface.md §8.5: which reset-state VMSA the host's SEV-ES launches measure. */
export const VmmProfileSchema = Type.Enum([...HOST_VMM_PROFILES], {
  description:
    "How the host's QEMU creates SEV/SEV-ES VMs, and so the VMSAs every SEV-ES launch on it measures: qemu-legacy (QEMU's default sev-guest, legacy KVM_SEV_ES_INIT: MXCSR and FCW 0) or qemu (KVM_SEV_INIT2: MXCSR 0x1F80, FCW 0x037F). `owner measure --vmm` takes it",
});

export const HostSchema = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    clusterId: Type.Union([Type.String(), Type.Null()]),
    driver: Type.String(),
    address: Type.String(),
    cpuGeneration: Type.String({
      description:
        "naples, rome, milan or genoa; unknown for a host that reports no SEV (e.g. a libvirt host on Intel, with SEV off, or libvirt's test driver), whose SEV and SEV-ES pools are empty and which takes ordinary VMs only",
    }),
    sevState: Type.String(),
    esMode: Type.String(),
    vmmProfile: VmmProfileSchema,
    maintenance: Type.String(),
    connection: Type.String(),
    firmware: Type.Union([FirmwareSchema, Type.Null()], {
      description:
        "The SEV firmware's API version and build as the host last reported them (PLATFORM_STATUS; libvirt: domcapabilities). Part of the host record, so inventory.read shows it; null when the host has no SEV, or was registered by an older release and not reached since",
    }),
    pools: Type.Object(
      { sev: PoolSchema, sevEs: PoolSchema, snp: PoolSchema },
      {
        description:
          "ASID pools as placement counts them. The low range 1..min_sev_asid-1 serves the host's esMode (sev-es or snp) unless Ciphertext Hiding splits it: snp 1..N, sevEs N+1..min_sev_asid-1",
      },
    ),
    activeVms: Type.Integer(),
    createdAt: Type.String(),
    updatedAt: Type.String(),
    version: Type.Integer(),
  },
  { $id: "Host" },
);

export const RegisterHostBody = Type.Object(
  {
    name: Type.String({ pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$" }),
    driver: Type.Optional(Type.Enum([...HOST_DRIVERS])),
    address: Type.Optional(Text({ minLength: 1, maxLength: 255 })),
    clusterId: Type.Optional(Text({ maxLength: 64 })),
    emulated: Type.Optional(
      Type.Object(
        {
          generation: Type.Enum([...GENERATIONS]),
          seed: Type.Optional(Type.Union([Text({ maxLength: 64 }), Type.Integer({ minimum: 0 })])),
          minSevAsid: Type.Optional(Type.Integer({ minimum: 1, maximum: 1007 })),
          memoryMiB: Type.Optional(Type.Integer({ minimum: 64, maximum: 1024 * 1024 })),
          vmmProfile: Type.Optional(VmmProfileSchema),
          ciphertextHidingAsids: Type.Optional(
            Type.Integer({
              minimum: 0,
              maximum: 1006,
              description:
                "Linux 6.18's kvm_amd.ciphertext_hiding_asids: ASIDs 1..N serve SEV-SNP guests only, with Ciphertext Hiding (turin)",
            }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    esMode: Type.Optional(
      Type.Enum([...HOST_ES_MODES], {
        description:
          "What the low ASID range serves when Ciphertext Hiding does not split it: sev-es (default) or snp (an SNP host; SEV-ES and SEV-SNP exclude each other per host, CVE-2025-48514)",
      }),
    ),
  },
  { additionalProperties: false },
);

export const DrainPlanSchema = Type.Object({
  host: Type.String(),
  steps: Type.Array(
    Type.Object({
      vmId: Type.String(),
      vm: Type.String(),
      securityMode: Type.String(),
      powerState: Type.String(),
      path: Type.String(),
      reason: Type.String(),
      pool: Type.Optional(Type.String()),
      target: Type.Optional(Type.Object({ hostId: Type.String(), host: Type.String() })),
      blocked: Type.Optional(Type.String()),
      needsOwner: Type.Optional(Type.Boolean()),
    }),
  ),
});

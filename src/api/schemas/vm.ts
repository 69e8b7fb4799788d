/** VM request and response schemas. Ranges mirror the hypervisor's spec validation, so the API rejects early. */
import { Type } from "typebox";
import { IMAGE_NAME } from "../../control/images/inspect.ts";
import {
  ATTESTATION_STATES,
  DEVICE_KINDS,
  POWER_STATES,
  SECURITY_MODES,
  VM_ORDERS,
} from "../../control/inventory/types.ts";
import { BULK_POWER_ACTIONS } from "../../control/services/bulk-power.ts";
import { DEFAULT_RESTART_PARALLEL, MAX_RESTART_PARALLEL } from "../../control/services/bulk-update.ts";
import { GUEST_OS_PROFILES } from "../../guest/os-profiles.ts";
import { MAX_MEMORY_MIB, MAX_VCPUS } from "../../hypervisor/vm-spec.ts";
import { TEXT_PATTERN, Text } from "./common.ts";

export const VM_NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$";
/** Image names follow the VM name rule (`control/images/inspect.ts`). */
export const IMAGE_NAME_PATTERN = IMAGE_NAME.source;

export const SecurityModeSchema = Type.Enum([...SECURITY_MODES], { description: "none, sev or sev-es" });
export const PowerStateSchema = Type.Enum([...POWER_STATES]);

/** The 32-bit SEV guest policy (docs/sev-interface.md §6): NODBG=0x1, NOKS=0x2, ES=0x4, NOSEND=0x8, DOMAIN=0x10, SEV=0x20. */
export const PolicySchema = Type.Integer({
  minimum: 0,
  maximum: 0xffffffff,
  description: "SEV guest policy (u32)",
});

/** Standard base64 text (RFC 4648 section 4, padded), as QEMU's sev-snp-guest properties take it. */
function Base64(o: { maxLength: number; description: string }) {
  return Type.String({
    pattern: "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$",
    minLength: 4,
    ...o,
  });
}

export const VmSpecSchema = Type.Object(
  {
    vcpus: Type.Integer({ minimum: 1, maximum: MAX_VCPUS }),
    memoryMiB: Type.Integer({ minimum: 16, maximum: MAX_MEMORY_MIB }),
    guestOs: Type.Enum(
      GUEST_OS_PROFILES.map((p) => p.id),
      { description: "A guest OS profile" },
    ),
    firmware: Type.Enum(["efi", "bios"]),
    hardwareVersion: Type.Integer({
      minimum: 4,
      maximum: 99,
      description: "vSphere-style virtual hardware version",
    }),
    machine: Type.Optional(Type.Enum(["q35", "pc"])),
    secureBoot: Type.Optional(Type.Boolean()),
    devices: Type.Optional(
      Type.Array(
        Type.Object(
          {
            kind: Type.Enum([...DEVICE_KINDS]),
            detail: Type.Optional(Text({ minLength: 1, maxLength: 255 })),
          },
          { additionalProperties: false },
        ),
        { maxItems: 64 },
      ),
    ),
    attestation: Type.Optional(
      Type.Boolean({ description: "Start paused after LAUNCH_MEASURE for the guest owner (encrypted VMs)" }),
    ),
    boot: Type.Optional(
      Type.Object(
        {
          firmwareImage: Type.Optional(
            Type.String({
              pattern: IMAGE_NAME_PATTERN,
              description:
                "A firmware image of the catalog (a real OVMF) instead of the built-in emulated UEFI",
            }),
          ),
          kernel: Type.Optional(
            Type.String({
              pattern: IMAGE_NAME_PATTERN,
              description:
                "A kernel image of the catalog: measured direct boot with QEMU's kernel-hashes table",
            }),
          ),
          initrd: Type.Optional(
            Type.String({ pattern: IMAGE_NAME_PATTERN, description: "An initrd image (with kernel)" }),
          ),
          cmdline: Type.Optional(
            Text({ maxLength: 4096, description: "The kernel command line (with kernel)" }),
          ),
        },
        { additionalProperties: false, description: "Boot images by catalog name (`/v1/images`)" },
      ),
    ),
    snp: Type.Optional(
      Type.Object(
        {
          hostData: Type.Optional(
            Base64({ maxLength: 44, description: "QEMU host-data: 32 bytes the reports carry as HOST_DATA" }),
          ),
          idBlock: Type.Optional(
            Base64({
              maxLength: 128,
              description: "QEMU id-block: the owner's 96-byte ID block (SNP ABI 56860)",
            }),
          ),
          idAuth: Type.Optional(
            Base64({ maxLength: 5464, description: "QEMU id-auth: the ID block's 4096-byte authentication" }),
          ),
          authorKeyEnabled: Type.Optional(
            Type.Boolean({ description: "QEMU author-key-enabled: id-auth carries the author key too" }),
          ),
        },
        {
          additionalProperties: false,
          description: "SEV-SNP launch options (SNP_LAUNCH_FINISH), sev-snp VMs only",
        },
      ),
    ),
  },
  { additionalProperties: false, $id: "VmSpec" },
);

/**
 * Labels: keys of 1–63 characters and values of up to 255, neither with control characters. The keys are checked
 * by `propertyNames` (a record's key schema alone only picks which values to check), and a key the value pattern
 * does not cover is refused rather than let through unchecked.
 */
export const LabelsSchema = Type.Record(Type.String({ pattern: TEXT_PATTERN }), Text({ maxLength: 255 }), {
  maxProperties: 64,
  additionalProperties: false,
  propertyNames: Text({ minLength: 1, maxLength: 63 }),
});

export const CreateVmBody = Type.Object(
  {
    name: Type.String({ pattern: VM_NAME_PATTERN }),
    spec: Type.Ref("VmSpec"),
    securityMode: Type.Optional(SecurityModeSchema),
    policy: Type.Optional(PolicySchema),
    labels: Type.Optional(LabelsSchema),
    clusterId: Type.Optional(Text({ maxLength: 64 })),
    hostId: Type.Optional(Text({ maxLength: 64, description: "Register the VM on this host" })),
  },
  { additionalProperties: false },
);

export const VmSchema = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    clusterId: Type.Union([Type.String(), Type.Null()]),
    hostId: Type.Union([Type.String(), Type.Null()]),
    spec: Type.Ref("VmSpec"),
    powerState: PowerStateSchema,
    securityMode: SecurityModeSchema,
    policy: Type.Integer(),
    attestationState: Type.Enum([...ATTESTATION_STATES]),
    liveMigratable: Type.Object({ status: Type.Boolean(), reason: Type.Optional(Type.String()) }),
    labels: Type.Record(Type.String(), Type.String()),
    createdAt: Type.String(),
    updatedAt: Type.String(),
    version: Type.Integer(),
  },
  { $id: "Vm" },
);

export const VmListQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 5000, default: 100 })),
    cursor: Type.Optional(Text({ maxLength: 512 })),
    hostId: Type.Optional(Text({ maxLength: 64, description: "a host id, or 'none' for unplaced VMs" })),
    clusterId: Type.Optional(Text({ maxLength: 64 })),
    powerState: Type.Optional(PowerStateSchema),
    securityMode: Type.Optional(SecurityModeSchema),
    namePrefix: Type.Optional(Text({ maxLength: 255 })),
    labels: Type.Optional(Text({ maxLength: 2000, description: "key=value pairs, comma-separated" })),
    sort: Type.Optional(
      Type.Enum([...VM_ORDERS], {
        default: "id",
        description:
          "id (creation order), or a column ascending or, with '-', descending: name, host, power, mode (security mode), guestOs, policy. Ties are broken by id. host sorts by the host's id, not its name; VMs without a host come after every host ascending and first descending. Filters apply as usual; a cursor continues only the order it came from (else 400 INVALID_INPUT)",
      }),
    ),
  },
  { additionalProperties: false },
);

export const MigrateBody = Type.Object(
  {
    mode: Type.Enum(["live", "cold"]),
    targetHostId: Type.Optional(Text({ maxLength: 64 })),
  },
  { additionalProperties: false },
);

export const SnapshotBody = Type.Object(
  {
    name: Type.String({ pattern: VM_NAME_PATTERN }),
    memory: Type.Optional(Type.Boolean({ description: "Include guest memory (refused for SEV/SEV-ES VMs)" })),
  },
  { additionalProperties: false },
);

export const CloneBody = Type.Object(
  { name: Type.String({ pattern: VM_NAME_PATTERN }) },
  { additionalProperties: false },
);

export const SelectorSchema = Type.Object(
  {
    all: Type.Optional(Type.Boolean()),
    ids: Type.Optional(Type.Array(Text({ maxLength: 64 }), { maxItems: 10000 })),
    namePrefix: Type.Optional(Text({ minLength: 1, maxLength: 255 })),
    labels: Type.Optional(LabelsSchema),
    hostId: Type.Optional(
      Type.Union([Text({ maxLength: 64 }), Type.Null()], {
        description: "a host id, or null for unplaced VMs",
      }),
    ),
    clusterId: Type.Optional(Text({ maxLength: 64 })),
    powerState: Type.Optional(PowerStateSchema),
    securityMode: Type.Optional(SecurityModeSchema),
  },
  { additionalProperties: false },
);

export const BulkSetSchema = Type.Object(
  { securityMode: Type.Optional(SecurityModeSchema), policy: Type.Optional(PolicySchema) },
  { additionalProperties: false },
);

export const BulkUpdateBody = Type.Object(
  {
    selector: SelectorSchema,
    set: BulkSetSchema,
    restart: Type.Optional(
      Type.Boolean({
        description:
          "Also change running VMs: power off, change, power on again (within their hosts' free key slots), in this operation",
      }),
    ),
    parallel: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: MAX_RESTART_PARALLEL,
        default: DEFAULT_RESTART_PARALLEL,
        description: "Restarts at once",
      }),
    ),
  },
  { additionalProperties: false },
);

export const BulkPowerBody = Type.Object(
  {
    selector: SelectorSchema,
    action: Type.Enum([...BULK_POWER_ACTIONS]),
    parallel: Type.Optional(
      Type.Integer({ minimum: 1, maximum: MAX_RESTART_PARALLEL, description: "VMs at a time (default 8)" }),
    ),
  },
  { additionalProperties: false },
);

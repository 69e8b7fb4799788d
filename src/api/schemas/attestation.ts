/**
 * Schemas of the attestation routes. Request bodies carry base64 (sizes are checked by the service, which names
 * the field and the byte counts); responses declare every field, so the serializer drops anything else — the
 * session and the secret are never part of any response schema.
 */
import { Type } from "typebox";
import { VmmProfileSchema } from "./host.ts";

const Base64 = (description: string, maxLength: number) =>
  Type.String({ minLength: 1, maxLength, pattern: "^\\s*[A-Za-z0-9+/]*={0,2}\\s*$", description });

export const LaunchSessionBody = Type.Object(
  {
    godhCert: Base64(
      "The guest owner's GODH certificate, base64 of 0x824 bytes (sevctl's NAME_godh.b64)",
      4096,
    ),
    session: Base64("The session blob, base64 of 0x80 bytes (sevctl's NAME_session.b64)", 512),
  },
  { additionalProperties: false },
);

export const LaunchSessionAnswer = Type.Object({
  vm: Type.String(),
  name: Type.String(),
  hostId: Type.String(),
  host: Type.String(),
  attestationState: Type.String(),
  policy: Type.Integer({
    description:
      "The policy the session must have been made for (its policy MAC is checked at LAUNCH_START: a mismatch fails the power-on with POLICY_FAILURE)",
  }),
  note: Type.String(),
});

export const LaunchSecretBody = Type.Object(
  {
    header: Base64("The LAUNCH_SECRET packet header, base64 of 0x34 bytes", 256),
    secret: Base64("The encrypted payload, base64 (at most 16 KiB, in 16-byte blocks)", 32 * 1024),
  },
  { additionalProperties: false },
);

export const LaunchFinishAnswer = Type.Object({
  vm: Type.String(),
  name: Type.String(),
  powerState: Type.String(),
  attestationState: Type.String(),
});

export const LaunchMeasurementSchema = Type.Object({
  vm: Type.String(),
  ownerMeasure: Type.Array(Type.String(), {
    description:
      "The arguments of `ciphervisor owner measure` that recompute the launch digest from these values and the owner's own images (placeholders FIRMWARE, KERNEL, INITRD, CMDLINE, VCPU_TYPE)",
  }),
  hostId: Type.String(),
  host: Type.String(),
  measurement: Type.String({
    description: "base64 of MEASURE ‖ MNONCE (48 bytes), as LAUNCH_MEASURE returned it",
  }),
  apiMajor: Type.Integer(),
  apiMinor: Type.Integer(),
  build: Type.Integer(),
  policy: Type.Integer({ description: "The guest policy the VM was launched with" }),
  loaderSha256: Type.String({ description: "SHA-256 (hex) of the firmware image the host loads" }),
  attestationState: Type.String(),
  securityMode: Type.Enum(["sev", "sev-es"], { description: "`owner measure --mode`" }),
  vmmProfile: VmmProfileSchema,
  vcpus: Type.Integer({
    description: "vCPUs launched (SEV-ES measures one VMSA each): `owner measure --vcpus`",
  }),
  vcpuType: Type.Optional(
    Type.String({
      description:
        "The QEMU CPU model the guest sees (`owner measure --vcpu-type`); absent when the host does not report it",
    }),
  ),
  cpuSignature: Type.Optional(
    Type.Object(
      {
        family: Type.Integer(),
        model: Type.Integer(),
        stepping: Type.Integer(),
        value: Type.Integer({
          description:
            "CPUID(1).EAX of the guest's vCPU, which the SEV-ES VMSA carries in RDX (`owner measure --vcpu-sig`)",
        }),
      },
      { description: "The CPU identity the guest sees; absent when the host does not report it" },
    ),
  ),
  images: Type.Optional(
    Type.Object(
      {
        firmware: Type.Object({ name: Type.String(), sha256: Type.String() }),
        kernel: Type.Optional(Type.Object({ sha256: Type.String() })),
        initrd: Type.Optional(Type.Object({ sha256: Type.String() })),
        cmdline: Type.Optional(
          Type.Object({ sha256: Type.String({ description: "over the command line and its NUL" }) }),
        ),
      },
      {
        description:
          "SHA-256 (hex) of every image the launch measured: the firmware, and for a measured direct boot the kernel, initrd and cmdline of QEMU's kernel-hashes table; absent when the host does not report it",
      },
    ),
  ),
});

const PoolSchema = Type.Object({ size: Type.Integer(), used: Type.Integer(), free: Type.Integer() });

export const SevInfoSchema = Type.Object({
  hostId: Type.String(),
  host: Type.String(),
  generation: Type.String(),
  sevState: Type.String(),
  sevEsSupported: Type.Boolean(),
  vmmProfile: VmmProfileSchema,
  guestCpu: Type.Optional(
    Type.Object(
      {
        type: Type.String({ description: "QEMU CPU model (`owner measure --vcpu-type`)" }),
        family: Type.Integer(),
        model: Type.Integer(),
        stepping: Type.Integer(),
        signature: Type.Integer({ description: "CPUID(1).EAX (`owner measure --vcpu-sig`)" }),
      },
      { description: "The vCPU this host's guests see; absent when the host does not report it" },
    ),
  ),
  pdh: Type.String({ description: "base64 of the PDH certificate" }),
  certChain: Type.String({ description: "base64 of PEK ‖ OCA ‖ CEK, as virsh nodesevinfo reports it" }),
  pek: Type.String(),
  oca: Type.String(),
  cek: Type.String({
    description: "The platform's CEK, not signed by the ASK; fetch the ASK-signed one from kds.cek",
  }),
  cpu0Id: Type.String({ description: "hex of GET_ID" }),
  kds: Type.Optional(
    Type.Object({
      cek: Type.String({
        description:
          "Where the ASK-signed CEK is served: /cek/id/{cpu0Id} on this server (the emulated KDS) for an emulated host, https://kdsintf.amd.com/cek/id/{cpu0Id} for a real one",
      }),
      askArk: Type.String({
        description:
          "Where the generation's ASK ‖ ARK (AMD certificate format) is served: /cek/ask_ark_{generation}.cert on this server, or AMD's ask_ark_{generation}.cert download",
      }),
    }),
  ),
  firmware: Type.Object({ apiMajor: Type.Integer(), apiMinor: Type.Integer(), build: Type.Integer() }),
  cBit: Type.Integer(),
  reducedPhysBits: Type.Integer(),
  minSevAsid: Type.Integer(),
  maxSevGuests: Type.Integer(),
  maxSevEsGuests: Type.Integer(),
  pools: Type.Object({ sev: PoolSchema, sevEs: PoolSchema, snp: PoolSchema }),
});

const Hex = (bytes: number, description: string) =>
  Type.String({ pattern: `^[0-9a-f]{${bytes * 2}}$`, description });

export const AttestationReportBody = Type.Object(
  {
    reportData: Type.Optional(
      Type.String({
        pattern: "^[0-9a-fA-F]{128}$",
        description:
          "REPORT_DATA, 64 bytes as 128 hex digits, chosen by the guest owner (a nonce, a hash of a key); default all zero",
      }),
    ),
  },
  { additionalProperties: false },
);

export const AttestationReportSchema = Type.Object({
  vm: Type.String(),
  hostId: Type.String(),
  host: Type.String(),
  report: Type.String({
    description:
      "The signed SEV-SNP attestation report (0x4A0 bytes), base64: `owner verify-report --report`",
  }),
  fields: Type.Object({
    reportData: Hex(64, "REPORT_DATA as the guest asked for it"),
    measurement: Hex(48, "MEASUREMENT: the launch digest"),
    hostData: Hex(32, "HOST_DATA set at SNP_LAUNCH_FINISH"),
    idKeyDigest: Hex(48, "ID_KEY_DIGEST: SHA-384 of the ID key that signed the ID block (zeros without one)"),
    authorKeyDigest: Hex(48, "AUTHOR_KEY_DIGEST: SHA-384 of the author key (zeros without one)"),
    policy: Type.String(),
    vmpl: Type.Integer(),
    chipId: Hex(64, "CHIP_ID"),
    reportedTcb: Type.Record(Type.String(), Type.Union([Type.Integer(), Type.String()])),
  }),
  certificates: Type.Optional(
    Type.Object({
      vcek: Type.String({
        description: "The VCEK for REPORTED_TCB, DER, base64: `owner verify-report --vcek`",
      }),
      vcekPath: Type.String({ description: "Where the emulated KDS serves the same VCEK" }),
      certChain: Type.String({
        description: "The product's ASK then ARK, PEM: `owner verify-report --chain`",
      }),
    }),
  ),
});

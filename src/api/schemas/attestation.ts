/**
 * Schemas of the attestation routes. Request bodies carry base64 (sizes are checked by the service, which names
 * the field and the byte counts); responses declare every field, so the serializer drops anything else — the
 * session and the secret are never part of any response schema.
 */
import { Type } from "typebox";

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
});

const PoolSchema = Type.Object({ size: Type.Integer(), used: Type.Integer(), free: Type.Integer() });

export const SevInfoSchema = Type.Object({
  hostId: Type.String(),
  host: Type.String(),
  generation: Type.String(),
  sevState: Type.String(),
  sevEsSupported: Type.Boolean(),
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
  pools: Type.Object({ sev: PoolSchema, sevEs: PoolSchema }),
});

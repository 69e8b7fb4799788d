/**
 * LAUNCH_SECRET from the guest owner's side: the EFI secret table and its packet, docs/sev-interface.md §10.
 *
 * Secret table (OVMF / Linux `efi_secret` convention, as sevctl `secret build` writes it):
 *
 * | offset | size | field |
 * |--------|------|-------|
 * | 0  | 16 | header GUID `1e74f542-71dd-4d66-963e-ef4287ff173b` (EFI byte order) |
 * | 16 | 4  | u32 total length of the table, **unpadded** |
 * | 20 | 16 | entry GUID |
 * | 36 | 4  | u32 entry length = 16 + 4 + data length |
 * | 40 | x  | entry data; the next entry follows immediately (entries are not aligned) |
 *
 * The table is zero-padded to a multiple of 16 and the padding is encrypted and counted in guest_len / trans_len
 * (docs/sev-interface.md §15 pitfall 9). The packet is `trans = AES-128-CTR(TEK, iv)(table)` plus the 0x34-byte header `flags ‖ iv ‖ mac`,
 * `mac = HMAC-SHA256(TIK, 0x01 ‖ flags ‖ iv ‖ guest_len ‖ trans_len ‖ trans ‖ MEASURE)`, MEASURE included for
 * API ≥ 0.17 (docs/sev-interface.md §15 pitfall 8). Linux and KVM refuse blobs over 16 KiB (docs/sev-interface.md §15 pitfall 20).
 */
import { aes128Ctr } from "../crypto/aes.ts";
import { encodePacketHeader, launchSecretMac, secretMacIncludesMeasure } from "../crypto/packet.ts";
import { type RandomSource, systemRandom } from "../crypto/random.ts";
import { CiphervisorError } from "../errors.ts";
import { ByteReader, ByteWriter, guidFromBytes, guidToBytes } from "../lib/bytes.ts";

export const SECRET_TABLE_GUID = "1e74f542-71dd-4d66-963e-ef4287ff173b";
/** The kernel's and KVM's ceiling on a secret blob (docs/sev-interface.md §15 pitfall 20). */
export const MAX_SECRET_PAYLOAD = 16 * 1024;
const HEADER = 20;

export interface SecretEntry {
  /** The GUID the guest looks the secret up by (Linux: securityfs `secrets/coco/<guid>`). */
  guid: string;
  data: Uint8Array;
}

/**
 * Encodes the padded secret table.
 * @example `encodeSecretTable([{ guid: "736869e5-84f0-4973-92ec-06879ce3da0b", data: passphrase }])`
 * @throws CiphervisorError INVALID_INPUT for a bad GUID or when the padded table exceeds 16 KiB
 */
export function encodeSecretTable(entries: readonly SecretEntry[]): Uint8Array {
  if (entries.length === 0)
    throw new CiphervisorError("INVALID_INPUT", "a secret table needs at least one entry");
  const guids = entries.map((e) => guidToBytes(e.guid));
  const length = HEADER + entries.reduce((n, e) => n + HEADER + e.data.length, 0);
  const padded = Math.ceil(length / 16) * 16;
  if (padded > MAX_SECRET_PAYLOAD) {
    throw new CiphervisorError(
      "INVALID_INPUT",
      `the secret table is ${length} bytes (${padded} padded); a LAUNCH_SECRET payload is at most ${MAX_SECRET_PAYLOAD} bytes`,
    );
  }
  const w = new ByteWriter(padded);
  w.set(0, guidToBytes(SECRET_TABLE_GUID)).u32(16, length);
  let o = HEADER;
  entries.forEach((e, i) => {
    w.set(o, guids[i]!)
      .u32(o + 16, HEADER + e.data.length)
      .set(o + HEADER, e.data);
    o += HEADER + e.data.length;
  });
  return w.bytes;
}

/**
 * Decodes a secret table (the guest's view after injection). Trailing padding is allowed; everything the header
 * length covers must be well-formed entries.
 * @throws CiphervisorError MALFORMED
 */
export function decodeSecretTable(bytes: Uint8Array): SecretEntry[] {
  const bad = (m: string) => new CiphervisorError("MALFORMED", `secret table: ${m}`);
  if (bytes.length < HEADER) throw bad(`${bytes.length} bytes is shorter than the 20-byte header`);
  const r = new ByteReader(bytes, "secret table");
  const guid = guidFromBytes(r.slice(0, 16));
  if (guid !== SECRET_TABLE_GUID) throw bad(`header GUID ${guid} is not ${SECRET_TABLE_GUID}`);
  const length = r.u32(16);
  if (length < HEADER || length > bytes.length) {
    throw bad(`length field ${length} must be ${HEADER}..${bytes.length}`);
  }
  const out: SecretEntry[] = [];
  for (let o = HEADER; o < length; ) {
    if (length - o < HEADER) throw bad(`${length - o} stray bytes at offset ${o}`);
    const size = r.u32(o + 16);
    if (size < HEADER || size > length - o) throw bad(`entry at offset ${o} has length ${size}`);
    out.push({ guid: guidFromBytes(r.slice(o, 16)), data: r.slice(o + HEADER, size - HEADER) });
    o += size;
  }
  return out;
}

export interface LaunchSecretInput {
  tek: Uint8Array;
  tik: Uint8Array;
  /** The secrets; or pass `table` to send prepared plaintext (padded to 16 here). */
  entries?: readonly SecretEntry[];
  table?: Uint8Array;
  /** The 32-byte MEASURE from LAUNCH_MEASURE (the first half of the 48-byte blob). */
  measure: Uint8Array;
  /** The platform's API; MEASURE is left out of the MAC below 0.17. Default: included (what sevctl always does). */
  api?: { major: number; minor: number };
  /** A fixed IV (tests, reproducible vectors); otherwise 16 fresh bytes from `rng`. */
  iv?: Uint8Array;
  rng?: RandomSource;
  /** Packet flags (bit 0 COMPRESSED); tools send 0. */
  flags?: number;
}

export interface LaunchSecretPacket {
  /** The 0x34-byte packet header. */
  header: Uint8Array;
  /** The encrypted payload (`trans`), a multiple of 16 bytes. */
  payload: Uint8Array;
  iv: Uint8Array;
  mac: Uint8Array;
}

/**
 * Builds the LAUNCH_SECRET header and payload.
 *
 * @example
 * ```ts
 * const { header, payload } = buildLaunchSecret({ tek, tik, measure, entries: [{ guid, data }] });
 * ```
 * @throws CiphervisorError INVALID_INPUT for bad key/IV/MEASURE sizes or an oversized table
 */
export function buildLaunchSecret(input: LaunchSecretInput): LaunchSecretPacket {
  const size = (b: Uint8Array, n: number, what: string) => {
    if (b.length !== n)
      throw new CiphervisorError("INVALID_INPUT", `${what} must be ${n} bytes, got ${b.length}`);
  };
  size(input.tek, 16, "the TEK");
  size(input.tik, 16, "the TIK");
  size(input.measure, 32, "MEASURE");
  if ((input.entries === undefined) === (input.table === undefined)) {
    throw new CiphervisorError("INVALID_INPUT", "give either secret entries or a prepared table, not both");
  }
  let plaintext: Uint8Array;
  if (input.entries) {
    plaintext = encodeSecretTable(input.entries);
  } else {
    const t = input.table ?? new Uint8Array();
    const padded = Math.ceil(t.length / 16) * 16;
    if (t.length === 0 || padded > MAX_SECRET_PAYLOAD) {
      throw new CiphervisorError(
        "INVALID_INPUT",
        `a secret payload is 1..${MAX_SECRET_PAYLOAD} bytes, got ${t.length}`,
      );
    }
    plaintext = new Uint8Array(padded);
    plaintext.set(t);
  }
  const iv = input.iv ?? (input.rng ?? systemRandom).bytes(16);
  size(iv, 16, "the IV");
  const flags = input.flags ?? 0;
  const withMeasure = input.api ? secretMacIncludesMeasure(input.api.major, input.api.minor) : true;
  const payload = aes128Ctr(input.tek, iv, plaintext);
  const mac = launchSecretMac(
    input.tik,
    flags,
    iv,
    payload.length,
    payload,
    withMeasure ? input.measure : undefined,
  );
  return { header: encodePacketHeader({ flags, iv, mac }), payload, iv, mac };
}

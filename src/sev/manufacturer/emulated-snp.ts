/**
 * The emulated AMD's SEV-SNP certificates: the X.509 ARK and ASK of each SNP product, the per-chip, per-TCB VCEK and
 * the product's CRL, in exactly the shape of AMD's (docs/sev-interface.md §14; AMD's "Versioned Chip Endorsement Key
 * (VCEK) Certificate and KDS Interface Specification" 57230: its VCEK certificate chapter with the table of
 * extensions, and the KDS chapter).
 *
 * | certificate | issuer → subject | serial | key | extensions |
 * |---|---|---|---|---|
 * | ARK | ARK-<Product> → ARK-<Product> | 0x10000 | RSA-4096 | keyUsage (certSign, cRLSign), SKI, basicConstraints CA, CRL DP |
 * | ASK | ARK-<Product> → SEV-<Product> | 0x10001 | RSA-4096 | SKI, AKI, basicConstraints CA pathlen 0, keyUsage certSign, CRL DP |
 * | VCEK | SEV-<Product> → SEV-VCEK | 0 | ECDSA P-384 | 1.3.6.1.4.1.3704.1.{1, 2, 3.1–3.9, 4} |
 *
 * The products differ in their VCEKs (`SNP_PRODUCT_FACTS`), as AMD's real ones do: Milan and Genoa carry
 * structVersion 0, productName "<Product>-B<stepping>", no FMC SPL and the 64-byte chip id as hwID; Turin (virtee/sev
 * tests/certs_data/vcek_turin.der) carries structVersion 1, productName "Turin", fmcSPL (.3.9) and an 8-byte hwID,
 * the first 8 bytes of the chip id, whose other 56 bytes a Turin report leaves zero (VCEK specification 57230, its
 * hwID table). Turin's TCB u64 has its own layout (docs/sev-interface.md §14, §15 pitfall 22).
 *
 * Every one is signed RSA-PSS SHA-384, MGF1 SHA-384, salt 48. The RSA keys are those of the legacy-format emulated
 * roots (`emulated-amd.ts`), as AMD's X.509 and legacy ARK/ASK share keys, so an owner pins the emulated X.509 ARK
 * against the built-in emulated root. Names carry AMD's O = "Advanced Micro Devices" so the certificates are shaped
 * like AMD's; what marks them as emulated is their keys (the "CVEMU" legacy roots), never a name.
 *
 * All of it is deterministic (fixed dates, seeded PSS salts), so the KDS answers the same bytes every time.
 */
import { decodeSnpTcb, encodeSnpTcb, type SnpTcb, type TcbLayout } from "../../certs/snp-report.ts";
import { VCEK_OID } from "../../certs/vcek.ts";
import {
  amdName,
  type CrlInput,
  derBool,
  derCtx,
  derEncode,
  derIa5,
  derInt,
  derOctets,
  derSeq,
  encodeCrl,
  encodeX509,
  rsaSpki,
  type X509ExtensionInput,
} from "../../certs/x509-encode.ts";
import { ecP384Spki } from "../../crypto/ec.ts";
import { sha256 } from "../../crypto/hash.ts";
import { seededRandom } from "../../crypto/random.ts";
import { type RsaKeyPair, rsaPssSign } from "../../crypto/rsa.ts";
import { concat } from "../../lib/bytes.ts";
import { CPU_MODELS, type Generation } from "../../machine/cpu-models.ts";
import { deriveVcek, emulatedIssuerKeys } from "./emulated-amd.ts";

/** The emulated generations that have SEV-SNP, and their KDS product names (AMD's spelling). */
export const SNP_KDS_PRODUCTS = { milan: "Milan", genoa: "Genoa", turin: "Turin" } as const satisfies Partial<
  Record<Generation, string>
>;
export type EmulatedSnpGeneration = keyof typeof SNP_KDS_PRODUCTS;

export function isEmulatedSnpGeneration(g: string): g is EmulatedSnpGeneration {
  return Object.hasOwn(SNP_KDS_PRODUCTS, g);
}

/** What differs between the SNP products' TCBs and VCEKs (see the header). */
export interface SnpProductFacts {
  /** The byte layout of every TCB u64 the product's firmware reports. */
  tcbLayout: TcbLayout;
  /** Bytes of the chip id the VCEK's hwID and the KDS path carry. */
  hwIdSize: 8 | 64;
  /** The VCEK's structVersion extension (.1). */
  vcekStructVersion: number;
  /** Whether the VCEK's productName carries the stepping ("Milan-B0") or only the product ("Turin"). */
  productNameStepping: boolean;
}

export const SNP_PRODUCT_FACTS: Readonly<Record<EmulatedSnpGeneration, SnpProductFacts>> = {
  milan: { tcbLayout: "milan", hwIdSize: 64, vcekStructVersion: 0, productNameStepping: true },
  genoa: { tcbLayout: "milan", hwIdSize: 64, vcekStructVersion: 0, productNameStepping: true },
  turin: { tcbLayout: "turin", hwIdSize: 8, vcekStructVersion: 1, productNameStepping: false },
};

/** The size of a chip id (GET_ID) and of a report's CHIP_ID field. */
const CHIP_ID_BYTES = 64;

/** The hwID of a chip: the first `hwIdSize` bytes of its chip id (of its report's CHIP_ID, or of GET_ID). */
export function snpHwId(generation: EmulatedSnpGeneration, chipId: Uint8Array): Uint8Array {
  return chipId.slice(0, SNP_PRODUCT_FACTS[generation].hwIdSize);
}

/**
 * The CHIP_ID an SNP report of this chip carries (64 bytes): the chip id on Milan and Genoa; on Turin its 8-byte
 * hwID followed by zeros. The VCEK is derived from this value, so the report and the KDS agree.
 */
export function snpReportChipId(generation: EmulatedSnpGeneration, chipId: Uint8Array): Uint8Array {
  const out = new Uint8Array(CHIP_ID_BYTES);
  out.set(snpHwId(generation, chipId));
  return out;
}

/** Serial numbers of the emulated X.509 ARK and ASK (those of AMD's Milan ARK and ASK). */
export const EMULATED_SNP_SERIAL = { ark: 0x10000n, ask: 0x10001n } as const;

/**
 * The VCEK productName: the product and the stepping of the emulated part, e.g. "Milan-B1" for CPUID(1).EAX
 * 0x00A00F11 (stepping 1; AMD's VCEKs read "Milan-B0" for a B0 part); the product alone on Turin ("Turin", as
 * AMD's Turin VCEKs read).
 */
export function vcekProductName(generation: EmulatedSnpGeneration): string {
  const product = SNP_KDS_PRODUCTS[generation];
  if (!SNP_PRODUCT_FACTS[generation].productNameStepping) return product;
  return `${product}-B${CPU_MODELS[generation].cpuidSignature & 0xf}`;
}

/** The TCB security patch levels a VCEK is issued for: FMC on Turin only (absent, or ignored, on Milan/Genoa). */
export type VcekSpl = Pick<SnpTcb, "bootloader" | "tee" | "snp" | "microcode" | "fmc">;

const OID_EXT = {
  subjectKeyId: "2.5.29.14",
  keyUsage: "2.5.29.15",
  basicConstraints: "2.5.29.19",
  crlDistributionPoints: "2.5.29.31",
  authorityKeyId: "2.5.29.35",
} as const;

/** RFC 5280 §4.2.1.2 leaves the method open; this one is the first 20 bytes of SHA-256 of the key bits. */
function keyId(pub: RsaKeyPair): Uint8Array {
  return sha256(rsaSpki(pub.pub)).slice(0, 20);
}

/** keyUsage with `bits` set (bit 5 keyCertSign, 6 cRLSign), as a minimal named-bit BIT STRING. */
function keyUsage(...bits: number[]): Uint8Array {
  let v = 0;
  for (const b of bits) v |= 0x80 >> b;
  let unused = 0;
  while (unused < 7 && (v & (1 << unused)) === 0) unused++;
  return derEncode(0x03, new Uint8Array([unused, v]));
}

function crlDp(product: string): X509ExtensionInput {
  // DistributionPoint { distributionPoint [0] { fullName [0] { uniformResourceIdentifier [6] } } }, as AMD's.
  const uri = new TextEncoder().encode(`/vcek/v1/${product}/crl`);
  return {
    oid: OID_EXT.crlDistributionPoints,
    value: derSeq(derSeq(derCtx(0, derCtx(0, derEncode(0x86, uri))))),
  };
}

function salt(label: string, bytes: Uint8Array) {
  return seededRandom(concat(new TextEncoder().encode(`${label}\0`), sha256(bytes)));
}

function signer(key: RsaKeyPair, label: string) {
  return (tbs: Uint8Array) => rsaPssSign(key, "sha384", tbs, salt(label, tbs));
}

interface SnpRoot {
  ark: Uint8Array;
  ask: Uint8Array;
  keys: { ark: RsaKeyPair; ask: RsaKeyPair };
}

const roots = new Map<EmulatedSnpGeneration, SnpRoot>();

function snpRoot(generation: EmulatedSnpGeneration): SnpRoot {
  let r = roots.get(generation);
  if (r) return r;
  const product = SNP_KDS_PRODUCTS[generation];
  const keys = emulatedIssuerKeys(generation);
  const arkName = amdName(`ARK-${product}`);
  const askName = amdName(`SEV-${product}`);
  const ark = encodeX509(
    {
      serial: EMULATED_SNP_SERIAL.ark,
      issuer: arkName,
      subject: arkName,
      notBefore: "2020-10-22T17:23:05Z",
      notAfter: "2045-10-22T17:23:05Z",
      spki: rsaSpki(keys.ark.pub),
      extensions: [
        { oid: OID_EXT.keyUsage, critical: true, value: keyUsage(5, 6) },
        { oid: OID_EXT.subjectKeyId, value: derOctets(keyId(keys.ark)) },
        { oid: OID_EXT.basicConstraints, critical: true, value: derSeq(derBool(true)) },
        crlDp(product),
      ],
    },
    signer(keys.ark, `snp-ark-${generation}`),
  );
  const ask = encodeX509(
    {
      serial: EMULATED_SNP_SERIAL.ask,
      issuer: arkName,
      subject: askName,
      notBefore: "2020-10-22T18:24:20Z",
      notAfter: "2045-10-22T18:24:20Z",
      spki: rsaSpki(keys.ask.pub),
      extensions: [
        { oid: OID_EXT.subjectKeyId, value: derOctets(keyId(keys.ask)) },
        { oid: OID_EXT.authorityKeyId, value: derSeq(derEncode(0x80, keyId(keys.ark))) },
        { oid: OID_EXT.basicConstraints, critical: true, value: derSeq(derBool(true), derInt(0)) },
        { oid: OID_EXT.keyUsage, critical: true, value: keyUsage(5) },
        crlDp(product),
      ],
    },
    signer(keys.ark, `snp-ask-${generation}`),
  );
  r = { ark, ask, keys };
  roots.set(generation, r);
  return r;
}

/** The emulated X.509 ARK and ASK (DER) of an SNP product. */
export function emulatedSnpRootCerts(generation: EmulatedSnpGeneration): {
  ark: Uint8Array;
  ask: Uint8Array;
} {
  const r = snpRoot(generation);
  return { ark: r.ark.slice(), ask: r.ask.slice() };
}

/**
 * The VCEK's AMD extensions in AMD's order. Milan/Genoa: .1, .2, .3.1, .3.2, .3.4–.3.7 (reserved, 0), .3.3, .3.8,
 * .4. Turin: .1, .2, .3.9, .3.1, .3.2, .3.3, .3.5–.3.7 (reserved, 0), .3.8, .4.
 */
function vcekExtensions(
  generation: EmulatedSnpGeneration,
  chipId: Uint8Array,
  spl: VcekSpl,
): X509ExtensionInput[] {
  const facts = SNP_PRODUCT_FACTS[generation];
  const int = (oid: string, v: number) => ({ oid, value: derInt(v) });
  const reserved = (...n: number[]) => n.map((i) => int(`1.3.6.1.4.1.3704.1.3.${i}`, 0));
  const head = [
    int(VCEK_OID.structVersion, facts.vcekStructVersion),
    { oid: VCEK_OID.productName, value: derIa5(vcekProductName(generation)) },
  ];
  // hwID is the raw hwID inside the extnValue OCTET STRING, as in AMD's VCEKs.
  const tail = [
    int(VCEK_OID.ucodeSpl, spl.microcode),
    { oid: VCEK_OID.hwId, value: snpHwId(generation, chipId) },
  ];
  if (facts.tcbLayout === "turin") {
    return [
      ...head,
      int(VCEK_OID.fmcSpl, spl.fmc ?? 0),
      int(VCEK_OID.blSpl, spl.bootloader),
      int(VCEK_OID.teeSpl, spl.tee),
      int(VCEK_OID.snpSpl, spl.snp),
      ...reserved(5, 6, 7),
      ...tail,
    ];
  }
  return [
    ...head,
    int(VCEK_OID.blSpl, spl.bootloader),
    int(VCEK_OID.teeSpl, spl.tee),
    ...reserved(4, 5, 6, 7),
    int(VCEK_OID.snpSpl, spl.snp),
    ...tail,
  ];
}

const vcekCache = new Map<string, Uint8Array>();

/**
 * The VCEK certificate (DER) of chip `chipId` at the TCB `spl`, signed by the product's emulated ASK: what AMD's KDS
 * answers at `/vcek/v1/{product}/{hwid}?blSPL=…&teeSPL=…&snpSPL=…&ucodeSPL=…` (and `fmcSPL=…` on Turin). `chipId`
 * is the chip id or, on Turin, its 8-byte hwID. Its key is the one the chip derives for that TCB (`deriveVcek` of
 * `snpReportChipId`), so it verifies the chip's reports whose reported_tcb is that TCB.
 */
export function emulatedVcekCert(
  generation: EmulatedSnpGeneration,
  chipId: Uint8Array,
  spl: VcekSpl,
): Uint8Array {
  const tcb = encodeSnpTcb(spl, SNP_PRODUCT_FACTS[generation].tcbLayout);
  const reportChipId = snpReportChipId(generation, chipId);
  const key = `${generation}:${Buffer.from(reportChipId).toString("hex")}:${tcb.toString(16)}`;
  const hit = vcekCache.get(key);
  if (hit) return hit.slice();
  const r = snpRoot(generation);
  const product = SNP_KDS_PRODUCTS[generation];
  const pub = deriveVcek(generation, reportChipId, tcb).pub;
  const der = encodeX509(
    {
      serial: 0n,
      issuer: amdName(`SEV-${product}`),
      subject: amdName("SEV-VCEK"),
      notBefore: "2024-01-01T00:00:00Z",
      notAfter: "2031-01-01T00:00:00Z",
      spki: ecP384Spki(pub),
      extensions: vcekExtensions(generation, chipId, spl),
    },
    signer(r.keys.ask, "snp-vcek"),
  );
  if (vcekCache.size > 256) vcekCache.clear();
  vcekCache.set(key, der);
  return der.slice();
}

/** The SPLs of a TCB u64 in the product's layout (with FMC on Turin). */
export function vcekSplOfTcb(generation: EmulatedSnpGeneration, tcb: bigint): VcekSpl {
  const { raw: _raw, ...spl } = decodeSnpTcb(tcb, SNP_PRODUCT_FACTS[generation].tcbLayout);
  return spl;
}

/**
 * The product's CRL (DER X.509 v2, issuer and signer the emulated ARK): what AMD's KDS serves at
 * `/vcek/v1/{product}/crl`. The emulated manufacturer revokes nothing; `revoked` lists serials for tests and
 * drills (e.g. `EMULATED_SNP_SERIAL.ask` to revoke the ASK).
 */
export function emulatedSnpCrl(
  generation: EmulatedSnpGeneration,
  revoked: readonly bigint[] = [],
): Uint8Array {
  const r = snpRoot(generation);
  const input: CrlInput = {
    issuer: amdName(`ARK-${SNP_KDS_PRODUCTS[generation]}`),
    thisUpdate: "2024-01-01T00:00:00Z",
    nextUpdate: "2049-12-31T00:00:00Z",
    revoked: revoked.map((serial) => ({ serial, date: "2024-01-01T00:00:00Z" })),
    number: BigInt(revoked.length + 1),
  };
  return encodeCrl(input, signer(r.keys.ark, `snp-crl-${generation}`));
}

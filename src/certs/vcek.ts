/**
 * The VCEK: AMD's per-chip, per-TCB X.509 certificate for SEV-SNP reports (docs/sev-interface.md §14). Its AMD
 * extensions (OID 1.3.6.1.4.1.3704.1.*) bind the key to one chip (hwID = the report's chip_id) and one TCB (the
 * security patch levels).
 *
 * | OID suffix | extension |
 * |---|---|
 * | .1 | structVersion |
 * | .2 | productName, e.g. "Milan-B0" |
 * | .3.1 / .3.2 / .3.3 / .3.8 | blSPL / teeSPL / snpSPL / ucodeSPL |
 * | .3.9 | fmcSPL (Turin) |
 * | .4 | hwID: 64 bytes (8 on Turin) |
 */
import type { EcPublicKey } from "../crypto/ec.ts";
import { CiphervisorError } from "../errors.ts";
import { derSmallInt, derText, parseDer, Tag } from "./der.ts";
import type { Generation } from "./roots.ts";
import { parseX509Any, type X509Cert } from "./x509.ts";

const AMD_ARC = "1.3.6.1.4.1.3704.1";
export const VCEK_OID = {
  structVersion: `${AMD_ARC}.1`,
  productName: `${AMD_ARC}.2`,
  blSpl: `${AMD_ARC}.3.1`,
  teeSpl: `${AMD_ARC}.3.2`,
  snpSpl: `${AMD_ARC}.3.3`,
  ucodeSpl: `${AMD_ARC}.3.8`,
  fmcSpl: `${AMD_ARC}.3.9`,
  hwId: `${AMD_ARC}.4`,
} as const;

/** The generations that have SEV-SNP. */
export const SNP_GENERATIONS = ["milan", "genoa", "turin"] as const satisfies readonly Generation[];
export type SnpGeneration = (typeof SNP_GENERATIONS)[number];

export interface VcekTcb {
  bootloader: number;
  tee: number;
  snp: number;
  microcode: number;
  fmc?: number;
}

export interface Vcek {
  cert: X509Cert;
  pub: EcPublicKey;
  productName: string | undefined;
  /** From productName ("Milan-B0") or else the issuer's CN ("SEV-Milan"). */
  generation: SnpGeneration;
  hwId: Uint8Array;
  tcb: VcekTcb;
}

function generationIn(text: string | undefined): SnpGeneration | undefined {
  if (!text) return undefined;
  const t = text.toLowerCase();
  return SNP_GENERATIONS.find((g) => t === g || t.startsWith(`${g}-`) || t.endsWith(`-${g}`));
}

/**
 * Parses a VCEK (DER or PEM) and its AMD extensions.
 * @throws CiphervisorError CERT_INVALID when it is not a P-384 certificate with the hwID and TCB extensions.
 */
export function parseVcek(bytes: Uint8Array, what = "VCEK"): Vcek {
  const cert = parseX509Any(bytes, what);
  if (cert.publicKey.kind !== "ec-p384") {
    throw new CiphervisorError("CERT_INVALID", `${what}: the VCEK key is not ECDSA P-384`);
  }
  const ext = (oid: string, name: string): Uint8Array => {
    const e = cert.extensions.get(oid);
    if (!e) throw new CiphervisorError("CERT_INVALID", `${what}: missing the ${name} extension (${oid})`);
    return e.value;
  };
  // The SPLs are DER INTEGERs inside the extension's OCTET STRING.
  const spl = (oid: string, name: string): number => {
    const el = parseDer(ext(oid, name), `${what} ${name}`);
    if (el.tag !== Tag.INTEGER)
      throw new CiphervisorError("CERT_INVALID", `${what}: ${name} is not an INTEGER`);
    const v = derSmallInt(el, `${what} ${name}`);
    if (v > 255) throw new CiphervisorError("CERT_INVALID", `${what}: ${name} ${v} does not fit a TCB byte`);
    return v;
  };
  const productRaw = cert.extensions.get(VCEK_OID.productName)?.value;
  const productName = productRaw ? derText(parseDer(productRaw, `${what} productName`), what) : undefined;
  const generation = generationIn(productName) ?? generationIn(cert.issuerCn);
  if (!generation) {
    throw new CiphervisorError(
      "CERT_INVALID",
      `${what}: cannot tell the product (productName ${productName ?? "absent"}, issuer ${cert.issuerCn ?? "?"})`,
    );
  }
  // hwID is the raw chip id in AMD's VCEKs; some encoders wrap it in a further OCTET STRING, accepted explicitly.
  let hwId = ext(VCEK_OID.hwId, "hwID");
  if (hwId.length === 66 && hwId[0] === Tag.OCTET_STRING && hwId[1] === 64) hwId = hwId.subarray(2);
  const expected = generation === "turin" ? [8, 64] : [64];
  if (!expected.includes(hwId.length)) {
    throw new CiphervisorError(
      "CERT_INVALID",
      `${what}: hwID is ${hwId.length} bytes, expected ${expected.join(" or ")}`,
    );
  }
  const tcb: VcekTcb = {
    bootloader: spl(VCEK_OID.blSpl, "blSPL"),
    tee: spl(VCEK_OID.teeSpl, "teeSPL"),
    snp: spl(VCEK_OID.snpSpl, "snpSPL"),
    microcode: spl(VCEK_OID.ucodeSpl, "ucodeSPL"),
    ...(generation === "turin" ? { fmc: spl(VCEK_OID.fmcSpl, "fmcSPL") } : {}),
  };
  return { cert, pub: cert.publicKey.pub, productName, generation, hwId: hwId.slice(), tcb };
}

/**
 * The emulated AMD Key Distribution Service (docs/sev-interface.md §11.5): the same paths and bodies as AMD's
 * service, for the chips the emulated manufacturer made.
 *
 * | path | body |
 * |---|---|
 * | `/cek/id/{chip id}` | the chip's CEK signed by the ASK, one 0x824-byte SEV certificate (as kdsintf.amd.com) |
 * | `/cek/ask_ark_{product}.cert` | ASK ‖ ARK of the product in AMD's certificate format (AMD's `ask_ark_<product>.cert`) |
 * | `/vcek/v1/{product}/{hwid}?blSPL=…&teeSPL=…&snpSPL=…&ucodeSPL=…` | SEV-SNP: the chip's VCEK for that TCB, DER X.509 (Turin: also `fmcSPL`) |
 * | `/vcek/v1/{product}/cert_chain` | SEV-SNP: the product's X.509 ASK then ARK, PEM |
 * | `/vcek/v1/{product}/crl` | SEV-SNP: the product's CRL, DER, signed by the ARK |
 *
 * The `/vcek/v1` paths and their parameters are those of AMD's VCEK certificate and KDS interface specification
 * (57230, its KDS chapter); SNP products are Milan, Genoa and Turin (the emulated SNP generations). The hwid is the
 * 64-byte chip id on Milan and Genoa, its first 8 bytes on Turin (`SNP_PRODUCT_FACTS`); a Turin VCEK request also
 * names the FMC SPL, and the records are asked about the 8-byte hwid.
 *
 * The chip id is the 64-byte GET_ID value as 128 hex digits. AMD knows every chip it registered at manufacture;
 * this KDS asks its `ChipRecords` which product a chip id belongs to (the control plane answers from the emulated
 * hosts it runs), because a chip id alone does not say it and every id has a CEK in every generation. Pure: no I/O,
 * no state beyond what the records hold.
 *
 * @example
 * ```ts
 * const kds = new EmulatedKds((id) => (toHex(id) === known ? "rome" : undefined));
 * const cek = kds.cek(known); // ASK-signed, verifies under the emulated Rome root
 * const { ask, ark } = splitAskArk(kds.askArk("rome"));
 * ```
 */

import { pemCertificates } from "../../certs/x509-encode.ts";
import { CiphervisorError } from "../../errors.ts";
import { concat, fromHex, toHex } from "../../lib/bytes.ts";
import type { Generation } from "../../machine/cpu-models.ts";
import { emulatedRootCerts, kdsSignedCek } from "./emulated-amd.ts";
import {
  type EmulatedSnpGeneration,
  emulatedSnpCrl,
  emulatedSnpRootCerts,
  emulatedVcekCert,
  isEmulatedSnpGeneration,
  SNP_KDS_PRODUCTS,
  SNP_PRODUCT_FACTS,
  type VcekSpl,
} from "./emulated-snp.ts";

/** The products the emulated manufacturer makes, as AMD spells them, by generation. */
export const KDS_PRODUCTS: Readonly<Record<Generation, string>> = {
  naples: "Naples",
  rome: "Rome",
  milan: "Milan",
  genoa: "Genoa",
  turin: "Turin",
};

/** The content type both certificate routes answer with (as AMD's KDS does for the CEK). */
export const KDS_CERT_CONTENT_TYPE = "application/octet-stream";

/** Size of the GET_ID value that names a chip. */
export const CHIP_ID_SIZE = 64;

/**
 * Which product (generation) a chip id belongs to, or undefined for a chip the manufacturer never made. Asked with
 * the 64-byte GET_ID value, or with the 8-byte hwid of a Turin VCEK request (its first 8 bytes).
 */
export type ChipRecords = (chipId: Uint8Array) => Generation | undefined;

/** Where a chip's ASK-signed CEK and its product's ASK ‖ ARK are served. */
export interface KdsLocations {
  readonly cek: string;
  readonly askArk: string;
}

/** The emulated KDS's paths (relative to the server that serves it) for a chip of `generation`. */
export function emulatedKdsLocations(generation: Generation, chipIdHex: string): KdsLocations {
  return { cek: `/cek/id/${chipIdHex.toLowerCase()}`, askArk: `/cek/ask_ark_${generation}.cert` };
}

/** AMD's own locations for a real chip: the KDS for the CEK, AMD's download site for `ask_ark_<product>.cert`. */
export function amdKdsLocations(generation: Generation, chipIdHex: string): KdsLocations {
  return {
    cek: `https://kdsintf.amd.com/cek/id/${chipIdHex.toLowerCase()}`,
    askArk: `https://download.amd.com/developer/eula/sev/ask_ark_${generation}.cert`,
  };
}

/**
 * A chip id from a KDS path: exactly 128 hex digits (either case), nothing else.
 * @throws CiphervisorError INVALID_INPUT
 */
export function parseKdsChipId(hex: string): Uint8Array {
  if (!/^[0-9a-fA-F]*$/.test(hex) || hex.length !== CHIP_ID_SIZE * 2) {
    const shown = hex.length > 40 ? `${hex.slice(0, 40)}…` : hex;
    throw new CiphervisorError(
      "INVALID_INPUT",
      `a chip id is the ${CHIP_ID_SIZE}-byte GET_ID value as ${CHIP_ID_SIZE * 2} hex digits; got '${shown}' (${hex.length} characters)`,
    );
  }
  return fromHex(hex, "chip id", CHIP_ID_SIZE);
}

/**
 * The generation of a product name (Naples, Rome, Milan, Genoa, Turin; any case, as in AMD's file names and KDS
 * paths).
 * @throws CiphervisorError NOT_FOUND for any other product
 */
export function kdsProduct(product: string): Generation {
  const p = product.toLowerCase();
  const generation = (Object.keys(KDS_PRODUCTS) as Generation[]).find((g) => g === p);
  if (generation === undefined) {
    const shown = product.length > 40 ? `${product.slice(0, 40)}…` : product;
    throw new CiphervisorError(
      "NOT_FOUND",
      `the emulated KDS has no product '${shown}' (products: ${Object.values(KDS_PRODUCTS).join(", ")})`,
    );
  }
  return generation;
}

/** The content type of `/vcek/v1/{product}/cert_chain` (PEM text). */
export const KDS_PEM_CONTENT_TYPE = "application/x-pem-file";

/** The SPL query parameters of the VCEK request, in AMD's spelling, and the TCB fields they set. */
export const VCEK_SPL_PARAMS = {
  blSPL: "bootloader",
  teeSPL: "tee",
  snpSPL: "snp",
  ucodeSPL: "microcode",
} as const satisfies Record<string, keyof VcekSpl>;

/** The further SPL parameter of a Turin VCEK request (its TCB has an FMC SPL). */
export const VCEK_FMC_SPL_PARAM = { fmcSPL: "fmc" } as const satisfies Record<string, keyof VcekSpl>;

/** The SPL parameters a VCEK request of `generation` must carry. */
export function vcekSplParams(generation: EmulatedSnpGeneration): Readonly<Record<string, keyof VcekSpl>> {
  return SNP_PRODUCT_FACTS[generation].tcbLayout === "turin"
    ? { ...VCEK_FMC_SPL_PARAM, ...VCEK_SPL_PARAMS }
    : VCEK_SPL_PARAMS;
}

/**
 * The hwid of a `/vcek/v1/{product}/{hwid}` path: the chip id as 128 hex digits, or on Turin its first 8 bytes as 16.
 * @throws CiphervisorError INVALID_INPUT
 */
export function parseKdsHwId(generation: EmulatedSnpGeneration, hex: string): Uint8Array {
  const size = SNP_PRODUCT_FACTS[generation].hwIdSize;
  if (size === CHIP_ID_SIZE) return parseKdsChipId(hex);
  if (!/^[0-9a-fA-F]*$/.test(hex) || hex.length !== size * 2) {
    const shown = hex.length > 40 ? `${hex.slice(0, 40)}…` : hex;
    throw new CiphervisorError(
      "INVALID_INPUT",
      `a ${SNP_KDS_PRODUCTS[generation]} hwid is the first ${size} bytes of the chip id as ${size * 2} hex digits; got '${shown}' (${hex.length} characters)`,
    );
  }
  return fromHex(hex, "hwid", size);
}

/** The SNP product of a `/vcek/v1/{product}` path (Milan, Genoa, Turin; any case), NOT_FOUND for any other. */
export function kdsSnpProduct(product: string): EmulatedSnpGeneration {
  const p = product.toLowerCase();
  if (!isEmulatedSnpGeneration(p)) {
    const shown = product.length > 40 ? `${product.slice(0, 40)}…` : product;
    throw new CiphervisorError(
      "NOT_FOUND",
      `the emulated KDS has no SEV-SNP product '${shown}' (products: ${Object.values(SNP_KDS_PRODUCTS).join(", ")})`,
    );
  }
  return p;
}

/**
 * The TCB of a VCEK request: each of blSPL, teeSPL, snpSPL and ucodeSPL (and fmcSPL on Turin) present once, a
 * decimal integer 0–255.
 * @throws CiphervisorError INVALID_INPUT naming the parameter (`details.field`)
 */
export function parseVcekSpl(
  query: Readonly<Record<string, unknown>>,
  generation: EmulatedSnpGeneration = "milan",
): VcekSpl {
  const out: Partial<Record<keyof VcekSpl, number>> = {};
  for (const [param, field] of Object.entries(vcekSplParams(generation))) {
    const raw = query[param];
    const text = typeof raw === "string" ? raw : undefined;
    if (text === undefined || !/^\d{1,3}$/.test(text) || Number(text) > 255) {
      const shown = Array.isArray(raw)
        ? "repeated"
        : text === undefined
          ? "missing"
          : `'${text.slice(0, 20)}'`;
      throw new CiphervisorError(
        "INVALID_INPUT",
        `the VCEK request needs ${param} as a decimal security patch level 0-255; it is ${shown}`,
        { details: { field: param } },
      );
    }
    out[field] = Number(text);
  }
  return out as VcekSpl;
}

export class EmulatedKds {
  readonly #chips: ChipRecords;

  constructor(chips: ChipRecords) {
    this.#chips = chips;
  }

  /**
   * `GET /cek/id/{chip id}`: the chip's CEK, signed by its product's ASK.
   * @throws CiphervisorError INVALID_INPUT for a malformed id, NOT_FOUND for a chip this manufacturer never made
   */
  cek(chipIdHex: string): Uint8Array {
    const chipId = parseKdsChipId(chipIdHex);
    const generation = this.#chips(chipId);
    if (generation === undefined) {
      throw new CiphervisorError(
        "NOT_FOUND",
        `the emulated KDS knows no chip ${toHex(chipId).slice(0, 16)}… (it serves the CEKs of the emulated hosts' chips)`,
      );
    }
    return kdsSignedCek(generation, chipId);
  }

  /**
   * `GET /cek/ask_ark_{product}.cert`: the product's ASK followed by its ARK, AMD's certificate format.
   * @throws CiphervisorError NOT_FOUND for an unknown product
   */
  askArk(product: string): Uint8Array {
    const { ask, ark } = emulatedRootCerts(kdsProduct(product));
    return concat(ask, ark);
  }

  /**
   * `GET /vcek/v1/{product}/{hwid}?blSPL=…&teeSPL=…&snpSPL=…&ucodeSPL=…`: the chip's VCEK for that TCB, DER,
   * signed by the product's emulated ASK.
   * @throws CiphervisorError NOT_FOUND for an unknown product or a chip of this manufacturer's records that is not
   *   of that product; INVALID_INPUT for a malformed hwid or SPL
   */
  vcek(product: string, hwidHex: string, query: Readonly<Record<string, unknown>>): Uint8Array {
    const generation = kdsSnpProduct(product);
    const chipId = parseKdsHwId(generation, hwidHex);
    const spl = parseVcekSpl(query, generation);
    if (this.#chips(chipId) !== generation) {
      throw new CiphervisorError(
        "NOT_FOUND",
        `the emulated KDS knows no ${SNP_KDS_PRODUCTS[generation]} chip ${toHex(chipId).slice(0, 16)}… (it serves the VCEKs of the emulated hosts' chips)`,
      );
    }
    return emulatedVcekCert(generation, chipId, spl);
  }

  /** `GET /vcek/v1/{product}/cert_chain`: the product's X.509 ASK then ARK, PEM (AMD's order). */
  vcekCertChain(product: string): string {
    const { ask, ark } = emulatedSnpRootCerts(kdsSnpProduct(product));
    return pemCertificates(ask, ark);
  }

  /** `GET /vcek/v1/{product}/crl`: the product's CRL, DER, signed by the ARK (it revokes nothing). */
  vcekCrl(product: string): Uint8Array {
    return emulatedSnpCrl(kdsSnpProduct(product));
  }
}

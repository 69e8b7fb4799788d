/**
 * The emulated AMD Key Distribution Service (docs/sev-interface.md §11.5): the same paths and bodies as AMD's
 * service, for the chips the emulated manufacturer made.
 *
 * | path | body |
 * |---|---|
 * | `/cek/id/{chip id}` | the chip's CEK signed by the ASK, one 0x824-byte SEV certificate (as kdsintf.amd.com) |
 * | `/cek/ask_ark_{product}.cert` | ASK ‖ ARK of the product in AMD's certificate format (AMD's `ask_ark_<product>.cert`) |
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
import { CiphervisorError } from "../../errors.ts";
import { concat, fromHex, toHex } from "../../lib/bytes.ts";
import type { Generation } from "../../machine/cpu-models.ts";
import { emulatedRootCerts, kdsSignedCek } from "./emulated-amd.ts";

/** The products the emulated manufacturer makes, as AMD spells them, by generation. */
export const KDS_PRODUCTS: Readonly<Record<Generation, string>> = {
  naples: "Naples",
  rome: "Rome",
  milan: "Milan",
  genoa: "Genoa",
};

/** The content type both certificate routes answer with (as AMD's KDS does for the CEK). */
export const KDS_CERT_CONTENT_TYPE = "application/octet-stream";

/** Size of the GET_ID value that names a chip. */
export const CHIP_ID_SIZE = 64;

/** Which product (generation) a chip id belongs to, or undefined for a chip the manufacturer never made. */
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
 * The generation of a product name (Naples, Rome, Milan, Genoa; any case, as in AMD's file names and KDS paths).
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
}

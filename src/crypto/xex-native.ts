/**
 * Loads the memory cipher's AES-NI addon (native/xex/xex.c, built by scripts/build-native.mjs into
 * native/xex/build/Release/xex.node). src/crypto/xex.ts uses it when it loads and the WebAssembly path otherwise.
 *
 * The addon is found from the **package root** — the nearest folder above this module whose package.json is named
 * "ciphervisor" — and not beside the module: the same lookup works from src/ (tsx), from the bundled dist/ chunks
 * (scripts/build.mjs lists this file in PACKAGE_ROOT_FILES), and from an installed package, which ships no native/
 * folder and so runs the WebAssembly path.
 *
 * `CIPHERVISOR_XEX=js` forces the WebAssembly path (the reference; also `wasm`). `CIPHERVISOR_XEX=native` makes a
 * missing or unloadable addon an error instead of a silent fallback. Read once, at the first cipher.
 */
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** Where scripts/build-native.mjs puts the addon, relative to the package root. */
export const XEX_ADDON_PATH = "native/xex/build/Release/xex.node";

/** An opaque handle on one set of tweak tables (native memory, wiped when collected). */
export type XexTweaksHandle = object & { readonly __xexTweaks?: never };

/** One key's operations; both write every byte of `output` (a Uint8Array of input's length, possibly input itself). */
export interface XexAddonCipher {
  encrypt(pa: number, input: Uint8Array, output: Uint8Array): void;
  decrypt(pa: number, input: Uint8Array, output: Uint8Array): void;
}

/** The addon's exports when the CPU has AES-NI. */
export interface XexAddon {
  /** `constants`: t_0 … t_51, 16 bytes each, concatenated (832 bytes). */
  createTweaks(constants: Uint8Array): XexTweaksHandle;
  createCipher(key: Uint8Array, tweaks: XexTweaksHandle, xex: boolean): XexAddonCipher;
}

export type XexAddonStatus =
  | { readonly addon: XexAddon }
  | { readonly addon?: undefined; readonly reason: string };

/** The folder holding the package.json named "ciphervisor", walking up from `from`. */
export function packageRoot(from: string): string | undefined {
  for (let dir = from; ; ) {
    const manifest = join(dir, "package.json");
    if (existsSync(manifest)) {
      try {
        if ((JSON.parse(readFileSync(manifest, "utf8")) as { name?: unknown }).name === "ciphervisor")
          return dir;
      } catch {
        // Not readable as JSON: not ours; keep walking.
      }
    }
    const up = dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}

function load(): XexAddonStatus {
  const choice = process.env["CIPHERVISOR_XEX"] ?? "";
  if (choice === "js" || choice === "wasm") return { reason: `CIPHERVISOR_XEX=${choice}` };
  if (choice !== "" && choice !== "native")
    throw new Error(
      `CIPHERVISOR_XEX must be "js" (the WebAssembly path), "native" or unset, not "${choice}"`,
    );
  const status = ((): XexAddonStatus => {
    const root = packageRoot(dirname(fileURLToPath(import.meta.url)));
    if (!root) return { reason: "no package.json named ciphervisor above this module" };
    const file = join(root, XEX_ADDON_PATH);
    if (!existsSync(file)) return { reason: `${file} is not built (scripts/build-native.mjs)` };
    let exports: { available?: unknown } & Partial<XexAddon>;
    try {
      exports = createRequire(import.meta.url)(file) as typeof exports;
    } catch (e) {
      return { reason: `${file} did not load: ${e instanceof Error ? e.message : String(e)}` };
    }
    if (exports.available !== true || !exports.createTweaks || !exports.createCipher)
      return { reason: "this CPU has no AES-NI (CPUID)" };
    return { addon: exports as XexAddon };
  })();
  if (choice === "native" && !status.addon)
    throw new Error(`CIPHERVISOR_XEX=native, but the AES-NI memory cipher is unavailable: ${status.reason}`);
  return status;
}

let loaded: XexAddonStatus | undefined;

/** The addon, or why not (loaded on the first call, then remembered for the process). */
export function xexAddon(): XexAddonStatus {
  loaded ??= load();
  return loaded;
}

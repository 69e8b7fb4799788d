import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseOvmfFooter } from "../measure/ovmf-footer.ts";
import { BUILTIN_LAYOUT, BUILTIN_UEFI_SIZE, builtinUefiImage } from "./builtin-uefi.ts";

describe("built-in emulated UEFI", () => {
  it("carries an OVMF footer the owner toolkit parses: AP reset block, secret and hashes areas", () => {
    const image = builtinUefiImage();
    assert.equal(image.length, BUILTIN_UEFI_SIZE);
    const f = parseOvmfFooter(image);
    assert.equal(f.present, true);
    assert.equal(f.sevEsResetEip, BUILTIN_LAYOUT.apResetEip);
    assert.deepEqual(f.secretArea, BUILTIN_LAYOUT.secretArea);
    assert.deepEqual(f.kernelHashesArea, BUILTIN_LAYOUT.kernelHashesArea);
  });

  it("is deterministic and handed out as a copy", () => {
    const a = builtinUefiImage();
    a[0] = 0xff;
    assert.notEqual(builtinUefiImage()[0], 0xff);
    assert.deepEqual(builtinUefiImage(), builtinUefiImage());
  });
});

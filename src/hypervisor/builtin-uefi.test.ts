import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseOvmfFooter } from "../measure/ovmf-footer.ts";
import { requireSevMetadata } from "../measure/ovmf-sev-metadata.ts";
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

  it("carries the SEV metadata block an SEV-SNP launch needs, as the owner toolkit parses it", () => {
    const m = requireSevMetadata(builtinUefiImage());
    assert.deepEqual(
      m.sections.map((s) => ({ gpa: s.gpa, size: s.size, type: s.name })),
      BUILTIN_LAYOUT.sevMetadata,
    );
    // The kernel-hashes area lies inside the SNP_KERNEL_HASHES page, so a direct boot can be measured under SNP.
    const page = m.sections.find((s) => s.name === "SNP_KERNEL_HASHES")!;
    const area = BUILTIN_LAYOUT.kernelHashesArea;
    assert.ok(area.base >= page.gpa && area.base + area.size <= page.gpa + page.size);
  });

  it("is deterministic and handed out as a copy", () => {
    const a = builtinUefiImage();
    a[0] = 0xff;
    assert.notEqual(builtinUefiImage()[0], 0xff);
    assert.deepEqual(builtinUefiImage(), builtinUefiImage());
  });
});

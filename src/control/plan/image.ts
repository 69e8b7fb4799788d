/**
 * Dry runs of the image catalog's requests: an upload runs every check the real one does (name, kind, size, the
 * firmware's footer) and stores nothing; a delete is refused while a VM boots the image, as the real one is.
 */

import { sha256 } from "../../crypto/hash.ts";
import { toHex } from "../../lib/bytes.ts";
import type { Image } from "../inventory/types.ts";
import type { ControlContext } from "../services/context.ts";
import { checkDeleteImage, checkUpload, type UploadImageRequest } from "../services/images.ts";
import { evaluate, type RequestPlan, single } from "./evaluate.ts";

export async function planUploadImage(c: ControlContext, req: UploadImageRequest): Promise<RequestPlan> {
  const e = await evaluate({ target: req.name, name: req.name, kind: "image" }, async () => {
    const checked = await checkUpload(c, req);
    const sha = toHex(sha256(req.bytes));
    const stored = await c.blobs.has(sha);
    return {
      outcome: "change",
      action: `upload (${checked.kind}, ${checked.size} bytes${stored ? ", content already stored" : ""})`,
      details: {
        kind: checked.kind,
        sha256: sha,
        size: checked.size,
        deduplicated: stored,
        ...(checked.firmware ? { firmware: { ...checked.firmware } } : {}),
      },
    };
  });
  return single("image.upload", e);
}

export async function planDeleteImage(c: ControlContext, image: Image): Promise<RequestPlan> {
  const e = await evaluate({ target: image.id, name: image.name, kind: "image" }, async () => {
    await checkDeleteImage(c.inventory, image);
    return { outcome: "change", action: "delete", details: { sha256: image.sha256 } };
  });
  return single("image.delete", e);
}

/**
 * The image catalog through the API, with Debian's real OVMF (package `ovmf`): uploads are size-limited,
 * content-addressed and deduplicated on disk; VMs that name images unfit for what they ask are refused with their
 * codes before anything launches; an image a VM boots cannot be deleted.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fileBlobStore } from "../../control/images/blobs.ts";
import { linuxSpec } from "../../control/testing/control-fixture.ts";
import { sha256 } from "../../crypto/hash.ts";
import { toHex } from "../../lib/bytes.ts";
import { type ApiFixture, json, withApi } from "../testing/api-fixture.ts";

const OVMF = "/usr/share/OVMF/OVMF_CODE.fd";
if (!existsSync(OVMF) && process.env["CI"] === "true") throw new Error(`${OVMF} missing: install 'ovmf'`);
const LIMIT = 2 * 1024 * 1024;

const dir = mkdtempSync(join(tmpdir(), "cv-images-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function upload(
  a: ApiFixture,
  as: "all" | "viewer" | "operator",
  name: string,
  kind: string,
  bytes: Uint8Array,
  q = "",
) {
  return a.app.inject({
    method: "POST",
    url: `/v1/images?name=${name}&kind=${kind}${q}`,
    headers: { authorization: `Bearer ${a.tokens[as]}`, "content-type": "application/octet-stream" },
    payload: Buffer.from(bytes),
  });
}

function blobs(): string[] {
  const d = join(dir, "sha256");
  return existsSync(d) ? readdirSync(d).filter((f) => !f.startsWith(".")) : [];
}

describe("the image catalog API", { skip: existsSync(OVMF) ? false : `${OVMF} not installed` }, () => {
  const ovmf = new Uint8Array(readFileSync(OVMF));
  const ovmfSha = toHex(sha256(ovmf));

  it("uploads, deduplicates, refuses unfit images and images in use, and deletes", () =>
    withApi(
      async (a) => {
        // Only image.manage (admin) uploads.
        assert.equal((await upload(a, "viewer", "ovmf", "firmware", ovmf)).statusCode, 403);
        assert.equal((await upload(a, "operator", "ovmf", "firmware", ovmf)).statusCode, 403);

        const dry = await upload(a, "all", "ovmf", "firmware", ovmf, "&dryRun=true");
        assert.equal(dry.statusCode, 200, dry.body);
        assert.equal(blobs().length, 0, "a dry run stores nothing");

        const r = await upload(a, "all", "ovmf", "firmware", ovmf);
        assert.equal(r.statusCode, 201, r.body);
        const img = json(r);
        assert.equal(img.sha256, ovmfSha);
        assert.equal(img.size, ovmf.length);
        assert.deepEqual(img.firmware, {
          footer: true,
          sevEsResetEip: 0x80b004,
          secretArea: false,
          kernelHashesArea: false,
        });
        assert.deepEqual(blobs(), [ovmfSha]);
        // Same bytes, another name: one blob.
        assert.equal((await upload(a, "all", "ovmf-copy", "firmware", ovmf)).statusCode, 201);
        assert.deepEqual(blobs(), [ovmfSha]);
        const audit = (await a.inventory.audit.list({ action: "image.upload", outcome: "ok" })).items.filter(
          (x) => x.details.dryRun !== true,
        );
        assert.deepEqual(
          audit.map((x) => x.details.deduplicated),
          [false, true],
        );
        // The name is taken.
        const again = await upload(a, "all", "ovmf", "kernel", new Uint8Array(16));
        assert.equal(again.statusCode, 409);
        assert.equal(json(again).code, "CONFLICT");

        // Limits and shapes.
        const big = await upload(a, "all", "big", "kernel", new Uint8Array(LIMIT + 16));
        assert.equal(big.statusCode, 400);
        assert.equal(json(big).code, "IMAGE_TOO_LARGE");
        assert.equal(
          (await upload(a, "all", "edge", "kernel", new Uint8Array(LIMIT).fill(7))).statusCode,
          201,
        );
        const odd = await upload(a, "all", "odd", "firmware", new Uint8Array(1000));
        assert.equal(json(odd).code, "MALFORMED");
        assert.equal(
          json(await upload(a, "all", "empty", "initrd", new Uint8Array(0))).code,
          "INVALID_INPUT",
        );
        assert.equal((await upload(a, "all", "bad name", "kernel", new Uint8Array(16))).statusCode, 400);
        assert.equal((await upload(a, "all", "k", "disk", new Uint8Array(16))).statusCode, 400);
        const asJson = await a.call("all", "POST", "/v1/images?name=j&kind=kernel", { x: 1 });
        assert.equal(asJson.statusCode, 400);
        assert.equal(await a.inventory.images.getByName("big"), undefined);

        // A firmware without a footer (no SEV-ES reset block, no kernel-hashes area), a kernel and an initrd.
        const bare = new Uint8Array(64 * 1024).fill(0x90);
        assert.equal((await upload(a, "all", "bare", "firmware", bare)).statusCode, 201);
        assert.equal(
          (await upload(a, "all", "vmlinuz", "kernel", new Uint8Array(4096).fill(1))).statusCode,
          201,
        );
        assert.equal(
          (await upload(a, "all", "initrd", "initrd", new Uint8Array(4096).fill(2))).statusCode,
          201,
        );

        const list = json(await a.call("viewer", "GET", "/v1/images"));
        assert.deepEqual(
          (list.items as { name: string }[]).map((i) => i.name),
          ["bare", "edge", "initrd", "ovmf", "ovmf-copy", "vmlinuz"],
        );
        assert.equal(json(await a.call("viewer", "GET", "/v1/images/ovmf")).sha256, ovmfSha);
        assert.equal((await a.call("viewer", "GET", "/v1/images/nope")).statusCode, 404);

        const create = (name: string, securityMode: string, boot: Record<string, string>) =>
          a.call("all", "POST", "/v1/vms", { name, spec: { ...linuxSpec, boot }, securityMode });
        const refused = async (name: string, mode: string, boot: Record<string, string>, code: string) => {
          const res = await create(name, mode, boot);
          assert.equal(json(res).code, code, `${name}: ${res.body}`);
          assert.equal(await a.inventory.vms.getByName(name), undefined);
        };
        await refused("es-bare", "sev-es", { firmwareImage: "bare" }, "SEV_ES_RESET_BLOCK_MISSING");
        await refused(
          "db-ovmf",
          "sev",
          { firmwareImage: "ovmf", kernel: "vmlinuz" },
          "KERNEL_HASHES_UNSUPPORTED",
        );
        await refused("kind", "sev", { firmwareImage: "vmlinuz" }, "IMAGE_KIND");
        await refused("kind2", "sev", { kernel: "initrd" }, "IMAGE_KIND");
        await refused("missing", "sev", { firmwareImage: "nope" }, "NOT_FOUND");
        await refused("lone-initrd", "sev", { initrd: "initrd" }, "INVALID_INPUT");
        // Plain SEV boots a footer-less firmware; the built-in UEFI measures a direct boot.
        assert.equal((await create("sev-bare", "sev", { firmwareImage: "bare" })).statusCode, 201);
        const direct = await create("direct", "sev-es", {
          kernel: "vmlinuz",
          initrd: "initrd",
          cmdline: "console=ttyS0",
        });
        assert.equal(direct.statusCode, 201, direct.body);
        const es = await create("es-ovmf", "sev-es", { firmwareImage: "ovmf" });
        assert.equal(es.statusCode, 201, es.body);

        // In use: refused (also as a dry run), naming the VM; free once the VM is gone.
        const inUse = await a.call("all", "DELETE", "/v1/images/ovmf");
        assert.equal(inUse.statusCode, 409);
        assert.equal(json(inUse).code, "IMAGE_IN_USE");
        assert.match(String(json(inUse).detail), /es-ovmf/);
        const dryDel = json(await a.call("all", "DELETE", "/v1/images/ovmf?dryRun=true"));
        assert.deepEqual(
          (dryDel.items as { code: string }[]).map((i) => i.code),
          ["IMAGE_IN_USE"],
        );
        assert.equal((await a.call("viewer", "DELETE", "/v1/images/ovmf")).statusCode, 403);
        const vmId = (await a.inventory.vms.getByName("es-ovmf"))?.id;
        assert.equal((await a.call("all", "DELETE", `/v1/vms/${vmId}`)).statusCode, 200);
        assert.equal((await a.call("all", "DELETE", "/v1/images/ovmf")).statusCode, 204);
        assert.ok(blobs().includes(ovmfSha), "the copy still holds the blob");
        assert.equal((await a.call("all", "DELETE", "/v1/images/ovmf-copy")).statusCode, 204);
        assert.equal(blobs().includes(ovmfSha), false, "the last name gone, the blob goes");
        assert.equal((await a.call("all", "DELETE", "/v1/images/ovmf")).statusCode, 404);
      },
      { control: { blobs: fileBlobStore(dir), maxImageBytes: LIMIT } },
    ));
});

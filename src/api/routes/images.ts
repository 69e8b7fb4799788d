/**
 * `/v1/images`: the image catalog. An upload is the raw image as `application/octet-stream` with its name and kind
 * in the query string — no base64 inflation, and a size limit counted while the body streams in, so an oversized
 * upload is refused (IMAGE_TOO_LARGE) without buffering more than the limit. That body parser lives in this
 * route's own fastify context: no other route takes binary bodies.
 */
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { Type } from "typebox";
import { IMAGE_KINDS, type Image } from "../../control/inventory/types.ts";
import { planDeleteImage, planUploadImage } from "../../control/plan/image.ts";
import type { ControlContext } from "../../control/services/context.ts";
import { deleteImage, getImage, uploadImage } from "../../control/services/images.ts";
import { CiphervisorError } from "../../errors.ts";
import { answerDryRun, DRY_RUN_DESCRIPTION, DryRunQuery, isDryRun } from "../dry-run.ts";
import { errorResponses, PageOf, PageQuery } from "../schemas/common.ts";
import { IMAGE_NAME_PATTERN } from "../schemas/vm.ts";

const ImageSchema = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    kind: Type.Enum([...IMAGE_KINDS]),
    sha256: Type.String({
      description: "SHA-256 (hex) of the bytes: what a launch of this image reports as measured",
    }),
    size: Type.Integer(),
    firmware: Type.Union(
      [
        Type.Object({
          footer: Type.Boolean({ description: "The image ends with an OVMF footer table" }),
          sevEsResetEip: Type.Union([Type.Integer(), Type.Null()], {
            description: "The SEV-ES AP reset EIP; null: the image cannot boot SEV-ES VMs",
          }),
          secretArea: Type.Boolean({ description: "Declares an SEV secret area (LAUNCH_SECRET)" }),
          kernelHashesArea: Type.Boolean({
            description: "Declares a kernel-hashes area: can measure a direct boot",
          }),
        }),
        Type.Null(),
      ],
      { description: "What a firmware image's OVMF footer declares; null for kernels and initrds" },
    ),
    createdAt: Type.String(),
    createdBy: Type.Union([Type.String(), Type.Null()]),
  },
  { $id: "Image" },
);

const NameParams = Type.Object({ name: Type.String({ pattern: IMAGE_NAME_PATTERN }) });

function imageView(i: Image) {
  return {
    id: i.id,
    name: i.name,
    kind: i.kind,
    sha256: i.sha256,
    size: i.size,
    firmware: i.firmware ? { ...i.firmware } : null,
    createdAt: i.createdAt,
    createdBy: i.createdBy,
  };
}

function tooLarge(limit: number, size?: number): CiphervisorError {
  return new CiphervisorError(
    "IMAGE_TOO_LARGE",
    `the image is ${size === undefined ? "larger than the limit" : `${size} bytes`}; the catalog takes images of up to ${limit} bytes`,
    { details: { limit, ...(size === undefined ? {} : { size }) } },
  );
}

/**
 * Reads a binary body up to `limit` bytes: a declared Content-Length over it is refused before anything is read,
 * and a body that grows past it is cut off there.
 */
function readLimited(request: FastifyRequest, limit: number): Promise<Buffer> {
  const declared = Number(request.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(tooLarge(limit, declared));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const raw = request.raw;
    raw.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        raw.removeAllListeners("data");
        raw.resume();
        reject(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    });
    raw.on("end", () => resolve(Buffer.concat(chunks, size)));
    raw.on("error", reject);
  });
}

export function imageRoutes(root: FastifyInstance, c: ControlContext): void {
  const inv = c.inventory;
  root.addSchema(ImageSchema);

  root.register(async (scope) => {
    scope.addContentTypeParser("application/octet-stream", (request, _payload, done) => {
      readLimited(request, c.maxImageBytes).then(
        (body) => done(null, body),
        (e: Error) => done(e, undefined),
      );
    });
    const app = scope.withTypeProvider<TypeBoxTypeProvider>();
    app.post(
      "/v1/images",
      {
        config: { permission: "image.manage", action: "image.upload" },
        // The parser above enforces the catalog's own limit; fastify's global 1 MiB must not cut in first.
        bodyLimit: c.maxImageBytes + 1,
        schema: {
          tags: ["images"],
          summary:
            "Upload an image: the raw bytes as application/octet-stream, name and kind in the query (content-addressed, deduplicated)",
          querystring: Type.Object(
            {
              name: Type.String({ pattern: IMAGE_NAME_PATTERN }),
              kind: Type.Enum([...IMAGE_KINDS]),
              dryRun: Type.Optional(Type.Boolean({ description: DRY_RUN_DESCRIPTION })),
            },
            { additionalProperties: false },
          ),
          response: { 200: Type.Ref("DryRunPlan"), 201: Type.Ref("Image"), ...errorResponses },
        },
      },
      async (req, reply) => {
        const principal = req.principal;
        if (!principal) throw new CiphervisorError("UNAUTHENTICATED", "this request needs an API token");
        if (!Buffer.isBuffer(req.body)) {
          throw new CiphervisorError(
            "INVALID_INPUT",
            "send the image as the request body with Content-Type: application/octet-stream",
            { details: { field: "body" } },
          );
        }
        const request = { name: req.query.name, kind: req.query.kind, bytes: new Uint8Array(req.body) };
        if (isDryRun(req)) return answerDryRun(req, reply, inv, (await planUploadImage(c, request)).plan);
        const image = await uploadImage(c, principal.actor, request);
        return reply.code(201).header("location", `/v1/images/${image.name}`).send(imageView(image));
      },
    );
  });

  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  app.get(
    "/v1/images",
    {
      config: { permission: "inventory.read", action: "image.list" },
      schema: {
        tags: ["images"],
        summary: "List the image catalog (name order)",
        querystring: Type.Object(PageQuery, { additionalProperties: false }),
        response: { 200: PageOf(Type.Ref("Image"), "ImagePage"), ...errorResponses },
      },
    },
    async (req) => {
      const page = await inv.images.list({ limit: req.query.limit ?? 100, cursor: req.query.cursor ?? null });
      return { items: page.items.map(imageView), nextCursor: page.nextCursor };
    },
  );

  app.get(
    "/v1/images/:name",
    {
      config: { permission: "inventory.read", action: "image.read" },
      schema: {
        tags: ["images"],
        summary: "Read an image's record",
        params: NameParams,
        response: { 200: Type.Ref("Image"), ...errorResponses },
      },
    },
    async (req) => imageView(await getImage(inv, req.params.name)),
  );

  app.delete(
    "/v1/images/:name",
    {
      config: { permission: "image.manage", action: "image.delete" },
      schema: {
        tags: ["images"],
        summary: "Delete an image (refused with IMAGE_IN_USE while a VM boots it)",
        params: NameParams,
        querystring: DryRunQuery,
        response: { 200: Type.Ref("DryRunPlan"), 204: Type.Null(), ...errorResponses },
      },
    },
    async (req, reply) => {
      const principal = req.principal;
      if (!principal) throw new CiphervisorError("UNAUTHENTICATED", "this request needs an API token");
      if (isDryRun(req)) {
        const plan = await planDeleteImage(c, await getImage(inv, req.params.name));
        return answerDryRun(req, reply, inv, plan.plan);
      }
      await deleteImage(c, principal.actor, req.params.name);
      return reply.code(204).send(null);
    },
  );
}

/**
 * The emulated AMD Key Distribution Service, on AMD's own paths (not under `/v1`): what sevctl and a guest owner
 * fetch from kdsintf.amd.com for a real chip, served here for the emulated hosts' chips (docs/sev-interface.md
 * §11.5). Public, as AMD's KDS is: certificates are public material, and a guest owner checks them against the root
 * they choose. Plain GETs, so neither auditing nor dry runs apply.
 *
 * - `GET /cek/id/{chipId}`: the chip's ASK-signed CEK (0x824 bytes, application/octet-stream);
 * - `GET /cek/ask_ark_{product}.cert`: the product's ASK ‖ ARK in AMD's certificate format;
 * - `GET /vcek/v1/{product}/{hwid}?blSPL=…&teeSPL=…&snpSPL=…&ucodeSPL=…`: SEV-SNP, the chip's VCEK for that TCB (DER);
 * - `GET /vcek/v1/{product}/cert_chain`: SEV-SNP, the product's X.509 ASK then ARK (PEM);
 * - `GET /vcek/v1/{product}/crl`: SEV-SNP, the product's CRL (DER, signed by the ARK).
 *
 * The `/vcek/v1` paths are AMD's (VCEK certificate and KDS interface specification 57230, chapter 4).
 */
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import type { FastifyInstance, FastifyReply } from "fastify";
import { Type } from "typebox";
import { emulatedKds } from "../../control/services/attestation.ts";
import {
  KDS_CERT_CONTENT_TYPE,
  KDS_PEM_CONTENT_TYPE,
  KDS_PRODUCTS,
  VCEK_FMC_SPL_PARAM,
  VCEK_SPL_PARAMS,
} from "../../sev/manufacturer/emulated-kds.ts";
import { SNP_KDS_PRODUCTS } from "../../sev/manufacturer/emulated-snp.ts";
import type { OperationDeps } from "../operation-response.ts";
import { errorResponses } from "../schemas/common.ts";

const Binary = (description: string) => Type.String({ format: "binary", description });

function sendCert(reply: FastifyReply, bytes: Uint8Array): FastifyReply {
  return reply.type(KDS_CERT_CONTENT_TYPE).send(Buffer.from(bytes));
}

export function kdsRoutes(root: FastifyInstance, deps: OperationDeps): void {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  const kds = emulatedKds(deps.cp.context);

  app.get(
    "/cek/id/:chipId",
    {
      config: { permission: "public", action: "kds.cek.read" },
      schema: {
        tags: ["kds"],
        summary:
          "The emulated KDS: a chip's CEK signed by the ASK (SEV certificate, 0x824 bytes), as kdsintf.amd.com/cek/id/{chipId} serves it",
        security: [],
        params: Type.Object({
          chipId: Type.String({ description: "hex of the chip's 64-byte GET_ID value (cpu0Id of sev-info)" }),
        }),
        produces: [KDS_CERT_CONTENT_TYPE],
        response: { 200: Binary("the ASK-signed CEK"), ...errorResponses },
      },
    },
    async (req, reply) => sendCert(reply, kds.cek(req.params.chipId)),
  );

  app.get(
    "/cek/ask_ark_:product.cert",
    {
      config: { permission: "public", action: "kds.ask-ark.read" },
      schema: {
        tags: ["kds"],
        summary:
          "The emulated ASK ‖ ARK of a product in AMD's certificate format, as AMD publishes ask_ark_<product>.cert",
        security: [],
        params: Type.Object({
          product: Type.String({ description: `${Object.values(KDS_PRODUCTS).join(", ")} (any case)` }),
        }),
        produces: [KDS_CERT_CONTENT_TYPE],
        response: { 200: Binary("ASK ‖ ARK"), ...errorResponses },
      },
    },
    async (req, reply) => sendCert(reply, kds.askArk(req.params.product)),
  );

  const snpProduct = Type.String({
    description: `SEV-SNP product: ${Object.values(SNP_KDS_PRODUCTS).join(", ")} (any case)`,
  });

  app.get(
    "/vcek/v1/:product/cert_chain",
    {
      config: { permission: "public", action: "kds.vcek-chain.read" },
      schema: {
        tags: ["kds"],
        summary:
          "The emulated KDS: a SEV-SNP product's X.509 ASK then ARK (PEM), as kdsintf.amd.com/vcek/v1/{product}/cert_chain serves it",
        security: [],
        params: Type.Object({ product: snpProduct }),
        produces: [KDS_PEM_CONTENT_TYPE],
        response: { 200: Type.String({ description: "PEM: ASK, then ARK" }), ...errorResponses },
      },
    },
    async (req, reply) => reply.type(KDS_PEM_CONTENT_TYPE).send(kds.vcekCertChain(req.params.product)),
  );

  app.get(
    "/vcek/v1/:product/crl",
    {
      config: { permission: "public", action: "kds.vcek-crl.read" },
      schema: {
        tags: ["kds"],
        summary:
          "The emulated KDS: a SEV-SNP product's certificate revocation list (DER, signed by the ARK), as kdsintf.amd.com/vcek/v1/{product}/crl serves it",
        security: [],
        params: Type.Object({ product: snpProduct }),
        produces: [KDS_CERT_CONTENT_TYPE],
        response: { 200: Binary("the CRL"), ...errorResponses },
      },
    },
    async (req, reply) => sendCert(reply, kds.vcekCrl(req.params.product)),
  );

  app.get(
    "/vcek/v1/:product/:hwid",
    {
      config: { permission: "public", action: "kds.vcek.read" },
      schema: {
        tags: ["kds"],
        summary:
          "The emulated KDS: a chip's VCEK for one TCB (DER X.509), as kdsintf.amd.com/vcek/v1/{product}/{hwid}?blSPL=…&teeSPL=…&snpSPL=…&ucodeSPL=… serves it",
        security: [],
        params: Type.Object({
          product: snpProduct,
          hwid: Type.String({
            description:
              "hex of the chip's 64-byte chip id (the report's chip_id); on Turin its first 8 bytes",
          }),
        }),
        querystring: Type.Object(
          Object.fromEntries(
            Object.keys({ ...VCEK_FMC_SPL_PARAM, ...VCEK_SPL_PARAMS }).map((p) => [
              p,
              // Checked by the KDS itself (parseVcekSpl): a missing, repeated or malformed SPL gets its own message.
              Type.Optional(
                Type.Unknown({
                  description: `${p}: decimal security patch level 0-255 (required${p === "fmcSPL" ? " on Turin" : ""})`,
                }),
              ),
            ]),
          ),
        ),
        produces: [KDS_CERT_CONTENT_TYPE],
        response: { 200: Binary("the ASK-signed VCEK"), ...errorResponses },
      },
    },
    async (req, reply) =>
      sendCert(reply, kds.vcek(req.params.product, req.params.hwid, req.query as Record<string, unknown>)),
  );
}

/**
 * `GET /v1/vms/{id}/console` (inventory.read): the VM's serial console as its host keeps it. Public output by
 * nature — the hypervisor sees every byte — and where an efi_secret guest shows the hash of each secret it was given.
 */
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import type { FastifyInstance } from "fastify";
import { vmConsole } from "../../control/services/console.ts";
import type { OperationDeps } from "../operation-response.ts";
import { errorResponses, IdParams } from "../schemas/common.ts";
import { VmConsoleSchema } from "../schemas/console.ts";

export function consoleRoutes(root: FastifyInstance, deps: OperationDeps): void {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  app.get(
    "/v1/vms/:id/console",
    {
      config: { permission: "inventory.read", action: "vm.console" },
      schema: {
        tags: ["vms"],
        summary: "The VM's serial console output (the last 64 KiB)",
        description:
          "What the guest wrote to COM1 since it last started. An efi_secret guest (Linux ≥ 5.19) prints the GUID, size and SHA-256 of every injected secret here at boot, so the owner can confirm delivery. Hosts reached through libvirt answer LIBVIRT_UNSUPPORTED.",
        params: IdParams,
        response: { 200: VmConsoleSchema, ...errorResponses },
      },
    },
    (req) => vmConsole(deps.cp.context, req.params.id),
  );
}

/** `GET /v1/vms/{id}/console`: the guest's serial output, as text. */
import { Type } from "typebox";
import { PowerStateSchema } from "./vm.ts";

export const VmConsoleSchema = Type.Object({
  vmId: Type.String(),
  vm: Type.String(),
  host: Type.Union([Type.String(), Type.Null()], { description: "The host's name; null: not placed" }),
  powerState: PowerStateSchema,
  console: Type.String({
    description:
      "What the guest wrote to its serial port since it last started (the last 64 KiB), as the guest wrote it: control characters included — escape before printing to a terminal",
  }),
  dropped: Type.Integer({ minimum: 0, description: "Earlier bytes the host dropped to keep that bound" }),
});

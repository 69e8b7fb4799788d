/** `ciphervisor owner …`: the guest owner's toolkit, in sevctl's shapes. */
import type { Command } from "commander";
import type { CliIo } from "../io.ts";
import { registerOwnerChainCommands } from "./owner-chain.ts";
import { registerOwnerIdBlock } from "./owner-idblock.ts";
import { registerOwnerLaunchCommands } from "./owner-launch.ts";

export function registerOwner(program: Command, io: CliIo): void {
  const owner = program
    .command("owner")
    .description(
      "guest-owner toolkit: verify chains and reports, compute measurements, build sessions and secrets",
    );
  registerOwnerChainCommands(owner, io);
  registerOwnerLaunchCommands(owner, io);
  registerOwnerIdBlock(owner, io);
}

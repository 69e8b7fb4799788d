/** `ciphervisor firmware export`: the built-in emulated UEFI image, so a guest owner can measure what VMs boot. */
import { writeFileSync } from "node:fs";
import type { Command } from "commander";
import { CiphervisorError } from "../../errors.ts";
import { builtinUefiImage } from "../../hypervisor/builtin-uefi.ts";
import type { CliIo } from "../io.ts";

export function registerFirmware(program: Command, io: CliIo): void {
  const fw = program.command("firmware").description("firmware images the emulated hosts boot");
  fw.command("export")
    .description("write the built-in emulated UEFI image (OVMF-shaped, with its footer table) to a file")
    .requiredOption("--out <file>", "where to write the image")
    .action((opts: { out: string }) => {
      const image = builtinUefiImage();
      try {
        writeFileSync(opts.out, image);
      } catch (e) {
        throw new CiphervisorError("IO", `--out ${opts.out}: ${(e as Error).message}`, { cause: e });
      }
      io.out(`wrote ${image.length} bytes to ${opts.out}\n`);
    });
}

/** `ciphervisor sev export|status`: an emulated platform's chain and firmware status. */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { CiphervisorError } from "../../errors.ts";
import { CPU_MODELS, GENERATIONS, type Generation } from "../../machine/cpu-models.ts";
import { createEmulatedPlatform } from "../../sev/emulated-platform.ts";
import { exportFullChain } from "../../sev/export.ts";
import { parseChoice, parseIntFlag } from "../args.ts";
import type { CliIo } from "../io.ts";

interface PlatformFlags {
  generation: string;
  seed: string;
  minSevAsid?: string;
}

function platformFrom(flags: PlatformFlags) {
  const generation = parseChoice(flags.generation, "--generation", GENERATIONS) as Generation;
  const seed = parseIntFlag(flags.seed, "--seed");
  const model = CPU_MODELS[generation];
  const minSevAsid =
    flags.minSevAsid === undefined
      ? undefined
      : parseIntFlag(flags.minSevAsid, "--min-sev-asid", 1, model.maxAsid + 1);
  if (minSevAsid !== undefined && !model.sevEs && minSevAsid !== 1) {
    throw new CiphervisorError(
      "INVALID_INPUT",
      `--min-sev-asid: ${generation} has no SEV-ES, the only valid value is 1`,
    );
  }
  return createEmulatedPlatform({ generation, seed, minSevAsid });
}

export function registerSev(program: Command, io: CliIo): void {
  const sev = program.command("sev").description("the emulated AMD Secure Processor");

  sev
    .command("export")
    .description(
      "create an emulated platform (deterministic from the seed) and write its certificate chain in AMD's formats",
    )
    .requiredOption("--generation <gen>", `CPU generation: ${GENERATIONS.join("|")}`)
    .option("--seed <n>", "platform seed", "1")
    .requiredOption("--out <dir>", "directory for ark.cert ask.cert cek.cert oca.cert pek.cert pdh.cert")
    .action((opts: PlatformFlags & { out: string }) => {
      const { client } = platformFrom(opts);
      const chain = exportFullChain(client);
      try {
        mkdirSync(opts.out, { recursive: true });
        for (const [name, bytes] of Object.entries(chain))
          writeFileSync(join(opts.out, `${name}.cert`), bytes);
      } catch (e) {
        throw new CiphervisorError("IO", `--out ${opts.out}: ${(e as Error).message}`, { cause: e });
      }
      io.out(`wrote ark.cert ask.cert cek.cert oca.cert pek.cert pdh.cert to ${opts.out}\n`);
    });

  sev
    .command("status")
    .description("PLATFORM_STATUS of an emulated platform and its SEV / SEV-ES ASID pools")
    .requiredOption("--generation <gen>", `CPU generation: ${GENERATIONS.join("|")}`)
    .option("--seed <n>", "platform seed", "1")
    .option("--min-sev-asid <n>", "BIOS min_sev_asid (ES ASIDs are [1, n)); default from the CPU table")
    .option("--json", "one JSON document on stdout")
    .action((opts: PlatformFlags & { json?: boolean }) => {
      const { client, sp, asids } = platformFrom(opts);
      const status = client.platformStatus();
      const model = sp.model;
      const pools = { sevEs: asids.usage("es"), sev: asids.usage("sev") };
      const doc = {
        generation: model.generation,
        family: model.family,
        platformStatus: status,
        cBit: model.cBit,
        reducedPhysBits: model.reducedPhysBits,
        memoryEncryption: model.memoryMode === "xex" ? "AES-128-XEX" : "AES-128-XE",
        minSevAsid: sp.minSevAsid,
        maxAsid: model.maxAsid,
        pools,
      };
      if (opts.json) {
        io.out(`${JSON.stringify(doc, null, 2)}\n`);
        return;
      }
      const lines = [
        `generation        ${model.generation} (${model.family})`,
        `firmware API      ${status.apiMajor}.${status.apiMinor} build ${status.build}`,
        `platform state    ${status.state}`,
        `owner             ${status.externallyOwned ? "external" : "self"}`,
        `SEV-ES enabled    ${status.configEs ? "yes" : "no"}`,
        `guests            ${status.guestCount}`,
        `C-bit / reduction ${model.cBit} / ${model.reducedPhysBits}`,
        `memory encryption ${doc.memoryEncryption}`,
        `SEV-ES ASIDs      ${pools.sevEs.size === 0 ? "none (min_sev_asid = 1)" : `${pools.sevEs.first}..${pools.sevEs.last} (${pools.sevEs.size}, ${pools.sevEs.free} free)`}`,
        `SEV ASIDs         ${pools.sev.first}..${pools.sev.last} (${pools.sev.size}, ${pools.sev.free} free)`,
      ];
      io.out(`${lines.join("\n")}\n`);
    });
}

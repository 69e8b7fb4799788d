/**
 * `ciphervisor demo …`: self-contained demonstrations on an emulated host.
 *
 * `demo hypervisor-view --mode none|sev|sev-es|sev-snp [--exits N] [--seed S] [--json]` boots one VM whose guest
 * loads fresh random canaries into its registers and private memory before each of N mixed exits, and shows — side
 * by side — what the guest held and what the hypervisor could read. `--json` prints every byte the hypervisor could
 * read, so anyone can search it for the canaries (issue 3; docs/threat-model.md §8 item 1). An SEV-SNP run adds what
 * SNP adds: the hypervisor's write to the private page, refused by the RMP (issue 14).
 */
import type { Command } from "commander";
import { GUEST_OS_PROFILES } from "../../guest/os-profiles.ts";
import {
  type CanaryExperimentResult,
  hex64,
  runCanaryExperiment,
} from "../../hypervisor/introspection/canary-experiment.ts";
import { writeCanaryExperimentJson } from "../../hypervisor/introspection/canary-json.ts";
import { describeHostWrite, snpVerdict } from "../../hypervisor/introspection/host-write.ts";
import { createLab } from "../../hypervisor/introspection/lab.ts";
import { CPU_MODELS, GENERATIONS, type Generation } from "../../machine/cpu-models.ts";
import type { SecurityMode } from "../../machine/vmcb.ts";
import { parseChoice, parseIntFlag, readInputFile } from "../args.ts";
import type { CliIo } from "../io.ts";

const MODES = ["none", "sev", "sev-es"] as const;
/** The hypervisor view also runs SEV-SNP guests (introspection/snp-lab.ts). */
const VIEW_MODES = [...MODES, "sev-snp"] as const;
/** Guest exits shown side by side; the rest are counted in the summary. */
const SHOWN_EXITS = 8;

interface HypervisorViewFlags {
  mode: string;
  exits: string;
  seed: string;
  json?: boolean;
  generation: string;
  guestOs: string;
}

const SAVE_AREA_NAME: Record<SecurityMode, string> = {
  none: "VMCB save area (plaintext)",
  sev: "VMCB save area (plaintext)",
  "sev-es": "VMSA (ciphertext)",
  "sev-snp": "VMSA (ciphertext)",
};

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + " ".repeat(n - s.length);
}

/** The human report: per exit, each canary register next to what the hypervisor read for it. */
export function formatHypervisorView(r: CanaryExperimentResult, exits: number): string {
  const model = CPU_MODELS[r.generation];
  const guest = GUEST_OS_PROFILES.find((p) => p.id === r.guestOs)?.name ?? r.guestOs;
  const exposed = new Set(r.exposedByGuest);
  const lines: string[] = [];
  lines.push(`Hypervisor view: mode ${r.mode}, ${exits} exits, seed ${r.seed}`);
  lines.push(`Host: emulated ${r.generation} (${model.family}); guest OS: ${guest}`);
  lines.push(
    "Before every exit the guest drew fresh 64-bit canaries (RDRAND) into all 16 registers and one into private memory.",
  );
  lines.push(
    `At every #VMEXIT the hypervisor read all it can: the ${SAVE_AREA_NAME[r.mode]}, the GHCB, and all of DRAM as stored.`,
  );
  lines.push(`"hypervisor reads" = the 8 bytes at that register's slot in the ${SAVE_AREA_NAME[r.mode]}.`);
  for (const [i, ex] of r.perExit.slice(0, SHOWN_EXITS).entries()) {
    lines.push("");
    lines.push(`guest exit ${i + 1}: ${ex.kind} (#VMEXIT ${ex.exitIndex + 1})`);
    lines.push(
      `  ${pad("reg", 5)}${pad("guest holds", 19)}${pad("hypervisor reads", 19)}found by the hypervisor`,
    );
    for (const reg of ex.registers) {
      const found =
        reg.foundAt === undefined
          ? "no"
          : exposed.has(reg.value)
            ? `${reg.foundAt}: the guest put it there (GHCB valid bit set)`
            : reg.foundAt;
      lines.push(
        `  ${pad(reg.reg, 5)}${pad(hex64(reg.value), 19)}${pad(hex64(reg.saveAreaReads), 19)}${found}`,
      );
    }
  }
  if (r.perExit.length > SHOWN_EXITS) {
    lines.push("");
    lines.push(
      `(guest exits ${SHOWN_EXITS + 1}–${r.perExit.length}${r.perExit.length >= 64 ? "…" : ""} are not shown; the summary counts them all)`,
    );
  }
  const memVisible = new Set(r.memoryCanariesVisible);
  lines.push("");
  lines.push("memory canaries (stored in private memory):");
  for (const m of r.canaries.memory.slice(0, SHOWN_EXITS)) {
    lines.push(
      `  ${hex64(m)}  ${memVisible.has(m) ? "FOUND in DRAM" : "not found in DRAM (stored as ciphertext)"}`,
    );
  }
  if (r.hostWrite) {
    lines.push("");
    lines.push(
      `what SEV-SNP adds: at #VMEXIT ${r.hostWrite.exitIndex + 1} the hypervisor wrote the memory canaries' page back as launched (a replay)`,
    );
    lines.push(`  ${describeHostWrite(r.hostWrite)}`);
  }
  const v = r.registerVisibility;
  lines.push("");
  lines.push("Summary");
  lines.push(
    `  register canaries held at exits: ${v.held}; visible to the hypervisor: ${v.visible} (${pct(v.visible, v.held)}), of which not exposed by the guest itself: ${v.visibleNotExposed}`,
  );
  lines.push(
    `  memory canaries: ${r.canaries.memory.length}; visible in DRAM: ${r.memoryCanariesVisible.length} (${pct(r.memoryCanariesVisible.length, r.canaries.memory.length)})`,
  );
  lines.push(`  #VMEXITs: ${r.exitCount}; the VM stopped: ${r.stopReason}`);
  lines.push(`  ${r.mode === "sev-snp" ? snpVerdict(r.hostWrite) : VERDICT[r.mode]}`);
  lines.push("Use --json for every byte the hypervisor could read, and search it for the canaries yourself.");
  return `${lines.join("\n")}\n`;
}

/** Verdicts that follow from the mode alone; SEV-SNP's comes from the run (`snpVerdict`, host-write.ts). */
const VERDICT: Record<Exclude<SecurityMode, "sev-snp">, string> = {
  none: "No encryption: registers and memory are plaintext to the hypervisor.",
  sev: "Plain SEV: memory is encrypted, but every register lands in the VMCB save area in plaintext at every exit.",
  "sev-es":
    "SEV-ES: registers stay in the encrypted VMSA; the hypervisor sees only what the guest put in the GHCB with a valid bit.",
};

function pct(a: number, b: number): string {
  return b === 0 ? "0%" : `${((100 * a) / b).toFixed(1)}%`;
}

export function registerDemo(program: Command, io: CliIo): void {
  const demo = program.command("demo").description("self-contained demonstrations on an emulated host");

  demo
    .command("hypervisor-view")
    .description(
      "boot one emulated VM that loads random canaries into its registers and memory before each exit, and show what the hypervisor could read",
    )
    .requiredOption("--mode <mode>", `security mode: ${VIEW_MODES.join("|")}`)
    .option("--exits <n>", "exits the guest takes (1..100000)", "8")
    .option("--seed <s>", "seed: the whole run is deterministic from it", "1")
    .option("--json", "print one JSON document with every byte the hypervisor could read")
    .option("--generation <gen>", `host CPU generation: ${GENERATIONS.join("|")}`, "milan")
    .option(
      "--guest-os <id>",
      `guest OS profile: ${GUEST_OS_PROFILES.map((p) => p.id).join("|")}`,
      "linux-5.19",
    )
    .action(async (flags: HypervisorViewFlags) => {
      const mode = parseChoice(flags.mode, "--mode", VIEW_MODES);
      const exits = parseIntFlag(flags.exits, "--exits", 1, 100_000);
      const generation = parseChoice(flags.generation, "--generation", GENERATIONS) as Generation;
      const run = { mode, exits, seed: flags.seed, generation, guestOs: flags.guestOs };
      // Streamed: at --exits 100000 the document is ≈ 1.6 GB of hex, which must never be held at once.
      if (flags.json) await writeCanaryExperimentJson(run, (s) => (io.write ? io.write(s) : io.out(s)));
      else io.out(formatHypervisorView(runCanaryExperiment(run), exits));
    });

  demo
    .command("run-guest")
    .description("assemble a guest program (docs/guest-isa.md) and run it on an emulated host")
    .argument("<file>", "guest assembly, e.g. examples/guests/hello.s")
    .requiredOption("--mode <mode>", `security mode: ${MODES.join("|")}`)
    .option("--max-exits <n>", "stop after this many #VMEXITs", "10000")
    .option("--seed <s>", "seed: the whole run is deterministic from it", "1")
    .option("--generation <gen>", `host CPU generation: ${GENERATIONS.join("|")}`, "milan")
    .option(
      "--guest-os <id>",
      `guest OS profile: ${GUEST_OS_PROFILES.map((p) => p.id).join("|")}`,
      "linux-5.19",
    )
    .action(
      (
        file: string,
        flags: { mode: string; maxExits: string; seed: string; generation: string; guestOs: string },
      ) => {
        const mode = parseChoice(flags.mode, "--mode", MODES);
        const maxExits = parseIntFlag(flags.maxExits, "--max-exits", 1, 1_000_000);
        const generation = parseChoice(flags.generation, "--generation", GENERATIONS) as Generation;
        const source = new TextDecoder().decode(readInputFile(file, "<file>"));
        const lab = createLab({ source, mode, generation, guestOs: flags.guestOs, seed: flags.seed });
        const exits = lab.run({ maxExits });
        const counts = new Map<string, number>();
        for (const h of exits) counts.set(h.exit.name, (counts.get(h.exit.name) ?? 0) + 1);
        const last = exits.at(-1)!.outcome;
        io.out(`${file}: mode ${mode} on an emulated ${generation} host, guest OS ${flags.guestOs}\n`);
        io.out(`#VMEXITs: ${exits.length} (${[...counts].map(([n, c]) => `${n} × ${c}`).join(", ")})\n`);
        if (lab.vm.devices.console)
          io.out(`console:\n${lab.vm.devices.console.replace(/\n$/, "").replace(/^/gm, "  ")}\n`);
        io.out(
          last.action === "stop" ? `stopped: ${last.reason}\n` : `still running after ${maxExits} exits\n`,
        );
      },
    );
}

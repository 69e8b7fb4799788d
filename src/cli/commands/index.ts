/**
 * Registers every noun of the CLI: one entry per command file. Only the noun a command line uses is imported —
 * `serve` alone pulls in fastify, the database drivers and the whole control plane (over a second of start-up), so
 * loading every noun for `ciphervisor vm list` would cost more than the request. The others appear in the help
 * as one-line stubs; `completion` (and any caller that passes no argv) loads them all.
 */
import type { Command } from "commander";
import type { CliIo } from "../io.ts";

type Register = (program: Command, io: CliIo) => void;

interface Noun {
  readonly name: string;
  /** The top-level help line (the noun's own file sets the same one when it loads). */
  readonly description: string;
  readonly load: () => Promise<Register>;
}

const NOUNS: readonly Noun[] = [
  {
    name: "demo",
    description: "self-contained demonstrations on an emulated host",
    load: async () => (await import("./demo.ts")).registerDemo,
  },
  {
    name: "firmware",
    description: "firmware images the emulated hosts boot",
    load: async () => (await import("./firmware.ts")).registerFirmware,
  },
  {
    name: "owner",
    description:
      "guest-owner toolkit: verify chains and reports, compute measurements, build sessions and secrets",
    load: async () => (await import("./owner.ts")).registerOwner,
  },
  {
    name: "serve",
    description: "run a control-plane node and its REST API (/v1, OpenAPI at /docs)",
    load: async () => (await import("./serve.ts")).registerServe,
  },
  {
    name: "sev",
    description: "the emulated AMD Secure Processor",
    load: async () => (await import("./sev.ts")).registerSev,
  },
  {
    name: "vm",
    description: "virtual machines: list, create, turn SEV-ES on, power, migrate, …",
    load: async () => (await import("./vm.ts")).registerVm,
  },
  {
    name: "host",
    description: "hosts and their SEV / SEV-ES key-slot pools; maintenance mode",
    load: async () => (await import("./host.ts")).registerHost,
  },
  {
    name: "image",
    description: "the image catalog: firmware (OVMF), kernels and initrds VMs boot",
    load: async () => (await import("./image.ts")).registerImage,
  },
  {
    name: "operation",
    description: "operations (tasks): list, get, watch",
    load: async () => (await import("./operation.ts")).registerOperation,
  },
  {
    name: "audit",
    description: "the hash-chained audit log: list, verify",
    load: async () => (await import("./audit.ts")).registerAudit,
  },
  {
    name: "token",
    description: "API tokens: create, list, revoke",
    load: async () => (await import("./token.ts")).registerToken,
  },
  {
    name: "config",
    description: "connection contexts (server + token file) and whoami",
    load: async () => (await import("./config.ts")).registerConfig,
  },
  {
    name: "completion",
    description: "print a shell completion script",
    load: async () => (await import("./completion.ts")).registerCompletion,
  },
];

/** The nouns a command line needs loaded: the one it names (also after `help`), or all of them. */
function needed(argv: readonly string[] | undefined): Set<string> {
  const all = new Set(NOUNS.map((n) => n.name));
  if (argv === undefined) return all;
  const first = argv.find((a) => !a.startsWith("-"));
  const target = first === "help" ? argv[argv.indexOf("help") + 1] : first;
  if (target === "completion") return all;
  return new Set(target !== undefined && all.has(target) ? [target] : []);
}

/**
 * Registers the nouns: loaded for those `argv` uses, stubs (name and description) for the rest. Without `argv`
 * every noun is loaded.
 */
export async function registerCommands(program: Command, io: CliIo, argv?: readonly string[]): Promise<void> {
  const load = needed(argv);
  const registers = await Promise.all(NOUNS.map((n) => (load.has(n.name) ? n.load() : undefined)));
  NOUNS.forEach((n, i) => {
    const register = registers[i];
    if (register) register(program, io);
    else program.command(n.name).description(n.description);
  });
}

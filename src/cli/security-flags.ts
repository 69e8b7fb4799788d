/**
 * The security-mode flags `vm create` and `vm set` share: `--sev-snp`, `--sev-es` and `--sev`, each `on|off`, as
 * one table. Each mode builds on the ones below it (an SNP guest is an SEV-ES guest with the Reverse Map Table; an
 * SEV-ES guest is an SEV guest with encrypted registers), so "on" for one mode with "off" for a mode below it
 * contradicts itself, and "off" alone turns protection off.
 */
import type { Command } from "commander";
import { CiphervisorError } from "../errors.ts";
import type { SecurityMode } from "../vocabulary.ts";
import { parseOnOff } from "./args.ts";

export interface SecurityFlags {
  sevSnp?: string;
  sevEs?: string;
  sev?: string;
}

/** Strongest first. */
const MODE_FLAGS: readonly { key: keyof SecurityFlags; flag: string; mode: SecurityMode; name: string }[] = [
  { key: "sevSnp", flag: "--sev-snp", mode: "sev-snp", name: "SEV-SNP" },
  { key: "sevEs", flag: "--sev-es", mode: "sev-es", name: "SEV-ES" },
  { key: "sev", flag: "--sev", mode: "sev", name: "SEV" },
];

const HELP: Readonly<Record<keyof SecurityFlags, string>> = {
  sevSnp: "SEV-SNP: memory and registers encrypted, memory integrity (RMP), signed attestation reports",
  sevEs: "SEV-ES: memory and CPU register state encrypted",
  sev: "SEV: memory encrypted",
};

/** Adds the three flags to a command (the same words on `vm create` and `vm set`). */
export function securityOptions(cmd: Command): Command {
  for (const f of MODE_FLAGS) cmd.option(`${f.flag} <on|off>`, HELP[f.key]);
  return cmd;
}

function given(flags: SecurityFlags): {
  on: (typeof MODE_FLAGS)[number][];
  off: (typeof MODE_FLAGS)[number][];
} {
  const on: (typeof MODE_FLAGS)[number][] = [];
  const off: (typeof MODE_FLAGS)[number][] = [];
  for (const f of MODE_FLAGS) {
    const v = flags[f.key];
    if (v === undefined) continue;
    (parseOnOff(v, f.flag) ? on : off).push(f);
  }
  return { on, off };
}

/** The mode `vm create` asks for: at most one `on`; none means an ordinary VM. */
export function createModeOf(flags: SecurityFlags): SecurityMode {
  const { on } = given(flags);
  if (on.length > 1) {
    throw new CiphervisorError(
      "USAGE",
      `give one of ${on.map((f) => `${f.flag} on`).join(", ")}, not several`,
    );
  }
  return on[0]?.mode ?? "none";
}

/** The mode `vm set` asks for, or undefined when no mode flag is given. */
export function setModeOf(flags: SecurityFlags): SecurityMode | undefined {
  const { on, off } = given(flags);
  if (on.length > 1) {
    throw new CiphervisorError(
      "USAGE",
      `give one of ${on.map((f) => `${f.flag} on`).join(", ")}, not several`,
    );
  }
  const chosen = on[0];
  if (chosen) {
    const below = off.find((f) => MODE_FLAGS.indexOf(f) > MODE_FLAGS.indexOf(chosen));
    if (below) {
      throw new CiphervisorError(
        "USAGE",
        `${chosen.name} builds on ${below.name}: ${chosen.flag} on contradicts ${below.flag} off`,
      );
    }
    return chosen.mode;
  }
  return off.length > 0 ? "none" : undefined;
}

/** Whether any mode flag says `off` (a weakening that needs --yes). */
export function anyOff(flags: SecurityFlags): boolean {
  return given(flags).off.length > 0;
}

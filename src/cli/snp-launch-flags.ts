/**
 * `vm create`'s SEV-SNP launch options, named as QEMU's `sev-snp-guest` properties are — `--host-data`,
 * `--id-block`, `--id-auth` (base64, as QEMU takes them) and `--author-key-enabled` — so a command line moves
 * between the two. The server checks them (sizes, that the VM is `sev-snp`); the firmware checks the ID block
 * against the launch at SNP_LAUNCH_FINISH. `owner id-block` writes the two base64 values.
 */
import type { Command } from "commander";
import type { ApiVmSpec } from "./client/types.ts";

export interface SnpLaunchFlags {
  hostData?: string;
  idBlock?: string;
  idAuth?: string;
  authorKeyEnabled?: boolean;
}

/** Adds the four options to `cmd`. */
export function snpLaunchOptions(cmd: Command): Command {
  return cmd
    .option(
      "--host-data <base64>",
      "SEV-SNP: 32 bytes every attestation report carries as HOST_DATA (QEMU host-data)",
    )
    .option(
      "--id-block <base64>",
      "SEV-SNP: the owner's 96-byte ID block (QEMU id-block; see owner id-block)",
    )
    .option("--id-auth <base64>", "SEV-SNP: the ID block's 4096-byte authentication (QEMU id-auth)")
    .option(
      "--author-key-enabled",
      "SEV-SNP: --id-auth also carries the author key (QEMU author-key-enabled)",
    );
}

/** The spec's `snp` member, or undefined when no option was given. */
export function snpOf(flags: SnpLaunchFlags): ApiVmSpec["snp"] {
  const snp = {
    ...(flags.hostData === undefined ? {} : { hostData: flags.hostData }),
    ...(flags.idBlock === undefined ? {} : { idBlock: flags.idBlock }),
    ...(flags.idAuth === undefined ? {} : { idAuth: flags.idAuth }),
    ...(flags.authorKeyEnabled ? { authorKeyEnabled: true } : {}),
  };
  return Object.keys(snp).length > 0 ? snp : undefined;
}

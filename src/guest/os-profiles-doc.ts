/**
 * The guest OS profile table rendered as Markdown for docs/guest-os-profiles.md, so the docs are generated from the
 * same table `vm create --guest-os` accepts (`npm run docs` rewrites the file; a test fails when it is stale).
 */
import { GUEST_OS_PROFILES } from "./os-profiles.ts";

const yes = (b: boolean) => (b ? "yes" : "no");
const cell = (s: string) => s.replaceAll("|", "\\|");

export function renderGuestOsProfiles(): string {
  const lines = [
    "# Guest OS profiles",
    "",
    "Generated from `src/guest/os-profiles.ts` by `npm run docs` — edit the table, not this file.",
    "`vm create --guest-os ID` (and `spec.guestOs` in the API) takes one of these ids; any other answers",
    "`INVALID_INPUT` listing the valid ones. A distribution row describes the release's GA kernel; `[backport]`",
    "marks a vendor backport, `[unconfirmed]` a value that could not be confirmed, where the row takes the",
    "conservative value. GHCB v2 adds GHCB GPA registration; efi_secret is Linux's CONFIG_EFI_SECRET driver, which",
    "exposes the SEV launch secret under securityfs (`secrets/coco`). SEV-SNP guest support (PVALIDATE, the secrets",
    "page, the sev-guest driver) is upstream from Linux 5.19; distribution backports are not assumed.",
    "",
    "| id | name | kernel | SEV | SEV-ES | SEV-SNP | GHCB | efi_secret |",
    "|---|---|---|---|---|---|---|---|",
  ];
  for (const p of GUEST_OS_PROFILES) {
    const g = p.ghcbProtocol;
    const ghcb = !g ? "—" : g.min === g.max ? `v${g.min}` : `v${g.min}–v${g.max}`;
    lines.push(
      `| \`${p.id}\` | ${cell(p.name)} | ${p.kernelVersion} | ${yes(p.sev)} | ${yes(p.sevEs)} | ${yes(p.sevSnp)} | ${ghcb} | ${yes(p.efiSecret)} |`,
    );
  }
  lines.push("", "## Sources", "");
  for (const p of GUEST_OS_PROFILES) lines.push(`- **\`${p.id}\`**: ${p.source}`);
  return `${lines.join("\n")}\n`;
}

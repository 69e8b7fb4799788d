/**
 * Debian's Chromium for playwright-core (never a downloaded browser): where it is, and the flags a headless run in
 * a container needs. Used by the dashboard's end-to-end tests and its bench case.
 */
import { execFileSync } from "node:child_process";

export const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

/** The `chromium` on PATH, or undefined when there is none (`apt-get install chromium`). */
export function chromiumPath(): string | undefined {
  try {
    return execFileSync("sh", ["-c", "command -v chromium"], { encoding: "utf8" }).trim() || undefined;
  } catch {
    return undefined;
  }
}

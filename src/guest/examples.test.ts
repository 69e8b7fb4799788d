/**
 * Every example under examples/guests/ assembles and runs in each mode its header lists (`; modes: …`), ending
 * with the console output it promises (`; expect-console: …`) — or still running after `; max-exits: N`.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { createLab } from "../hypervisor/introspection/lab.ts";
import type { SecurityMode } from "../machine/vmcb.ts";

const DIR = join(import.meta.dirname, "../../examples/guests");
const files = readdirSync(DIR).filter((f) => f.endsWith(".s"));

function header(source: string, key: string): string | undefined {
  const m = new RegExp(`^; ${key}: (.*)$`, "m").exec(source);
  return m?.[1]?.trim();
}

describe("examples/guests", () => {
  it("there are examples", () => {
    assert.ok(files.length >= 5, files.join(", "));
  });
  for (const f of files) {
    const source = readFileSync(join(DIR, f), "utf8");
    const modes = (header(source, "modes") ?? "").split(/\s+/).filter(Boolean) as SecurityMode[];
    const console = header(source, "expect-console")?.replace(/\\n/g, "\n");
    const maxExits = Number(header(source, "max-exits") ?? 10_000);
    for (const mode of modes) {
      it(`${f} runs under ${mode}`, () => {
        const lab = createLab({ source, mode, seed: f });
        const exits = lab.run({ maxExits });
        const last = exits.at(-1)!.outcome;
        if (header(source, "max-exits")) {
          assert.equal(exits.length, maxExits);
          assert.equal(last.action, "resume");
        } else {
          assert.equal(last.action, "stop");
          assert.match((last as { reason: string }).reason, /isa-debug-exit/);
        }
        if (console !== undefined) assert.equal(lab.vm.devices.console, console);
      });
    }
  }
});

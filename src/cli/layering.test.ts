/**
 * The CLI is a thin client: apart from the local commands that run the lower layers in-process on purpose (`sev`,
 * `demo`, `owner`, `firmware`, `serve`), nothing under src/cli loads src/control, src/hypervisor, src/sev or
 * src/api at run time — not directly, not through a module it imports. Type-only imports (`import type`, the
 * API's schemas for the wire types) are erased and allowed. The check follows every static and dynamic import.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const CLI = join(SRC, "cli");
const FORBIDDEN = ["control", "hypervisor", "sev", "api"].map((d) => join(SRC, d));
/** Commands that run the lower layers in this process, and the testing helpers. */
const LOCAL = [
  "commands/sev.ts",
  "commands/demo.ts",
  "commands/firmware.ts",
  "commands/serve.ts",
  "testing/",
];
const isLocal = (file: string) => {
  const r = relative(CLI, file);
  return LOCAL.some((l) => r === l || r.startsWith(l) || /^commands\/owner(-[a-z]+)?\.ts$/.test(r));
};

function sources(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) sources(p, out);
    else if (p.endsWith(".ts") && !p.endsWith(".test.ts")) out.push(p);
  }
  return out;
}

/** The relative modules `file` loads at run time (type-only imports and exports are erased). */
export function runtimeImports(file: string): string[] {
  // Comments could hold example imports; strip them first.
  const text = readFileSync(file, "utf8")
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .replace(/^\s*\/\/.*$/gm, "");
  const out: string[] = [];
  const statics = /^\s*(import|export)\s+(type\s+)?([^;]*?)\s*from\s*["']([^"']+)["']/gm;
  for (const m of text.matchAll(statics)) {
    if (m[2]) continue; // import type … / export type …
    const clause = m[3] ?? "";
    // `import { type A, type B } from` is erased too.
    const named = /^\{([^}]*)\}$/.exec(clause.trim());
    if (named?.[1]?.split(",").every((n) => n.trim() === "" || n.trim().startsWith("type "))) continue;
    out.push(m[4] ?? "");
  }
  for (const m of text.matchAll(/^\s*import\s+["']([^"']+)["']/gm)) out.push(m[1] ?? "");
  for (const m of text.matchAll(/\bimport\(\s*["']([^"']+)["']\s*\)/g)) out.push(m[1] ?? "");
  return out.filter((s) => s.startsWith(".")).map((s) => resolve(dirname(file), s));
}

/** Every module `file` reaches at run time (not entering local commands), and the path to each. */
function closure(file: string): Map<string, string[]> {
  const seen = new Map<string, string[]>([[file, [file]]]);
  const todo = [file];
  while (todo.length > 0) {
    const f = todo.pop() as string;
    for (const dep of runtimeImports(f)) {
      // The local commands are loaded only when their noun is run (commands/index.ts): they may use anything.
      if (seen.has(dep) || (dep.startsWith(`${CLI}/`) && isLocal(dep))) continue;
      seen.set(dep, [...(seen.get(f) ?? []), dep]);
      todo.push(dep);
    }
  }
  return seen;
}

describe("the CLI's layering", () => {
  it("no fleet command loads the control plane, the hypervisor, the firmware or the API at run time", () => {
    const files = sources(CLI).filter((f) => !isLocal(f));
    assert.ok(files.length > 20, "the CLI's sources were found");
    const violations: string[] = [];
    for (const f of files) {
      for (const [dep, path] of closure(f)) {
        if (FORBIDDEN.some((d) => dep.startsWith(`${d}/`))) {
          violations.push(path.map((p) => relative(SRC, p)).join(" → "));
          break;
        }
      }
    }
    assert.deepEqual(violations, []);
  });

  it("sees through the import forms it must (the check can fail)", () => {
    const tmp = join(CLI, "commands", "vm-set.ts");
    const deps = runtimeImports(tmp).map((d) => relative(SRC, d));
    assert.ok(deps.includes("errors.ts"), `static imports: ${deps.join(", ")}`);
    assert.ok(!deps.some((d) => d.startsWith("api/")), "type-only imports are not run-time imports");
    const index = runtimeImports(join(CLI, "commands", "index.ts")).map((d) => relative(SRC, d));
    assert.ok(index.includes("cli/commands/serve.ts"), "dynamic imports are followed");
    assert.ok(isLocal(join(CLI, "commands", "serve.ts")) && !isLocal(join(CLI, "commands", "vm.ts")));
  });
});

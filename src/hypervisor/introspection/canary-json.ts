/**
 * The `demo hypervisor-view --json` document written as the experiment runs, in chunks, so `--exits 100000` holds
 * one exit's bytes at a time instead of every save area and GHCB of the run (3.7 GB before). The document's members
 * are those of `canaryExperimentJson`; only their order differs: `hypervisorView` comes before `canaries`,
 * `exposedByGuest` and (SEV-SNP) `hostWrite`, which are known only when the run ends (JSON objects are unordered,
 * RFC 8259 §4).
 *
 * Save areas are written as they come. GHCBs arrive interleaved with them, so they wait until the save areas are
 * written — deflated: a GHCB page is mostly zeros (≈ 4 KiB → ≈ 100 bytes), while VMSA ciphertext would not shrink.
 */
import { deflateRawSync, inflateRawSync } from "node:zlib";
import { type CanaryExperimentOptions, canaryExperimentSteps, hex64 } from "./canary-experiment.ts";

/** Text gathered before each write: large enough for few writes, small against the run. */
const CHUNK_CHARS = 1 << 20;

function* mapped<T>(items: readonly T[], f: (t: T) => string): Generator<string> {
  for (const t of items) yield f(t);
}

function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
}

/**
 * A page deflated, in memory of its own size. zlib's result is a view of its whole output buffer (16 KiB); a kept
 * view keeps that alive — 100,000 GHCBs of ≈ 60 bytes each held 1.6 GB of RSS. The copy comes from Node's small
 * buffer pool.
 */
export function keptDeflated(page: Uint8Array): Buffer {
  return Buffer.from(deflateRawSync(page));
}

/**
 * Runs the experiment and writes its JSON document through `write`, awaiting it between chunks (backpressure).
 *
 * @example
 * ```ts
 * await writeCanaryExperimentJson({ mode: "sev-es", exits: 100_000, seed: 1 }, (s) => io.write(s));
 * ```
 */
export async function writeCanaryExperimentJson(
  opts: Omit<CanaryExperimentOptions, "retain">,
  write: (chunk: string) => void | Promise<void>,
): Promise<void> {
  let buf = "";
  const put = async (s: string) => {
    buf += s;
    if (buf.length >= CHUNK_CHARS) {
      const chunk = buf;
      buf = "";
      await write(chunk);
    }
  };
  const list = async (items: Iterable<string>) => {
    let first = true;
    for (const item of items) {
      await put(`${first ? "" : ","}"${item}"`);
      first = false;
    }
  };
  const steps = canaryExperimentSteps({ ...opts, retain: false });
  const ghcbs: Buffer[] = [];
  await put(`{"mode":${JSON.stringify(opts.mode)},"hypervisorView":{"saveAreas":[`);
  let first = true;
  let step = steps.next();
  while (!step.done) {
    const ev = step.value;
    await put(`${first ? "" : ","}"${hex(ev.saveArea)}"`);
    first = false;
    if (ev.ghcb) ghcbs.push(keptDeflated(ev.ghcb));
    step = steps.next();
  }
  const r = step.value;
  await put(`],"ghcb":[`);
  await list(mapped(ghcbs, (g) => hex(inflateRawSync(g))));
  ghcbs.length = 0;
  await put(`],"memory":[`);
  await list(mapped(r.memory, (m) => hex(m.bytes)));
  await put(`]},"canaries":{"registers":[`);
  await list(mapped(r.canaries.registers, hex64));
  await put(`],"memory":[`);
  await list(mapped(r.canaries.memory, hex64));
  await put(`]},"exposedByGuest":[`);
  await list(mapped(r.exposedByGuest, hex64));
  // SEV-SNP: the hypervisor's refused write to the private page (host-write.ts), known once the run is over.
  await put(r.hostWrite ? `],"hostWrite":${JSON.stringify(r.hostWrite)}}\n` : "]}\n");
  if (buf !== "") await write(buf);
}

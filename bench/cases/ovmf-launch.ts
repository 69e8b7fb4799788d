/**
 * SEV-ES launch of Debian's real OVMF (issue 12): `Host.start` → `Host.finishLaunch` on an emulated Rome host, a
 * VM with 4 vCPUs whose firmware is /usr/share/OVMF/OVMF_CODE*.fd — LAUNCH_START with the guest owner's session,
 * LAUNCH_UPDATE_DATA over the whole image (measured, then encrypted by the memory engine at its physical
 * addresses), four LAUNCH_UPDATE_VMSA, LAUNCH_MEASURE (the VM pauses for attestation), then LAUNCH_FINISH and the
 * guest's boot to `running` — next to the raw floor measured in the same run: SHA-256 and AES-128-ECB of the same
 * bytes in one call each (Node's crypto, a long-lived ECB context), nothing else. Target: launch ≤ 3 × floor.
 *
 * Each round starts and stops the same defined VM (stop frees its memory and ASID), interleaved with the floor;
 * medians of 41 rounds after 10 untimed ones. The guest owner's session (its P-384 key pair and ECDH with the platform's PDH, `createLaunchSession`)
 * is built once before the timed rounds, as the owner's tool does before a launch in real life; the firmware's own
 * ECDH at LAUNCH_START (PDH private × the owner's public key) is inside every round. Without the `ovmf` package the
 * case fails loudly rather than report nothing.
 */
import { createCipheriv, createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { seededRandom } from "../../src/crypto/random.ts";
import { Host } from "../../src/hypervisor/host.ts";
import { vmSpec } from "../../src/hypervisor/test-support.ts";
import { createLaunchSession } from "../../src/owner/session.ts";
import type { BenchCase, BenchMetric, BenchResult, BenchRunOptions, BenchTarget } from "../types.ts";

const FILES = [
  { label: "OVMF_CODE.fd", path: "/usr/share/OVMF/OVMF_CODE.fd" },
  { label: "OVMF_CODE_4M.fd", path: "/usr/share/OVMF/OVMF_CODE_4M.fd" },
];
const VCPUS = 4;
/** Timed rounds per image (odd: the median is one round). Each is ~10 ms, so many cost little and tame the noise. */
const ROUNDS = 41;
/** Untimed rounds first, so the launch path's code is optimized as in a host that has launched VMs before. */
const WARMUP_ROUNDS = 10;
const POLICY = 0x05;

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

interface Sample {
  /** start(): LAUNCH_START … LAUNCH_MEASURE, the VM paused for attestation. */
  readonly measured: number;
  /** start() + finishLaunch(): to `running`. */
  readonly total: number;
  readonly floor: number;
}

function launcher(firmware: Uint8Array, imageName: string): () => { measured: number; total: number } {
  const host = new Host({ name: "rome-ovmf", generation: "rome", seed: 21, vmmProfile: "qemu" });
  const session = createLaunchSession(host.firmware.pdhCertExport().pdh, POLICY, seededRandom("ovmf-owner"));
  host.define(
    vmSpec("ovmf-es", {
      security: "sev-es",
      vcpus: VCPUS,
      policy: POLICY,
      firmware: { kind: "efi", image: firmware, imageName },
      session: { godhCert: session.godhCert, session: session.session },
      attestation: true,
    }),
  );
  return () => {
    const t0 = performance.now();
    const started = host.start("ovmf-es");
    const t1 = performance.now();
    const power = host.finishLaunch("ovmf-es").power;
    const t2 = performance.now();
    if (started.status.power !== "paused" || power !== "running")
      throw new Error(`OVMF launch ended ${started.status.power} → ${power}`);
    host.stop("ovmf-es");
    return { measured: t1 - t0, total: t2 - t0 };
  };
}

function floorOf(firmware: Uint8Array): () => number {
  const ecb = createCipheriv("aes-128-ecb", new Uint8Array(16).fill(7), null).setAutoPadding(false);
  return () => {
    const t0 = performance.now();
    createHash("sha256").update(firmware).digest();
    ecb.update(firmware);
    return performance.now() - t0;
  };
}

function measure(options: BenchRunOptions): BenchResult {
  const rounds = options.quick ? 2 : ROUNDS;
  const present = FILES.filter((f) => existsSync(f.path));
  if (present.length === 0) {
    throw new Error(
      `*** Debian's OVMF is missing (${FILES.map((f) => f.path).join(", ")}): install the 'ovmf' package — the OVMF launch case cannot run ***`,
    );
  }
  const files = options.quick ? present.slice(0, 1) : present;
  const metrics: BenchMetric[] = [];
  const targets: BenchTarget[] = [];
  for (const f of files) {
    const firmware = new Uint8Array(readFileSync(f.path));
    const launch = launcher(firmware, f.path);
    const floor = floorOf(firmware);
    for (let w = 0; w < (options.quick ? 1 : WARMUP_ROUNDS); w++) {
      launch();
      floor();
    }
    const samples: Sample[] = [];
    for (let r = 0; r < rounds; r++) {
      const fl = r % 2 === 0 ? floor() : Number.NaN;
      const l = launch();
      samples.push({ ...l, floor: Number.isNaN(fl) ? floor() : fl });
    }
    const floorMs = median(samples.map((s) => s.floor));
    const total = median(samples.map((s) => s.total));
    const mib = (firmware.length / 2 ** 20).toFixed(2);
    const name = `${f.label} (${mib} MiB), ${VCPUS} vCPUs: launch to running`;
    metrics.push(
      {
        name,
        value: total,
        unit: "ms",
        baseline: floorMs,
        baselineName: "SHA-256 + AES-128-ECB of the image",
      },
      {
        name: `${f.label}: start → paused (LAUNCH_START…MEASURE)`,
        value: median(samples.map((s) => s.measured)),
        unit: "ms",
        baseline: floorMs,
        baselineName: "SHA-256 + AES-128-ECB of the image",
      },
      {
        name: `${f.label}: launch ÷ floor (median of per-round ratios)`,
        value: median(samples.map((s) => s.total / s.floor)),
        unit: "×",
      },
    );
    targets.push({
      metric: `${f.label}: launch ÷ floor (median of per-round ratios)`,
      max: 3,
      source: "issue 12: SEV-ES launch of Debian's OVMF ≤ 3 × SHA-256 + AES-128 of the same bytes",
    });
  }
  return {
    metrics,
    targets,
    notes: `emulated Rome host, SEV-ES, ${VCPUS} vCPUs, attested launch (start → paused → finishLaunch → running, then stop); the owner's session prepared before the timed rounds, the firmware's ECDH inside them; medians of ${rounds} rounds interleaved with the floor${options.quick ? "; --quick: the 2 MiB image only" : ""}`,
  };
}

export const cases: BenchCase[] = [
  {
    name: "ovmf-sev-es-launch",
    description:
      "SEV-ES launch of Debian's OVMF_CODE.fd with 4 vCPUs on an emulated host vs SHA-256 + AES-128 of the image",
    run: measure,
  },
];

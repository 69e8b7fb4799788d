/**
 * Choosing VMs: by name (arguments, or `--from-file FILE|-`, one name a line — what `vm list -o name` prints), every
 * VM (`--all`), or a selector (`--selector os=linux,host=rome-01,mode=none,power=off`). Exactly one way per
 * command, so a script never changes more than it named.
 *
 * Selector keys:
 *
 * | key | matches | example |
 * |---|---|---|
 * | `os` | guest OS profile, or its family | `os=linux`, `os=linux-5.19` |
 * | `host` | host name or id (`none`: unplaced VMs) | `host=rome-01` |
 * | `mode` | security mode | `mode=none`, `mode=sev-es` |
 * | `power` | power state | `power=off` |
 * | `cluster` | cluster id | `cluster=cl_…` |
 * | `name` | exact name, or a prefix ending in `*` | `name=web-*` |
 * | `label.KEY` | a label value | `label.env=prod` |
 *
 * Criteria the API can filter on go to the server; the others (`os`, an exact `name`) are applied here, and the
 * matching VMs are then sent by id.
 */
import { CiphervisorError } from "../errors.ts";
import { GUEST_OS_PROFILES } from "../guest/os-profiles.ts";
import { POWER_STATES, type PowerState, SECURITY_MODES, type SecurityMode } from "../vocabulary.ts";
import type { ApiClient, QueryValue } from "./client/http.ts";
import { findHost, findVms, listAll } from "./client/lookup.ts";
import type { ApiSelector, ApiVm } from "./client/types.ts";
import type { CliIo } from "./io.ts";
import { count } from "./output/format.ts";

const OS_FAMILIES = [...new Set(GUEST_OS_PROFILES.map((p) => p.family))];
const OS_IDS = GUEST_OS_PROFILES.map((p) => p.id);

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const VM_ID = /^vm_[0-9a-z]{26}$/;
const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$/;

/** A parsed `--selector`. */
export interface SelectorSpec {
  readonly os?: string;
  readonly host?: string;
  readonly mode?: SecurityMode;
  readonly power?: PowerState;
  readonly cluster?: string;
  /** Exact name, or a prefix when `namePrefix` is set. */
  readonly name?: string;
  readonly namePrefix?: string;
  readonly labels?: Readonly<Record<string, string>>;
}

function bad(message: string): CiphervisorError {
  return new CiphervisorError("INVALID_INPUT", `--selector: ${message}`);
}

/**
 * Parses `key=value,key=value`. INVALID_INPUT names the offending pair: an unknown key is an error rather than a
 * label, so a typo (`mdoe=none`) never silently matches nothing — or everything.
 *
 * @example
 * ```ts
 * parseSelector("os=linux,host=rome-01,mode=none,power=off");
 * // { os: "linux", host: "rome-01", mode: "none", power: "off" }
 * ```
 */
export function parseSelector(text: string): SelectorSpec {
  const t = text.trim();
  if (t === "") throw bad("is empty; give key=value pairs such as os=linux,power=off");
  const out: {
    os?: string;
    host?: string;
    mode?: SecurityMode;
    power?: PowerState;
    cluster?: string;
    name?: string;
    namePrefix?: string;
    labels?: Record<string, string>;
  } = {};
  const seen = new Set<string>();
  for (const pair of t.split(",")) {
    const i = pair.indexOf("=");
    if (i <= 0 || i === pair.length - 1) throw bad(`'${pair}' is not key=value`);
    const key = pair.slice(0, i).trim();
    const value = pair.slice(i + 1).trim();
    if (seen.has(key)) throw bad(`'${key}' is given twice`);
    seen.add(key);
    if (key.startsWith("label.")) {
      const k = key.slice("label.".length);
      if (!LABEL_KEY.test(k)) throw bad(`'${key}': a label key is letters, digits, '.', '_', '/' or '-'`);
      out.labels = { ...out.labels, [k]: value };
      continue;
    }
    switch (key) {
      case "os":
        if (!OS_IDS.includes(value) && !OS_FAMILIES.includes(value as never)) {
          throw bad(`os must be one of ${[...OS_FAMILIES, ...OS_IDS].join(", ")}, got '${value}'`);
        }
        out.os = value;
        break;
      case "host":
        if (!NAME.test(value)) throw bad(`host '${value}' is not a host name`);
        out.host = value;
        break;
      case "mode":
        if (!(SECURITY_MODES as readonly string[]).includes(value)) {
          throw bad(`mode must be one of ${SECURITY_MODES.join(", ")}, got '${value}'`);
        }
        out.mode = value as SecurityMode;
        break;
      case "power":
        if (!(POWER_STATES as readonly string[]).includes(value)) {
          throw bad(`power must be one of ${POWER_STATES.join(", ")}, got '${value}'`);
        }
        out.power = value as PowerState;
        break;
      case "cluster":
        if (!NAME.test(value)) throw bad(`cluster '${value}' is not a cluster id`);
        out.cluster = value;
        break;
      case "name": {
        const prefix = value.endsWith("*");
        const n = prefix ? value.slice(0, -1) : value;
        if (!NAME.test(n)) throw bad(`name '${value}' is not a VM name (or a prefix ending in '*')`);
        if (prefix) out.namePrefix = n;
        else out.name = n;
        break;
      }
      default:
        throw bad(`unknown key '${key}'; keys are os, host, mode, power, cluster, name and label.KEY`);
    }
  }
  return out;
}

/** Names from `--from-file` text: one a line; blank lines and `#` comments skipped; each checked. */
export function parseNameList(text: string, source: string): string[] {
  const out: string[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? "").replace(/#.*$/, "").trim();
    if (line === "") continue;
    if (!NAME.test(line) && !VM_ID.test(line)) {
      throw new CiphervisorError(
        "INVALID_INPUT",
        `${source} line ${i + 1}: '${line.slice(0, 80)}' is not a VM name`,
      );
    }
    out.push(line);
  }
  return out;
}

/** How a command was told which VMs to act on. */
export type TargetSpec =
  | { readonly kind: "names"; readonly names: readonly string[]; readonly source: string }
  | { readonly kind: "all" }
  | { readonly kind: "selector"; readonly spec: SelectorSpec; readonly text: string };

export interface TargetFlags {
  readonly all?: boolean;
  readonly selector?: string;
  readonly fromFile?: string;
}

async function readList(io: CliIo, file: string): Promise<string> {
  if (file === "-") {
    if (!io.readStdin) throw new CiphervisorError("USAGE", "--from-file -: standard input is not available");
    return io.readStdin();
  }
  const { readFile } = await import("node:fs/promises");
  try {
    return await readFile(file, "utf8");
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message;
    throw new CiphervisorError("IO", `--from-file ${file}: ${why}`, { cause: e });
  }
}

/**
 * The one way of choosing VMs the arguments give. USAGE when none or several are given; an empty `--from-file`
 * is INVALID_INPUT (an empty pipe upstream is a mistake worth stopping for).
 */
export async function targetSpec(
  io: CliIo,
  names: readonly string[],
  flags: TargetFlags,
): Promise<TargetSpec> {
  const ways = [
    names.length > 0 ? "VM names" : undefined,
    flags.fromFile !== undefined ? "--from-file" : undefined,
    flags.all === true ? "--all" : undefined,
    flags.selector !== undefined ? "--selector" : undefined,
  ].filter((w): w is string => w !== undefined);
  if (ways.length === 0) {
    throw new CiphervisorError(
      "USAGE",
      "say which VMs: names, --all, --selector KEY=VALUE,… or --from-file FILE|-",
    );
  }
  if (ways.length > 1)
    throw new CiphervisorError("USAGE", `choose VMs one way, not with ${ways.join(" and ")}`);
  if (flags.all === true) return { kind: "all" };
  if (flags.selector !== undefined)
    return { kind: "selector", spec: parseSelector(flags.selector), text: flags.selector };
  if (flags.fromFile !== undefined) {
    const list = parseNameList(await readList(io, flags.fromFile), `--from-file ${flags.fromFile}`);
    if (list.length === 0)
      throw new CiphervisorError("INVALID_INPUT", `--from-file ${flags.fromFile} names no VMs`);
    return { kind: "names", names: list, source: "--from-file" };
  }
  for (const n of names) {
    if (!NAME.test(n) && !VM_ID.test(n))
      throw new CiphervisorError("INVALID_INPUT", `'${n}' is not a VM name`);
  }
  return { kind: "names", names, source: "arguments" };
}

/** The targets, resolved against the server. */
export interface Targets {
  /** What to send to the bulk routes. */
  readonly selector: ApiSelector;
  /** The VMs, when they had to be listed to resolve the choice (names, `os`, exact `name`). */
  readonly vms: readonly ApiVm[] | undefined;
  /** For messages: "every VM", "3 VMs", "VMs matching os=linux". */
  readonly description: string;
}

function matchesOs(vm: ApiVm, os: string): boolean {
  if (vm.spec.guestOs === os) return true;
  const profile = GUEST_OS_PROFILES.find((p) => p.id === vm.spec.guestOs);
  return profile?.family === os;
}

/** The part of a selector the API filters on, with a host name turned into its id. */
async function serverPart(api: ApiClient, spec: SelectorSpec): Promise<ApiSelector> {
  let hostId: string | null | undefined;
  if (spec.host !== undefined) hostId = spec.host === "none" ? null : (await findHost(api, spec.host)).id;
  return {
    ...(hostId === undefined ? {} : { hostId }),
    ...(spec.mode === undefined ? {} : { securityMode: spec.mode }),
    ...(spec.power === undefined ? {} : { powerState: spec.power }),
    ...(spec.cluster === undefined ? {} : { clusterId: spec.cluster }),
    ...(spec.namePrefix !== undefined ? { namePrefix: spec.namePrefix } : {}),
    ...(spec.name !== undefined ? { namePrefix: spec.name } : {}),
    ...(spec.labels === undefined ? {} : { labels: spec.labels }),
  };
}

/** The list query for a server-side selector. */
export function listQuery(s: ApiSelector): Record<string, QueryValue> {
  return {
    ...(s.hostId === undefined ? {} : { hostId: s.hostId === null ? "none" : s.hostId }),
    ...(s.securityMode === undefined ? {} : { securityMode: s.securityMode }),
    ...(s.powerState === undefined ? {} : { powerState: s.powerState }),
    ...(s.clusterId === undefined ? {} : { clusterId: s.clusterId }),
    ...(s.namePrefix === undefined ? {} : { namePrefix: s.namePrefix }),
    ...(s.labels === undefined
      ? {}
      : {
          labels: Object.entries(s.labels)
            .map(([k, v]) => `${k}=${v}`)
            .join(","),
        }),
  };
}

/**
 * Resolves a target spec. `needVms` lists the VMs even when the server could select them itself (per-VM verbs
 * such as start and stop need each VM's id and name).
 */
export async function resolveTargets(api: ApiClient, t: TargetSpec, needVms: boolean): Promise<Targets> {
  if (t.kind === "names") {
    const vms = await findVms(api, t.names);
    return { selector: { ids: vms.map((v) => v.id) }, vms, description: plural(vms.length, "VM") };
  }
  if (t.kind === "all") {
    const vms = needVms ? await listAll<ApiVm>(api, "/v1/vms") : undefined;
    return { selector: { all: true }, vms, description: "every VM" };
  }
  const server = await serverPart(api, t.spec);
  const clientSide = t.spec.os !== undefined || t.spec.name !== undefined;
  const description = `VMs matching ${t.text}`;
  if (!clientSide && !needVms) {
    return { selector: Object.keys(server).length > 0 ? server : { all: true }, vms: undefined, description };
  }
  let vms = await listAll<ApiVm>(api, "/v1/vms", listQuery(server));
  if (t.spec.os !== undefined) vms = vms.filter((v) => matchesOs(v, t.spec.os as string));
  if (t.spec.name !== undefined) vms = vms.filter((v) => v.name === t.spec.name);
  return { selector: clientSide ? { ids: vms.map((v) => v.id) } : server, vms, description };
}

/** "1 VM", "3 VMs", "10,000 VMs". */
export function plural(n: number, noun: string): string {
  return `${count(n)} ${noun}${n === 1 ? "" : "s"}`;
}

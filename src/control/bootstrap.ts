/**
 * First start of a control plane: the admin token (written to `DIR/admin.token`, mode 0600, never printed), demo
 * tokens for `--demo`, and bringing emulated hosts back after a restart. The emulated machines live in the
 * process, so a restart is a reboot of every emulated host: they are rebuilt from the inventory, on first use (same name,
 * generation, ASID split and VMM profile, seeded by name), and VMs the inventory still thought powered on are recorded as
 * powered off, with an audit record — never silently.
 */

import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CiphervisorError } from "../errors.ts";
import { allHosts } from "./capacity.ts";
import { SLOT_STATES } from "./compat.ts";
import type { DriverRegistry } from "./drivers/driver.ts";
import { EmulatedDriver } from "./drivers/emulated.ts";
import type { Inventory } from "./inventory/inventory.ts";
import type { Actor, Host, PowerState, Vm } from "./inventory/types.ts";
import { ROLES, type Role } from "./rbac.ts";
import { hostFirmware } from "./services/hosts.ts";
import { withoutSession } from "./services/launch-session.ts";
import { issueToken } from "./tokens.ts";

/** The control plane starting itself, as an actor. */
export const SYSTEM_ACTOR: Actor = { id: null, name: "ciphervisor-serve" };

export interface AdminTokenResult {
  readonly path: string;
  /** "created" now, "existing" file, or "elsewhere": the database already has tokens (another node's). */
  readonly state: "created" | "existing" | "elsewhere";
}

/** Writes a secret file that only its owner can read; fails if it exists. */
function writeSecretFile(path: string, secret: string): void {
  writeFileSync(path, `${secret}\n`, { mode: 0o600, flag: "wx" });
}

/**
 * Issues the admin token on first start and writes it to `DIR/admin.token` (0600) in the same transaction as its
 * audit record: if the file cannot be written, no token exists either.
 */
export async function ensureAdminToken(inventory: Inventory, dataDir: string): Promise<AdminTokenResult> {
  const path = join(dataDir, "admin.token");
  if (existsSync(path)) return { path, state: "existing" };
  if ((await inventory.tokens.list({ limit: 1 })).items.length > 0) return { path, state: "elsewhere" };
  try {
    await inventory.transaction(async (tx) => {
      const issued = await issueToken(tx, { name: "admin", roles: ["admin"] });
      writeSecretFile(path, issued.secret.reveal());
      await tx.audit.append({
        actor: SYSTEM_ACTOR,
        action: "token.create",
        target: issued.token.id,
        outcome: "ok",
        details: { name: "admin", roles: ["admin"], file: "admin.token" },
      });
    });
  } catch (e) {
    rmSync(path, { force: true });
    if (e instanceof CiphervisorError) throw e;
    throw new CiphervisorError("IO", `cannot write ${path}: ${(e as Error).message}`, { cause: e });
  }
  return { path, state: "created" };
}

/**
 * Roles that get a demo token (`DIR/demo-tokens/<role>.token`), so each role can be tried: every role of the RBAC
 * table but `admin`, whose token is `DIR/admin.token` already.
 */
export const DEMO_TOKEN_ROLES: readonly Role[] = ROLES.filter((r) => r !== "admin");

/**
 * Issues one token per demo role whose file is missing: all of them on the first start of a demo data directory,
 * later only a role that is new since then.
 */
export async function writeDemoTokens(inventory: Inventory, dataDir: string): Promise<string> {
  const dir = join(dataDir, "demo-tokens");
  if (!existsSync(dir)) mkdirSync(dir, { mode: 0o700 });
  for (const role of DEMO_TOKEN_ROLES) {
    const path = join(dir, `${role}.token`);
    if (existsSync(path)) continue;
    await inventory.transaction(async (tx) => {
      const issued = await issueToken(tx, { name: `demo-${role}`, roles: [role] });
      writeSecretFile(path, issued.secret.reveal());
      await tx.audit.append({
        actor: SYSTEM_ACTOR,
        action: "token.create",
        target: issued.token.id,
        outcome: "ok",
        details: { name: `demo-${role}`, roles: [role], file: `demo-tokens/${role}.token` },
      });
    });
  }
  return dir;
}

/** Power states a VM cannot be in once its emulated host restarted: it held a key slot, or a suspended image. */
const STALE_STATES: readonly PowerState[] = [...SLOT_STATES, "suspended"];

/**
 * Brings back the emulated hosts the inventory lists (after a restart) and records their VMs powered off.
 * Returns how many VMs were marked off.
 *
 * The hosts come back lazily (`EmulatedDriver.addHost(…, { lazy: true })`): each is its options until something
 * reaches it, so 10,000 hosts cost a read of the hosts table, not 10,000 machines. The VMs to mark are found with
 * one grouped count over the inventory (`vms.usage`); only hosts that have any are listed.
 */
export async function restoreEmulatedHosts(inventory: Inventory, drivers: DriverRegistry): Promise<number> {
  let driver: EmulatedDriver | undefined;
  try {
    const d = drivers.get("emulated");
    driver = d instanceof EmulatedDriver ? d : undefined;
  } catch {
    driver = undefined;
  }
  if (!driver) return 0;
  const restored: Host[] = [];
  for (const host of await allHosts(inventory)) {
    if (host.driver !== "emulated" || driver.has(host.address)) continue;
    // The emulated driver builds real EPYC parts only; a row without a generation is none of its machines.
    if (host.cpuGeneration === "unknown") continue;
    driver.addHost(
      {
        name: host.address,
        generation: host.cpuGeneration,
        seed: host.address,
        minSevAsid: host.esAsids + 1,
        vmmProfile: host.vmmProfile,
      },
      { lazy: true },
    );
    restored.push(host);
    // A host registered before the record kept its firmware version (migration 0004) gets it now, from the
    // platform facts, which build no firmware identity.
    if (host.firmware === null) {
      await inventory.hosts.update(host.id, { firmware: hostFirmware(driver.platform(host.address)) });
    }
  }
  if (restored.length === 0) return 0;
  const withStale = new Set(
    (await inventory.vms.usage({ powerStates: STALE_STATES }))
      .filter((u) => u.count > 0)
      .map((u) => u.hostId),
  );
  let marked = 0;
  for (const host of restored) {
    if (withStale.has(host.id)) marked += await markPoweredOff(inventory, host);
  }
  return marked;
}

/** Records the VMs a restarted emulated host held as powered off, each with its audit record. */
async function markPoweredOff(inventory: Inventory, host: Host): Promise<number> {
  const stale: Vm[] = [];
  let cursor: string | null = null;
  do {
    const page: { items: Vm[]; nextCursor: string | null } = await inventory.vms.list(
      { hostId: host.id },
      { limit: 5000, cursor },
    );
    stale.push(...page.items.filter((v) => STALE_STATES.includes(v.powerState)));
    cursor = page.nextCursor;
  } while (cursor !== null);
  if (stale.length === 0) return 0;
  await inventory.transaction(async (tx) => {
    // A one-shot launch session belongs to the launch that just died with the host: drop it too.
    await tx.vms.updateMany(
      stale.map((v) => ({
        id: v.id,
        patch: {
          powerState: "off",
          attestationState: "none",
          ...(v.spec.launchSession === undefined ? {} : { spec: withoutSession(v.spec) }),
        },
      })),
    );
    await tx.audit.append(
      stale.map((v) => ({
        actor: SYSTEM_ACTOR,
        action: "vm.power-off",
        target: v.id,
        outcome: "ok" as const,
        details: {
          reason: `emulated host ${host.name} restarted with the control plane`,
          was: v.powerState,
        },
      })),
    );
  });
  return stale.length;
}

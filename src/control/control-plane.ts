/**
 * One control-plane node: the inventory, the host drivers, the services, and the operations engine that runs
 * them. `serve` builds one per process; tests build several over one database to play several nodes.
 *
 * @example
 * ```ts
 * const cp = createControlPlane({ inventory, drivers, worker: "node-a" });
 * cp.start();
 * const { operation } = await cp.submit({ kind: "vm.power-on", actor, params: { vmId }, target: vmId });
 * await cp.engine.waitFor(operation.id, 30_000);
 * await cp.stop();
 * ```
 */
import { hostname } from "node:os";
import type { DriverRegistry } from "./drivers/driver.ts";
import { type BlobStore, memoryBlobStore } from "./images/blobs.ts";
import { MAX_IMAGE_BYTES } from "./images/inspect.ts";
import type { Inventory } from "./inventory/inventory.ts";
import type { CreatedOperation } from "./inventory/types.ts";
import { OperationEngine } from "./operations/engine.ts";
import { type SubmitRequest, submitOperation } from "./operations/submit.ts";
import { type Logger, type Runner, silentLogger } from "./operations/types.ts";
import { bulkPowerRunner } from "./services/bulk-power.ts";
import { bulkRestarter } from "./services/bulk-restart.ts";
import { bulkUpdateRunner } from "./services/bulk-update.ts";
import type { ControlContext } from "./services/context.ts";
import { enterMaintenanceRunner, exitMaintenanceRunner } from "./services/maintenance.ts";
import { migrateRunner } from "./services/migrate.ts";
import {
  powerOffRunner,
  powerOnRunner,
  restartRunner,
  resumeRunner,
  suspendRunner,
} from "./services/power.ts";
import { cloneRunner, snapshotRunner } from "./services/snapshot-clone.ts";
import { runCreate, runDelete } from "./services/vm-create.ts";

/**
 * Every operation kind, and whether it is long: long operations always answer 202 and are polled or streamed;
 * short ones are awaited by the request (up to a bound) unless the client prefers `respond-async`.
 */
export const OPERATION_KINDS = {
  "vm.create": { long: false },
  "vm.delete": { long: false },
  "vm.power-on": { long: false },
  "vm.power-off": { long: false },
  "vm.restart": { long: false },
  "vm.suspend": { long: false },
  "vm.resume": { long: false },
  "vm.migrate": { long: false },
  "vm.snapshot": { long: false },
  "vm.clone": { long: false },
  "vm.bulk-update": { long: true },
  "vm.bulk-power": { long: true },
  "host.enter-maintenance": { long: true },
  "host.exit-maintenance": { long: false },
} as const;
export type OperationKind = keyof typeof OPERATION_KINDS;

export interface ControlPlaneOptions {
  readonly inventory: Inventory;
  readonly drivers: DriverRegistry;
  /** This node's worker name; default `hostname/pid`. */
  readonly worker?: string;
  readonly log?: Logger;
  /** Operations at once on this node (default 4). */
  readonly concurrency?: number;
  /** VMs at once inside one operation (default 8). */
  readonly parallelism?: number;
  /** VMs per bulk-update transaction (default 1,000). */
  readonly batchSize?: number;
  readonly leaseMs?: number;
  readonly pollMs?: number;
  /** Where image bytes are stored (`serve`: files under the data directory); default in memory. */
  readonly blobs?: BlobStore;
  /** The largest image an upload may be (default {@link MAX_IMAGE_BYTES}). */
  readonly maxImageBytes?: number;
}

export interface ControlPlane {
  readonly context: ControlContext;
  readonly engine: OperationEngine;
  /** Queues an operation (audited) and wakes this node's engine. */
  submit(req: SubmitRequest & { readonly kind: OperationKind }): Promise<CreatedOperation>;
  start(): void;
  /** Drains: stops claiming work and lets running operations finish (up to `graceMs`). */
  stop(graceMs?: number): Promise<void>;
}

/** The runners for every kind, over one context. */
export function runners(c: ControlContext): Record<OperationKind, Runner> {
  return {
    "vm.create": (run) => runCreate(c, run),
    "vm.delete": (run) => runDelete(c, run),
    "vm.power-on": powerOnRunner(c),
    "vm.power-off": powerOffRunner(c),
    "vm.restart": restartRunner(c),
    "vm.suspend": suspendRunner(c),
    "vm.resume": resumeRunner(c),
    "vm.migrate": migrateRunner(c),
    "vm.snapshot": snapshotRunner(c),
    "vm.clone": cloneRunner(c),
    "vm.bulk-update": bulkUpdateRunner(c, bulkRestarter(c)),
    "vm.bulk-power": bulkPowerRunner(c),
    "host.enter-maintenance": enterMaintenanceRunner(c),
    "host.exit-maintenance": exitMaintenanceRunner(c),
  };
}

export function createControlPlane(options: ControlPlaneOptions): ControlPlane {
  const context: ControlContext = {
    inventory: options.inventory,
    drivers: options.drivers,
    log: options.log ?? silentLogger,
    parallelism: options.parallelism ?? 8,
    batchSize: options.batchSize ?? 1000,
    blobs: options.blobs ?? memoryBlobStore(),
    maxImageBytes: options.maxImageBytes ?? MAX_IMAGE_BYTES,
  };
  const engine = new OperationEngine({
    inventory: options.inventory,
    runners: runners(context),
    worker: options.worker ?? `${hostname()}/${process.pid}`,
    log: context.log,
    ...(options.concurrency === undefined ? {} : { concurrency: options.concurrency }),
    ...(options.leaseMs === undefined ? {} : { leaseMs: options.leaseMs }),
    ...(options.pollMs === undefined ? {} : { pollMs: options.pollMs }),
  });
  return {
    context,
    engine,
    async submit(req) {
      const created = await submitOperation(options.inventory, req);
      engine.kick();
      return created;
    },
    start: () => engine.start(),
    stop: (graceMs) => engine.stop(graceMs),
  };
}

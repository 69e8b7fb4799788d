/** The one Inventory implementation: the stores over a Kysely instance, plus transactions and migrations. */
import { AsyncLocalStorage } from "node:async_hooks";
import { type Kysely, Migrator } from "kysely";
import { CiphervisorError } from "../../../errors.ts";
import type { StoreCheckOptions, StoreDamage } from "../health.ts";
import type { Inventory, InventoryDialect, InventoryScope } from "../inventory.ts";
import { auditStore } from "./audit.ts";
import { clusterStore } from "./clusters.ts";
import type { StoreContext } from "./context.ts";
import { isDriverError, mapDbError } from "./errors.ts";
import { checkPostgres, checkSqlite, type IntegrityMemo } from "./health.ts";
import { hostStore } from "./hosts.ts";
import { imageStore } from "./images.ts";
import { inventoryMigrations } from "./migrations.ts";
import { operationStore } from "./operations.ts";
import type { Db } from "./schema.ts";
import { tokenStore } from "./tokens.ts";
import { vmStore } from "./vms.ts";

function scope(ctx: StoreContext): InventoryScope {
  return {
    clusters: clusterStore(ctx),
    hosts: hostStore(ctx),
    vms: vmStore(ctx),
    operations: operationStore(ctx),
    tokens: tokenStore(ctx),
    audit: auditStore(ctx),
    images: imageStore(ctx),
  };
}

/** Which inventory's transaction the current async call chain runs in. */
const activeTransaction = new AsyncLocalStorage<object>();

/** Wraps every method of `store` so it first runs `check`. */
function guarded<T extends object>(store: T, check: () => void): T {
  return new Proxy(store, {
    get(target, prop, receiver) {
      const v: unknown = Reflect.get(target, prop, receiver);
      if (typeof v !== "function") return v;
      return (...args: unknown[]) => {
        try {
          check();
        } catch (e) {
          return Promise.reject(e);
        }
        return v.apply(target, args);
      };
    },
  });
}

export interface KyselyInventoryOptions {
  readonly dialect: InventoryDialect;
  readonly now?: () => Date;
  /** PostgreSQL schema holding the tables (and Kysely's migration tables). */
  readonly schema?: string;
  /** The SQLite file (or `:memory:`), for the store check. */
  readonly path?: string;
  /** See `Inventory.changeToken`; absent: the store has none. */
  readonly changeToken?: () => string | undefined;
}

export class KyselyInventory implements Inventory {
  readonly dialect: InventoryDialect;
  readonly clusters: InventoryScope["clusters"];
  readonly hosts: InventoryScope["hosts"];
  readonly vms: InventoryScope["vms"];
  readonly operations: InventoryScope["operations"];
  readonly tokens: InventoryScope["tokens"];
  readonly audit: InventoryScope["audit"];
  readonly images: InventoryScope["images"];
  readonly #db: Kysely<Db>;
  readonly #ctx: StoreContext;
  readonly #schema: string | undefined;
  readonly #path: string | undefined;
  readonly #changeToken: (() => string | undefined) | undefined;
  #damage: StoreDamage | undefined;
  #integrity: IntegrityMemo | undefined;

  constructor(db: Kysely<Db>, options: KyselyInventoryOptions) {
    this.dialect = options.dialect;
    this.#db = db;
    this.#schema = options.schema;
    this.#path = options.path;
    this.#changeToken = options.changeToken;
    this.#ctx = { db, dialect: options.dialect, now: options.now ?? (() => new Date()) };
    // On SQLite the outer instance shares the one connection with a running transaction: a call through it from
    // inside `transaction()` would wait for that transaction forever. Fail fast instead, on both dialects.
    const check = () => {
      if (activeTransaction.getStore() === this) {
        throw new CiphervisorError(
          "INTERNAL",
          "inventory used inside its own transaction; use the tx argument",
        );
      }
    };
    const s = scope(this.#ctx);
    this.clusters = guarded(s.clusters, check);
    this.hosts = guarded(s.hosts, check);
    this.vms = guarded(s.vms, check);
    this.operations = guarded(s.operations, check);
    this.tokens = guarded(s.tokens, check);
    this.audit = guarded(s.audit, check);
    this.images = guarded(s.images, check);
  }

  changeToken(): string | undefined {
    return this.#changeToken?.();
  }

  async transaction<T>(fn: (tx: InventoryScope) => Promise<T>): Promise<T> {
    if (activeTransaction.getStore() === this) {
      throw new CiphervisorError("INTERNAL", "nested inventory transactions are not supported");
    }
    try {
      return await activeTransaction.run(this, () =>
        this.#db.transaction().execute((trx) => fn(scope({ ...this.#ctx, db: trx }))),
      );
    } catch (e) {
      // Database failures (BEGIN/COMMIT, a lost connection) get a code; the callback's own errors pass unchanged.
      throw isDriverError(e) ? mapDbError(e) : e;
    }
  }

  async migrate(): Promise<void> {
    const migrator = new Migrator({
      db: this.#db,
      provider: inventoryMigrations(this.dialect),
      // Kysely otherwise finds a migration table in any schema of the database and assumes it is ours.
      ...(this.#schema === undefined ? {} : { migrationTableSchema: this.#schema }),
    });
    const { error } = await migrator.migrateToLatest();
    if (error !== undefined) {
      throw new CiphervisorError("INTERNAL", "inventory schema migration failed", { cause: error });
    }
  }

  get damage(): StoreDamage | undefined {
    return this.#damage;
  }

  async check(
    options: StoreCheckOptions & { readonly maxAgeMs?: number } = {},
  ): Promise<StoreDamage | undefined> {
    if (this.dialect === "postgres") {
      this.#damage = await checkPostgres(this.#db);
    } else {
      const r = await checkSqlite(this.#db, this.#path ?? ":memory:", options, this.#integrity, Date.now());
      this.#integrity = r.memo;
      this.#damage = r.damage;
    }
    return this.#damage;
  }

  async close(): Promise<void> {
    await this.#db.destroy();
  }
}

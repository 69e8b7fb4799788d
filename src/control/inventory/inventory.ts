/**
 * The control plane's storage interface. Everything above it (operations, placement, maintenance, the API) talks to
 * these stores only; the one implementation is Kysely over SQLite or PostgreSQL (see `open.ts`), and one contract
 * suite (`contract.ts`) holds both to the same behaviour.
 *
 * Atomicity: a call on `Inventory` commits on its own. A change and its audit record must be written in one
 * `inventory.transaction(async (tx) => …)`, using `tx`'s stores only; if the callback throws, nothing it wrote
 * remains. Append audit records last in a transaction: the append serializes with every other auditing transaction
 * until commit, so it should be the short tail, not the head, of the work.
 */
import type { AuditEntry, AuditHead, AuditOutcome, AuditRecord } from "../audit/record.ts";
import type { StoreCheckOptions, StoreDamage } from "./health.ts";
import type {
  ClaimOptions,
  Cluster,
  ClusterPatch,
  CreatedOperation,
  FinishOptions,
  Host,
  HostFilter,
  HostPatch,
  Image,
  NewCluster,
  NewHost,
  NewImage,
  NewOperation,
  NewTokenRow,
  NewVm,
  Operation,
  OperationFilter,
  OperationItem,
  OperationItemResult,
  Page,
  PageRequest,
  PowerState,
  StoredVm,
  TokenRecord,
  Vm,
  VmFilter,
  VmOrder,
  VmPatch,
  VmUpdate,
  VmUsage,
} from "./types.ts";

export interface ClusterStore {
  get(id: string): Promise<Cluster | undefined>;
  list(page?: PageRequest): Promise<Page<Cluster>>;
  /** CONFLICT when the name or id is taken. */
  create(cluster: NewCluster): Promise<Cluster>;
  /** NOT_FOUND, or CONFLICT when `expectedVersion` is stale. */
  update(id: string, patch: ClusterPatch, expectedVersion?: number): Promise<Cluster>;
  /** NOT_FOUND, or CONFLICT while hosts or VMs still belong to it. */
  delete(id: string): Promise<void>;
}

export interface HostStore {
  get(id: string): Promise<Host | undefined>;
  getByName(name: string): Promise<Host | undefined>;
  list(filter?: HostFilter, page?: PageRequest): Promise<Page<Host>>;
  create(host: NewHost): Promise<Host>;
  update(id: string, patch: HostPatch, expectedVersion?: number): Promise<Host>;
  /**
   * Reads hosts by id and, on PostgreSQL, row-locks them until the transaction ends (`FOR UPDATE`). Placement
   * locks the host it reserves a key slot on, so two control-plane nodes never both take its last free ASID.
   * Missing ids are absent from the result; rows come back in id order (a fixed lock order avoids deadlocks).
   */
  lockMany(ids: readonly string[]): Promise<Host[]>;
  /** NOT_FOUND, or CONFLICT while VMs are placed on it. */
  delete(id: string): Promise<void>;
}

export interface VmStore {
  get(id: string): Promise<Vm | undefined>;
  getByName(name: string): Promise<Vm | undefined>;
  /**
   * Stable order by id, or by a column and then id (`order`, `VM_ORDERS`); pages of up to 5,000; a cursor belongs to
   * the order it came from.
   */
  list(filter?: VmFilter, page?: PageRequest, order?: VmOrder): Promise<Page<Vm>>;
  /**
   * A page of the VMs `filter` matches, read for a change: inside a transaction its VMs are locked until it ends,
   * as `lockMany` locks them. A bulk change reads, checks and writes each page in one transaction this way. Pages
   * come in a stable order of the store's choosing (id order, or name order for a name prefix on SQLite, where the
   * name index serves it), and their cursors continue only `lockPage`. On SQLite that is one read (the write
   * transaction already excludes writers).
   */
  lockPage(filter?: VmFilter, page?: PageRequest): Promise<Page<Vm>>;
  /**
   * What `list` returns, same order and cursors, with spec and labels left as their stored JSON text: for the
   * list route, which writes that text out (through the response schema) instead of parsing every row.
   */
  listStored(filter?: VmFilter, page?: PageRequest, order?: VmOrder): Promise<Page<StoredVm>>;
  count(filter?: VmFilter): Promise<number>;
  /**
   * Placed VMs counted per (host, security mode, power state): what capacity accounting needs in one grouped query
   * instead of a count per host and pool. Unplaced VMs are not counted. `powerStates`: only VMs in these states
   * (placement counts powered-on VMs only, and on a fleet of mostly powered-off VMs the states' index finds those
   * without reading every row).
   */
  usage(filter?: {
    readonly hostIds?: readonly string[];
    readonly powerStates?: readonly PowerState[];
  }): Promise<VmUsage[]>;
  create(vm: NewVm): Promise<Vm>;
  /** Batched multi-row insert; returns the new ids in input order. CONFLICT on any duplicate (nothing inserted). */
  createMany(vms: readonly NewVm[]): Promise<string[]>;
  update(id: string, patch: VmPatch, expectedVersion?: number): Promise<Vm>;
  /**
   * Reads VMs by id and, on PostgreSQL, row-locks them until the transaction ends (`FOR UPDATE`), so a check
   * followed by `updateMany` sees no concurrent change. On SQLite the write transaction already excludes writers.
   * Missing ids are simply absent from the result.
   */
  lockMany(ids: readonly string[]): Promise<Vm[]>;
  /**
   * Applies many patches with few statements (VMs sharing a patch are updated together). Returns the ids that
   * existed and were changed; missing ids are skipped, so the caller reports them per item.
   */
  updateMany(updates: readonly VmUpdate[]): Promise<string[]>;
  /** NOT_FOUND when absent. */
  delete(id: string): Promise<void>;
}

/** `OperationStore.itemSummary`. */
export interface ItemSummary {
  readonly ok: number;
  readonly unchanged: number;
  readonly failures: readonly OperationItem[];
}

export interface OperationStore {
  /**
   * Creates a pending operation. With an idempotency key that already exists, returns that operation
   * (`created: false`) if the request is the same (kind, actor, params), and CONFLICT otherwise.
   */
  create(op: NewOperation): Promise<CreatedOperation>;
  get(id: string): Promise<Operation | undefined>;
  getByIdempotencyKey(key: string): Promise<Operation | undefined>;
  /** Stable order by id (≈ creation order). */
  list(filter?: OperationFilter, page?: PageRequest): Promise<Page<Operation>>;
  /**
   * Atomically takes the oldest pending operation (or a running one whose lease expired) and marks it running for
   * `worker`. Two workers, even on two nodes sharing one PostgreSQL database, never get the same claim.
   */
  claimNext(options: ClaimOptions): Promise<Operation | undefined>;
  /** Extends the lease; false when `worker` no longer holds the claim. */
  renewLease(id: string, worker: string, leaseMs: number): Promise<boolean>;
  /** Sets `total` (e.g. once a selector has been resolved). */
  setTotal(id: string, total: number): Promise<Operation>;
  /**
   * Records per-item results (idempotent per target: recording a target again replaces its result) and updates
   * the done/ok/failed counters. Write them in the same transaction as the item's change and audit record.
   */
  recordItems(id: string, results: readonly OperationItemResult[]): Promise<Operation>;
  items(id: string, page?: PageRequest): Promise<Page<OperationItem>>;
  /**
   * An operation's items counted by outcome, how many ok items needed no change (a truthy `details.unchanged`, as
   * runners mark them), and every failed item in target order — without reading the ok items' results.
   */
  itemSummary(id: string): Promise<ItemSummary>;
  /** Marks a running (or pending) operation finished. CONFLICT when already final or claimed by another worker. */
  finish(id: string, options?: FinishOptions): Promise<Operation>;
  /** Cancels a pending operation. CONFLICT once it runs or finished. */
  cancel(id: string): Promise<Operation>;
}

export interface TokenStore {
  /** Stores a token row; the caller (tokens.ts) hashes the secret. */
  create(row: NewTokenRow): Promise<TokenRecord>;
  get(id: string): Promise<TokenRecord | undefined>;
  /** Looks a token up by the SHA-256 of its secret. */
  findByHash(hash: string): Promise<TokenRecord | undefined>;
  list(page?: PageRequest): Promise<Page<TokenRecord>>;
  /** NOT_FOUND; revoking twice keeps the first time. */
  revoke(id: string): Promise<TokenRecord>;
  /** Records a successful use (best effort, for `last used` displays). */
  touch(id: string): Promise<void>;
}

/** Image catalog records; the bytes are in the blob store (`control/images`), addressed by `sha256`. */
export interface ImageStore {
  get(id: string): Promise<Image | undefined>;
  getByName(name: string): Promise<Image | undefined>;
  /** In name order. */
  list(page?: PageRequest): Promise<Page<Image>>;
  /** CONFLICT when the name is taken. */
  create(image: NewImage): Promise<Image>;
  /** How many records (names) share a blob: the blob may go only when none does. */
  countBySha256(sha256: string): Promise<number>;
  /** Ids of the VMs whose spec boots the image named `name` (firmware, kernel or initrd), in id order. */
  usedBy(name: string): Promise<string[]>;
  /** NOT_FOUND when absent. The caller checks `usedBy` in the same transaction. */
  delete(id: string): Promise<void>;
}

export interface AuditFilter {
  readonly action?: string;
  readonly target?: string;
  readonly actorId?: string;
  readonly outcome?: AuditOutcome;
}

/** Append-only: there is no update or delete, and the database rejects both with triggers. */
export interface AuditStore {
  /** Chains and appends records in order; returns them with seq and hash. */
  append(entries: AuditEntry | readonly AuditEntry[]): Promise<AuditRecord[]>;
  /** Records in seq order. */
  list(filter?: AuditFilter, page?: PageRequest): Promise<Page<AuditRecord>>;
  /** The chain's last seq and hash as the store's head pointer records them. */
  head(): Promise<AuditHead>;
}

/** The stores, bound either to autocommit (on `Inventory`) or to one transaction. */
export interface InventoryScope {
  readonly clusters: ClusterStore;
  readonly hosts: HostStore;
  readonly vms: VmStore;
  readonly operations: OperationStore;
  readonly tokens: TokenStore;
  readonly audit: AuditStore;
  readonly images: ImageStore;
}

export type InventoryDialect = "sqlite" | "postgres";

export interface Inventory extends InventoryScope {
  readonly dialect: InventoryDialect;
  /**
   * Runs `fn` in one transaction: all of its writes commit together or not at all. On SQLite the transaction
   * takes the write lock at BEGIN (IMMEDIATE), so read-check-write sequences inside it are serialized. Using the
   * outer `inventory` inside `fn` is an error (it would wait for this very transaction on SQLite).
   */
  transaction<T>(fn: (tx: InventoryScope) => Promise<T>): Promise<T>;
  /** Applies pending migrations (done by `openInventory` unless disabled). */
  migrate(): Promise<void>;
  /**
   * What the last `check` found (`openInventory` runs one): undefined while the store is healthy. The API refuses
   * writes while it names damage that refuses writes (`health.ts`), without touching the store.
   */
  readonly damage: StoreDamage | undefined;
  /**
   * Checks the store now (SQLite: the file against its header, quick_check or with `full` integrity_check, write
   * access; PostgreSQL: reachable, writable) and remembers the finding as `damage`. With `maxAgeMs`, a quick_check
   * younger than that is reused (it takes ≈ 0.2 s at 200,000 VMs and blocks the event loop meanwhile).
   */
  check(options?: StoreCheckOptions & { readonly maxAgeMs?: number }): Promise<StoreDamage | undefined>;
  /**
   * A token that changes whenever the stored data may have changed — by this node or by any other connection — or
   * undefined when the store cannot say cheaply (PostgreSQL: other nodes write without telling). Read it *before*
   * a query: an answer computed after reading token T may be served again while the token is still T.
   */
  changeToken(): string | undefined;
  close(): Promise<void>;
}

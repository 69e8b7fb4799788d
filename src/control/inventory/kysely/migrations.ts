/**
 * The inventory schema as Kysely migrations, kept in code (no migration folder to ship or find at run time). Add a
 * migration by appending a new key; never edit one that has shipped. The same table definitions serve SQLite and
 * PostgreSQL; only 64-bit integer columns and the append-only triggers differ per dialect.
 */
import { type Kysely, type Migration, type MigrationProvider, sql } from "kysely";
import { GENESIS_HASH } from "../../audit/record.ts";
import type { InventoryDialect } from "../inventory.ts";

/** Message prefix the triggers raise; `errors.ts` maps it to FORBIDDEN. */
export const APPEND_ONLY_MESSAGE = "ciphervisor: audit records are append-only";
export const HEAD_FORWARD_MESSAGE = "ciphervisor: the audit head only moves forward";

function initial(dialect: InventoryDialect): Migration {
  // On SQLite, `integer primary key` makes seq the rowid (fast, ordered); `bigint` would not. PostgreSQL needs
  // bigint for seq and for 32-bit unsigned policies.
  const int64 = dialect === "postgres" ? "bigint" : "integer";
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable("clusters")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("name", "text", (c) => c.notNull().unique())
        .addColumn("description", "text", (c) => c.notNull().defaultTo(""))
        .addColumn("created_at", "text", (c) => c.notNull())
        .addColumn("updated_at", "text", (c) => c.notNull())
        .addColumn("version", "integer", (c) => c.notNull().defaultTo(1))
        .execute();

      await db.schema
        .createTable("hosts")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("name", "text", (c) => c.notNull().unique())
        .addColumn("cluster_id", "text", (c) => c.references("clusters.id").onDelete("restrict"))
        .addColumn("driver", "text", (c) => c.notNull())
        .addColumn("address", "text", (c) => c.notNull())
        .addColumn("cpu_generation", "text", (c) => c.notNull())
        .addColumn("sev_state", "text", (c) => c.notNull())
        .addColumn("es_mode", "text", (c) => c.notNull())
        .addColumn("sev_asids", "integer", (c) => c.notNull())
        .addColumn("es_asids", "integer", (c) => c.notNull())
        .addColumn("maintenance", "text", (c) => c.notNull())
        .addColumn("connection_state", "text", (c) => c.notNull())
        .addColumn("created_at", "text", (c) => c.notNull())
        .addColumn("updated_at", "text", (c) => c.notNull())
        .addColumn("version", "integer", (c) => c.notNull().defaultTo(1))
        .execute();
      await db.schema.createIndex("hosts_cluster").on("hosts").column("cluster_id").execute();

      await db.schema
        .createTable("vms")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("name", "text", (c) => c.notNull().unique())
        .addColumn("cluster_id", "text", (c) => c.references("clusters.id").onDelete("restrict"))
        .addColumn("host_id", "text", (c) => c.references("hosts.id").onDelete("restrict"))
        .addColumn("spec", "text", (c) => c.notNull())
        .addColumn("power_state", "text", (c) => c.notNull())
        .addColumn("security_mode", "text", (c) => c.notNull())
        .addColumn("policy", int64, (c) => c.notNull())
        .addColumn("attestation_state", "text", (c) => c.notNull())
        .addColumn("labels", "text", (c) => c.notNull().defaultTo("{}"))
        .addColumn("created_at", "text", (c) => c.notNull())
        .addColumn("updated_at", "text", (c) => c.notNull())
        .addColumn("version", "integer", (c) => c.notNull().defaultTo(1))
        .execute();
      await db.schema.createIndex("vms_host").on("vms").column("host_id").execute();
      await db.schema.createIndex("vms_cluster").on("vms").column("cluster_id").execute();
      await db.schema.createIndex("vms_security_mode").on("vms").columns(["security_mode", "id"]).execute();

      await db.schema
        .createTable("vm_labels")
        .addColumn("vm_id", "text", (c) => c.notNull().references("vms.id").onDelete("cascade"))
        .addColumn("key", "text", (c) => c.notNull())
        .addColumn("value", "text", (c) => c.notNull())
        .addPrimaryKeyConstraint("vm_labels_pk", ["vm_id", "key"])
        .execute();
      await db.schema
        .createIndex("vm_labels_kv")
        .on("vm_labels")
        .columns(["key", "value", "vm_id"])
        .execute();

      await db.schema
        .createTable("operations")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("kind", "text", (c) => c.notNull())
        .addColumn("status", "text", (c) => c.notNull())
        .addColumn("idempotency_key", "text", (c) => c.unique())
        .addColumn("request_hash", "text", (c) => c.notNull())
        .addColumn("actor_id", "text")
        .addColumn("actor_name", "text", (c) => c.notNull())
        .addColumn("params", "text", (c) => c.notNull())
        .addColumn("total", "integer", (c) => c.notNull().defaultTo(0))
        .addColumn("done", "integer", (c) => c.notNull().defaultTo(0))
        .addColumn("ok_count", "integer", (c) => c.notNull().defaultTo(0))
        .addColumn("failed_count", "integer", (c) => c.notNull().defaultTo(0))
        .addColumn("error", "text")
        .addColumn("claimed_by", "text")
        .addColumn("lease_until", "text")
        .addColumn("attempts", "integer", (c) => c.notNull().defaultTo(0))
        .addColumn("created_at", "text", (c) => c.notNull())
        .addColumn("started_at", "text")
        .addColumn("finished_at", "text")
        .addColumn("updated_at", "text", (c) => c.notNull())
        .execute();
      // The claim query scans pending/running operations oldest first.
      await db.schema.createIndex("operations_status").on("operations").columns(["status", "id"]).execute();

      await db.schema
        .createTable("operation_items")
        .addColumn("operation_id", "text", (c) => c.notNull().references("operations.id").onDelete("cascade"))
        .addColumn("target", "text", (c) => c.notNull())
        .addColumn("outcome", "text", (c) => c.notNull())
        .addColumn("code", "text")
        .addColumn("reason", "text")
        .addColumn("details", "text")
        .addColumn("recorded_at", "text", (c) => c.notNull())
        .addPrimaryKeyConstraint("operation_items_pk", ["operation_id", "target"])
        .execute();

      await db.schema
        .createTable("tokens")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("name", "text", (c) => c.notNull())
        .addColumn("hash", "text", (c) => c.notNull().unique())
        .addColumn("roles", "text", (c) => c.notNull())
        .addColumn("created_at", "text", (c) => c.notNull())
        .addColumn("created_by", "text")
        .addColumn("expires_at", "text")
        .addColumn("revoked_at", "text")
        .addColumn("last_used_at", "text")
        .execute();

      await db.schema
        .createTable("audit")
        .addColumn("seq", int64, (c) => c.primaryKey())
        .addColumn("time", "text", (c) => c.notNull())
        .addColumn("actor_id", "text")
        .addColumn("actor_name", "text", (c) => c.notNull())
        .addColumn("action", "text", (c) => c.notNull())
        .addColumn("target", "text", (c) => c.notNull())
        .addColumn("outcome", "text", (c) => c.notNull())
        .addColumn("details", "text", (c) => c.notNull())
        .addColumn("prev_hash", "text", (c) => c.notNull())
        .addColumn("hash", "text", (c) => c.notNull())
        .execute();
      await db.schema.createIndex("audit_target").on("audit").columns(["target", "seq"]).execute();

      await db.schema
        .createTable("audit_head")
        .addColumn("id", "integer", (c) => c.primaryKey())
        .addColumn("seq", int64, (c) => c.notNull())
        .addColumn("hash", "text", (c) => c.notNull())
        .execute();
      await sql`insert into audit_head (id, seq, hash) values (1, 0, ${GENESIS_HASH})`.execute(db);

      if (dialect === "postgres") await postgresTriggers(db);
      else await sqliteTriggers(db);
    },
  };
}

async function sqliteTriggers(db: Kysely<unknown>): Promise<void> {
  const abort = (msg: string) => sql.raw(`select raise(abort, '${msg}')`);
  await sql`create trigger audit_no_update before update on audit begin ${abort(APPEND_ONLY_MESSAGE)}; end`.execute(
    db,
  );
  await sql`create trigger audit_no_delete before delete on audit begin ${abort(APPEND_ONLY_MESSAGE)}; end`.execute(
    db,
  );
  await sql`create trigger audit_head_forward before update on audit_head
    when new.seq < old.seq or new.id <> old.id begin ${abort(HEAD_FORWARD_MESSAGE)}; end`.execute(db);
  await sql`create trigger audit_head_no_delete before delete on audit_head
    begin ${abort(HEAD_FORWARD_MESSAGE)}; end`.execute(db);
}

async function postgresTriggers(db: Kysely<unknown>): Promise<void> {
  // 42501 = insufficient_privilege: the closest standard class for "nobody may do this".
  await sql
    .raw(`create function audit_append_only() returns trigger language plpgsql as $$
begin
  raise exception '${APPEND_ONLY_MESSAGE}' using errcode = '42501';
end $$`)
    .execute(db);
  await sql`create trigger audit_no_update_delete before update or delete on audit
    for each row execute function audit_append_only()`.execute(db);
  await sql`create trigger audit_no_truncate before truncate on audit
    for each statement execute function audit_append_only()`.execute(db);
  await sql
    .raw(`create function audit_head_forward() returns trigger language plpgsql as $$
begin
  if tg_op = 'DELETE' or new.seq < old.seq or new.id <> old.id then
    raise exception '${HEAD_FORWARD_MESSAGE}' using errcode = '42501';
  end if;
  return new;
end $$`)
    .execute(db);
  await sql`create trigger audit_head_guard before update or delete on audit_head
    for each row execute function audit_head_forward()`.execute(db);
  await sql`create trigger audit_head_no_truncate before truncate on audit_head
    for each statement execute function audit_append_only()`.execute(db);
}

/**
 * Each host's VMM profile (how its QEMU builds SEV-ES VMSAs, docs/sev-interface.md §8.5). Hosts registered before
 * it were all launched the way QEMU's default `sev-guest` does, so they read as `qemu-legacy`, the default.
 */
const hostVmmProfile: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .alterTable("hosts")
      .addColumn("vmm_profile", "text", (c) => c.notNull().defaultTo("qemu-legacy"))
      .execute();
  },
};

/**
 * The image catalog: one row per named image; the bytes are stored by SHA-256 outside the database, so two names
 * with the same content share one blob (the sha256 index finds the other names before a blob is removed).
 */
const images: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable("images")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("name", "text", (c) => c.notNull().unique())
      .addColumn("kind", "text", (c) => c.notNull())
      .addColumn("sha256", "text", (c) => c.notNull())
      .addColumn("size", "integer", (c) => c.notNull())
      .addColumn("firmware", "text")
      .addColumn("created_at", "text", (c) => c.notNull())
      .addColumn("created_by", "text")
      .execute();
    await db.schema.createIndex("images_sha256").on("images").column("sha256").execute();
  },
};

/**
 * The VM list's sort orders (`VM_ORDERS`): each is a keyset on (column, id), so each gets an index on (column, id)
 * and a page stays an index range scan at 200,000 VMs. `vms_security_mode` (0001) already is (security_mode, id) and
 * name is unique; `vms_host` (0001) gives way to (host_id, id), which serves the host filter as well. The guest OS
 * lives in the spec JSON, so it becomes a column of its own first, filled from the spec.
 */
const VM_SORT_INDEXES = [
  ["vms_host_id", "host_id"],
  ["vms_power_state_id", "power_state"],
  ["vms_guest_os_id", "guest_os"],
  ["vms_policy_id", "policy"],
] as const;

/** The SEV firmware version on the host record; existing hosts read null until they are reached again. */
const HOST_FIRMWARE_COLUMNS = ["fw_api_major", "fw_api_minor", "fw_build"] as const;

function vmSortAndHostFirmware(dialect: InventoryDialect): Migration {
  const guestOsOfSpec =
    dialect === "postgres" ? sql`(spec::json ->> 'guestOs')` : sql`json_extract(spec, '$.guestOs')`;
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .alterTable("vms")
        .addColumn("guest_os", "text", (c) => c.notNull().defaultTo(""))
        .execute();
      await sql`update vms set guest_os = coalesce(${guestOsOfSpec}, '')`.execute(db);
      await db.schema.dropIndex("vms_host").execute();
      for (const [name, column] of VM_SORT_INDEXES) {
        await db.schema.createIndex(name).on("vms").columns([column, "id"]).execute();
      }
      for (const column of HOST_FIRMWARE_COLUMNS) {
        await db.schema.alterTable("hosts").addColumn(column, "integer").execute();
      }
    },
  };
}

/**
 * The SNP pool a host sets apart under Ciphertext Hiding (Linux 6.18 `kvm_amd.ciphertext_hiding_asids`): ASIDs
 * 1..snp_asids serve SEV-SNP guests only. 0 — every host before this migration — means SNP shares the ES range.
 */
const hostSnpAsids: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .alterTable("hosts")
      .addColumn("snp_asids", "integer", (c) => c.notNull().defaultTo(0))
      .execute();
  },
};

/** The migration provider for `dialect`. */
export function inventoryMigrations(dialect: InventoryDialect): MigrationProvider {
  return {
    getMigrations: async () => ({
      "0001_initial": initial(dialect),
      "0002_host_vmm_profile": hostVmmProfile,
      "0003_images": images,
      "0004_vm_sort_host_firmware": vmSortAndHostFirmware(dialect),
      "0005_host_snp_asids": hostSnpAsids,
    }),
  };
}

/**
 * Row types of the inventory tables, as Kysely sees them. Portable column types only: times are ISO 8601 text,
 * booleans are integers, JSON is canonical text, counters are integers (int8 comes back from `pg` as a number
 * through the pool's type parser, see `open.ts`).
 */

export interface ClusterTable {
  id: string;
  name: string;
  description: string;
  created_at: string;
  updated_at: string;
  version: number;
}

export interface HostTable {
  id: string;
  name: string;
  cluster_id: string | null;
  driver: string;
  address: string;
  cpu_generation: string;
  sev_state: string;
  es_mode: string;
  /** Added by migration 0002; existing rows read 'qemu-legacy'. */
  vmm_profile: string;
  sev_asids: number;
  es_asids: number;
  snp_asids: number;
  maintenance: string;
  connection_state: string;
  /** Added by migration 0004: the SEV firmware's API version and build; null until the host reports them. */
  fw_api_major: number | null;
  fw_api_minor: number | null;
  fw_build: number | null;
  created_at: string;
  updated_at: string;
  version: number;
}

export interface VmTable {
  id: string;
  name: string;
  cluster_id: string | null;
  host_id: string | null;
  /** Canonical JSON of VmSpec. */
  spec: string;
  /** Added by migration 0004: `spec.guestOs` again, as a column, so that the list can be sorted on it by index. */
  guest_os: string;
  power_state: string;
  security_mode: string;
  policy: number;
  attestation_state: string;
  /** Canonical JSON of the labels, the source of truth for reads; `vm_labels` indexes it for selectors. */
  labels: string;
  created_at: string;
  updated_at: string;
  version: number;
}

export interface VmLabelTable {
  vm_id: string;
  key: string;
  value: string;
}

export interface OperationTable {
  id: string;
  kind: string;
  status: string;
  idempotency_key: string | null;
  /** SHA-256 of kind + actor + params, to tell a retried request from a different one reusing a key. */
  request_hash: string;
  actor_id: string | null;
  actor_name: string;
  params: string;
  total: number;
  done: number;
  ok_count: number;
  failed_count: number;
  error: string | null;
  claimed_by: string | null;
  lease_until: string | null;
  attempts: number;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  updated_at: string;
}

export interface OperationItemTable {
  operation_id: string;
  target: string;
  outcome: string;
  code: string | null;
  reason: string | null;
  details: string | null;
  recorded_at: string;
}

export interface TokenTable {
  id: string;
  name: string;
  /** Hex SHA-256 of the secret; the secret itself is never stored. */
  hash: string;
  /** JSON array of role names. */
  roles: string;
  created_at: string;
  created_by: string | null;
  expires_at: string | null;
  revoked_at: string | null;
  last_used_at: string | null;
}

export interface AuditTable {
  seq: number;
  time: string;
  actor_id: string | null;
  actor_name: string;
  action: string;
  target: string;
  outcome: string;
  details: string;
  prev_hash: string;
  hash: string;
}

/** Added by migration 0003: the image catalog's records (the bytes live in the content-addressed blob store). */
export interface ImageTable {
  id: string;
  name: string;
  kind: string;
  sha256: string;
  size: number;
  /** Canonical JSON of FirmwareFacts, or null for kernels and initrds. */
  firmware: string | null;
  created_at: string;
  created_by: string | null;
}

/** One row (id = 1): the chain's last seq and hash. Locking it serializes appenders on PostgreSQL. */
export interface AuditHeadTable {
  id: number;
  seq: number;
  hash: string;
}

export interface Db {
  clusters: ClusterTable;
  hosts: HostTable;
  vms: VmTable;
  vm_labels: VmLabelTable;
  operations: OperationTable;
  operation_items: OperationItemTable;
  tokens: TokenTable;
  audit: AuditTable;
  audit_head: AuditHeadTable;
  images: ImageTable;
}

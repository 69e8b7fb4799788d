/**
 * `ciphervisor audit verify`: walks the whole chain in seq order, recomputes every hash and link, and names the
 * first record that does not check out. Works through the inventory's read API only, so it verifies what any
 * reader sees, on either database.
 */
import type { AuditStore } from "../inventory/inventory.ts";
import { type AuditRecord, auditRecordHash, GENESIS_HASH } from "./record.ts";

/** What is wrong with the first bad record. */
export type AuditProblem =
  /** The record's content no longer matches its hash (edited). */
  | "hash-mismatch"
  /** The record's prevHash is not its predecessor's hash (predecessor replaced, or rows reordered). */
  | "broken-link"
  /** No record with the expected seq (deleted, or the tail truncated below the head). */
  | "missing"
  /** The head pointer disagrees with the last record. */
  | "head-mismatch";

export interface AuditBadRecord {
  /** The seq of the first bad (or missing) record. */
  readonly seq: number;
  readonly problem: AuditProblem;
  /** One line for people, e.g. "record 42: content does not match its hash (edited?)". */
  readonly message: string;
}

export interface AuditVerification {
  readonly ok: boolean;
  /** Records that verified before the first bad one (all of them when ok). */
  readonly verified: number;
  /** The last good record's seq and hash: a checkpoint to copy off-box. */
  readonly lastSeq: number;
  readonly lastHash: string;
  readonly firstBad: AuditBadRecord | null;
}

/** Anything with an audit store, e.g. an Inventory. */
export interface AuditSource {
  readonly audit: Pick<AuditStore, "list" | "head">;
}

function bad(
  verified: number,
  last: { seq: number; hash: string },
  firstBad: AuditBadRecord,
): AuditVerification {
  return { ok: false, verified, lastSeq: last.seq, lastHash: last.hash, firstBad };
}

/**
 * Verifies the audit chain.
 *
 * @example
 * ```ts
 * const v = await verifyAuditChain(inventory);
 * if (!v.ok) console.error(v.firstBad?.message);
 * ```
 */
export async function verifyAuditChain(
  source: AuditSource,
  options: { readonly pageSize?: number } = {},
): Promise<AuditVerification> {
  const limit = options.pageSize ?? 5000;
  // Read the head first: records appended while we walk are beyond it and do not count as a mismatch.
  const head = await source.audit.head();
  let last = { seq: 0, hash: GENESIS_HASH };
  let verified = 0;
  let cursor: string | null = null;
  do {
    const page: { items: AuditRecord[]; nextCursor: string | null } = await source.audit.list(
      {},
      { limit, cursor },
    );
    for (const r of page.items) {
      if (r.seq > head.seq) break;
      const expected = last.seq + 1;
      if (r.seq !== expected) {
        return bad(verified, last, {
          seq: expected,
          problem: "missing",
          message: `record ${expected} is missing (next stored record is ${r.seq}): deleted`,
        });
      }
      if (auditRecordHash(r) !== r.hash) {
        return bad(verified, last, {
          seq: r.seq,
          problem: "hash-mismatch",
          message: `record ${r.seq}: content does not match its hash (edited or moved)`,
        });
      }
      if (r.prevHash !== last.hash) {
        return bad(verified, last, {
          seq: r.seq,
          problem: "broken-link",
          message: `record ${r.seq} does not follow record ${last.seq} (records replaced or reordered)`,
        });
      }
      last = { seq: r.seq, hash: r.hash };
      verified++;
    }
    cursor = page.nextCursor;
  } while (cursor !== null && last.seq < head.seq);
  if (last.seq < head.seq) {
    return bad(verified, last, {
      seq: last.seq + 1,
      problem: "missing",
      message: `records ${last.seq + 1}..${head.seq} are missing: the log was truncated`,
    });
  }
  if (last.hash !== head.hash) {
    return bad(verified, last, {
      seq: head.seq,
      problem: "head-mismatch",
      message: `the head pointer does not match record ${head.seq}`,
    });
  }
  return { ok: true, verified, lastSeq: last.seq, lastHash: last.hash, firstBad: null };
}

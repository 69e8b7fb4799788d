/**
 * Audit records and their hash chain (docs/threat-model.md §5.2 item 7). Each record commits to its predecessor through
 * `prevHash`, so editing, deleting or reordering any stored row breaks the chain at that row, and `verifyAuditChain`
 * names it. The encoding is versioned so that a later format can coexist with old records.
 */
import { hash } from "node:crypto";
import type { Actor } from "../inventory/types.ts";
import { canonicalJson, type JsonObject } from "../json.ts";

/** Outcome of the audited request: done, refused by RBAC, or attempted and failed. */
export const AUDIT_OUTCOMES = ["ok", "denied", "failed"] as const;
export type AuditOutcome = (typeof AUDIT_OUTCOMES)[number];

/** `prevHash` of the first record: 32 zero bytes in hex. */
export const GENESIS_HASH = "0".repeat(64);

/** What a caller appends; the store assigns `seq`, `time`, `prevHash` and `hash`. */
export interface AuditEntry {
  /** Who: a token's id and name, never the token. */
  readonly actor: Actor;
  /** What, as a dotted verb, e.g. `vm.security.enable`, `token.create`, `operation.create`. */
  readonly action: string;
  /** On what: an object id or name (`vm_…`, `host_…`, `*` for fleet-wide requests). */
  readonly target: string;
  readonly outcome: AuditOutcome;
  /** Before/after values, request id, reasons. Must not contain secrets. */
  readonly details?: JsonObject;
}

/** A stored, chained audit record. */
export interface AuditRecord {
  /** 1, 2, 3, … without gaps. */
  readonly seq: number;
  /** ISO 8601 time the record was written. */
  readonly time: string;
  readonly actor: Actor;
  readonly action: string;
  readonly target: string;
  readonly outcome: AuditOutcome;
  readonly details: JsonObject;
  readonly prevHash: string;
  /** SHA-256 (hex) over `auditRecordEncoding` of this record. */
  readonly hash: string;
}

/** The chain's current end: the last record's seq and hash (seq 0 and GENESIS_HASH when empty). */
export interface AuditHead {
  readonly seq: number;
  readonly hash: string;
}

/**
 * The exact text a record's hash covers: a version tag, then the canonical JSON of every field except `hash`,
 * including `seq` (so moving a row breaks it) and `prevHash` (so removing or reordering rows breaks the next one).
 * Equal to `canonicalJson` of those fields; written out by hand because it runs for every record appended.
 *
 * @param detailsJson `canonicalJson(r.details)` when the caller already has it.
 */
export function auditRecordEncoding(r: Omit<AuditRecord, "hash">, detailsJson?: string): string {
  return (
    encodingHead(r.action, r.actor) +
    encodingBody(detailsJson ?? canonicalJson(r.details), r.outcome, r.prevHash, r.seq, r.target) +
    encodingTail(r.time)
  );
}

// The encoding in three parts, in canonical key order. A bulk operation appends thousands of records by one
// actor doing one action at one time, so `chainAuditEntries` writes the first part once per (action, actor) and
// the last once per call.

/** The tag and the members before `details`, up to its colon. */
function encodingHead(action: string, actor: Actor): string {
  const s = JSON.stringify;
  return `ciphervisor-audit-v1\n{"action":${s(action)},"actorId":${s(actor.id)},"actorName":${s(actor.name)},"details":`;
}

/** `details`' value and the members after it, up to `target`. */
function encodingBody(
  detailsJson: string,
  outcome: string,
  prevHash: string,
  seq: number,
  target: string,
): string {
  const s = JSON.stringify;
  return `${detailsJson},"outcome":${s(outcome)},"prevHash":${s(prevHash)},"seq":${canonicalJson(seq)},"target":${s(target)}`;
}

/** `time`, and the closing brace. */
function encodingTail(time: string): string {
  return `,"time":${JSON.stringify(time)}}`;
}

/**
 * The record's hash.
 *
 * @example
 * ```ts
 * const hash = auditRecordHash({ seq: 1, time, actor, action: "vm.create", target: id, outcome: "ok",
 *   details: {}, prevHash: GENESIS_HASH });
 * ```
 */
export function auditRecordHash(r: Omit<AuditRecord, "hash">, detailsJson?: string): string {
  // One-shot hash(): creating a Hash object per record costs more than hashing its few hundred bytes.
  return hash("sha256", auditRecordEncoding(r, detailsJson), "hex");
}

/** A chained record and the canonical JSON of its details, as stored. */
export interface ChainedAuditRecord {
  readonly record: AuditRecord;
  readonly detailsJson: string;
}

/** Chains `entries` after `head`, assigning seq numbers and hashes; pure, so the store and tests share it. */
export function chainAuditEntries(
  head: AuditHead,
  entries: readonly AuditEntry[],
  time: string,
): ChainedAuditRecord[] {
  const out: ChainedAuditRecord[] = [];
  const tail = encodingTail(time);
  /** (action, actor) → the encoding's head and the actor as stored (its id and name only). */
  const heads = new Map<string, { text: string; actor: Actor }>();
  let prev = head;
  for (const e of entries) {
    // Length-prefixed, so no two (action, id, name) share a key whatever characters they hold; a null id is not "null".
    const id = e.actor.id === null ? "-" : `+${e.actor.id}`;
    const key = `${e.action.length}:${e.action}${e.actor.name.length}:${e.actor.name}${id}`;
    let h = heads.get(key);
    if (!h) {
      const actor = { id: e.actor.id, name: e.actor.name };
      h = { text: encodingHead(e.action, actor), actor };
      heads.set(key, h);
    }
    const details = e.details ?? {};
    const detailsJson = canonicalJson(details);
    const seq = prev.seq + 1;
    const body = encodingBody(detailsJson, e.outcome, prev.hash, seq, e.target);
    const record: AuditRecord = {
      seq,
      time,
      actor: h.actor,
      action: e.action,
      target: e.target,
      outcome: e.outcome,
      details,
      prevHash: prev.hash,
      // One-shot hash(), as in auditRecordHash.
      hash: hash("sha256", h.text + body + tail, "hex"),
    };
    out.push({ record, detailsJson });
    prev = record;
  }
  return out;
}

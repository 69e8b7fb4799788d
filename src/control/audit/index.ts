/** The hash-chained audit log: record format and hashing, and the verifier. Appends go through the inventory. */
export {
  AUDIT_OUTCOMES,
  type AuditEntry,
  type AuditHead,
  type AuditOutcome,
  type AuditRecord,
  auditRecordEncoding,
  auditRecordHash,
  type ChainedAuditRecord,
  chainAuditEntries,
  GENESIS_HASH,
} from "./record.ts";
export {
  type AuditBadRecord,
  type AuditProblem,
  type AuditSource,
  type AuditVerification,
  verifyAuditChain,
} from "./verify.ts";

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";
import { canonicalJson } from "../json.ts";
import { auditRecordEncoding, auditRecordHash, chainAuditEntries, GENESIS_HASH } from "./record.ts";

const base = {
  seq: 1,
  time: "2026-01-01T00:00:00.000Z",
  actor: { id: "tok_1", name: "alice" },
  action: "vm.security.enable",
  target: "vm_1",
  outcome: "ok" as const,
  details: { after: { securityMode: "sev-es" }, before: { securityMode: "none" } },
  prevHash: GENESIS_HASH,
};

describe("audit record hashing", () => {
  it("encodes exactly the canonical JSON of the fields behind a version tag", () => {
    const expected = `ciphervisor-audit-v1\n${canonicalJson({
      seq: base.seq,
      time: base.time,
      actorId: base.actor.id,
      actorName: base.actor.name,
      action: base.action,
      target: base.target,
      outcome: base.outcome,
      details: base.details,
      prevHash: base.prevHash,
    })}`;
    assert.equal(auditRecordEncoding(base), expected);
    assert.equal(
      auditRecordEncoding({ ...base, actor: { id: null, name: 'a "b"' } }).includes('"actorId":null'),
      true,
    );
  });

  // Cross-checked with Python: sha256(b"ciphervisor-audit-v1\n" + json.dumps(fields, sort_keys=True, separators=(",", ":"))).
  it("has a stable known answer (changing the format needs a new version tag)", () => {
    assert.equal(auditRecordHash(base), createHash("sha256").update(auditRecordEncoding(base)).digest("hex"));
    assert.equal(auditRecordHash(base), "ac461321ef77fa3ba114907ef3c54112ced83bcc215f23ada0354ceefcfa0ede");
  });

  it("changes when any field changes", () => {
    const h = auditRecordHash(base);
    const variants = [
      { ...base, seq: 2 },
      { ...base, time: "2026-01-01T00:00:00.001Z" },
      { ...base, actor: { id: "tok_2", name: "alice" } },
      { ...base, actor: { id: "tok_1", name: "bob" } },
      { ...base, action: "vm.security.downgrade" },
      { ...base, target: "vm_2" },
      { ...base, outcome: "denied" as const },
      { ...base, details: { after: { securityMode: "sev" }, before: { securityMode: "none" } } },
      { ...base, prevHash: "1".repeat(64) },
    ];
    for (const v of variants) assert.notEqual(auditRecordHash(v), h);
  });

  it("chains entries: seq increments and each prevHash is the previous hash", () => {
    const recs = chainAuditEntries(
      { seq: 41, hash: "a".repeat(64) },
      [
        { actor: base.actor, action: "a", target: "t", outcome: "ok" },
        { actor: base.actor, action: "b", target: "t", outcome: "denied", details: { why: "role" } },
      ],
      base.time,
    ).map((c) => c.record);
    assert.deepEqual(
      recs.map((r) => r.seq),
      [42, 43],
    );
    assert.equal(recs[0]?.prevHash, "a".repeat(64));
    assert.equal(recs[1]?.prevHash, recs[0]?.hash);
    for (const r of recs) assert.equal(auditRecordHash(r), r.hash);
  });

  it("hashes each record by its own action and actor when one append mixes them", () => {
    // The chain writes the encoding's head once per (action, actor): records that differ only there must not share
    // one, including an actor without id and one whose id is the text "null".
    const actors = [
      { id: null, name: "anonymous" },
      { id: "null", name: "anonymous" },
      { id: "tok_1", name: "a" },
      { id: "tok_1", name: "ab" },
      { id: "tok_1a", name: "b" },
    ];
    const entries = actors.flatMap((actor) =>
      ["vm.create", "vm.create.x"].map((action) => ({
        actor,
        action,
        target: "vm_1",
        outcome: "ok" as const,
      })),
    );
    const all = [...entries, ...entries];
    const recs = chainAuditEntries({ seq: 0, hash: GENESIS_HASH }, all, base.time);
    recs.forEach(({ record }, i) => {
      assert.deepEqual(record.actor, all[i]?.actor);
      assert.equal(record.action, all[i]?.action);
      assert.equal(record.hash, auditRecordHash(record));
    });
  });
});

/**
 * Audit tamper suite: a real SQLite inventory holding a long chain of mixed records, then random tampering by the
 * database's owner (the append-only triggers dropped, as an owner could) — edited fields, forged hashes, a record
 * rewritten with a recomputed hash, deletions, reordered rows, a truncated tail — each one detected by
 * `verifyAuditChain` at exactly the first record that no longer checks out, with the right problem. After each
 * case the rows are put back and the chain verifies again, so every case starts from an intact chain.
 *
 * Bounded for `npm test` (5,000 records, 150 cases, a fixed seed); `CIPHERVISOR_LONG=1` (`npm run test:long`) runs
 * 100,000 records and 1,000 cases. `AUDIT_TAMPER_SEED` replays another seed.
 *
 * What it cannot catch, by design: an owner who also rewinds the head pointer and drops the tail — the chain is
 * then a shorter valid chain. That is why `audit verify` prints the last seq and hash as a checkpoint to keep
 * off-box (docs/threat-model.md).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import Database from "better-sqlite3";
import { type AuditEntry, auditRecordHash } from "../../src/control/audit/record.ts";
import { type AuditProblem, verifyAuditChain } from "../../src/control/audit/verify.ts";
import type { Inventory } from "../../src/control/inventory/inventory.ts";
import { openInventory } from "../../src/control/inventory/open.ts";
import { seededRandom } from "../../src/crypto/random.ts";
import { recordSuite } from "./reliability-record.ts";

const LONG = process.env.CIPHERVISOR_LONG === "1";
const RECORDS = LONG ? 100_000 : 5_000;
const CASES = LONG ? 1_000 : 150;
const SEED = process.env.AUDIT_TAMPER_SEED ?? "audit-tamper-1";

interface Row {
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

const ACTIONS = ["vm.create", "vm.power-on", "vm.security.enable", "host.maintenance.enter", "token.create"];
const OUTCOMES = ["ok", "failed", "denied"] as const;

/** Mixed records as the control plane writes them: several actors, actions, outcomes and details shapes. */
function entries(n: number, offset: number): AuditEntry[] {
  return Array.from({ length: n }, (_, i) => {
    const k = offset + i;
    return {
      actor: k % 7 === 0 ? { id: null, name: "anonymous" } : { id: `tok_${k % 13}`, name: `user-${k % 13}` },
      action: ACTIONS[k % ACTIONS.length] ?? "vm.create",
      target: `vm_${(k * 2654435761) % 100_000}`,
      outcome: OUTCOMES[k % 3] ?? "ok",
      details:
        k % 5 === 0 ? {} : { before: { mode: "none" }, after: { mode: "sev-es" }, n: k, note: `é ${k}` },
    };
  });
}

describe(`audit tamper suite (${RECORDS} records, ${CASES} cases, seed ${SEED})`, () => {
  let dir = "";
  let inventory: Inventory;
  let raw: Database.Database;
  let head = 0;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "cv-audit-tamper-"));
    const path = join(dir, "inventory.db");
    inventory = await openInventory(path);
    for (let done = 0; done < RECORDS; done += 1000) {
      await inventory.audit.append(entries(Math.min(1000, RECORDS - done), done));
    }
    head = (await inventory.audit.head()).seq;
    raw = new Database(path);
    raw.exec("drop trigger audit_no_update; drop trigger audit_no_delete;");
  });

  after(async () => {
    raw?.close();
    await inventory?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const get = (seq: number) => raw.prepare("select * from audit where seq = ?").get(seq) as Row;
  const put = (rows: readonly Row[]) => {
    const del = raw.prepare("delete from audit where seq = ?");
    const ins = raw.prepare(
      "insert into audit (seq, time, actor_id, actor_name, action, target, outcome, details, prev_hash, hash) " +
        "values (@seq, @time, @actor_id, @actor_name, @action, @target, @outcome, @details, @prev_hash, @hash)",
    );
    raw.transaction(() => {
      for (const r of rows) del.run(r.seq);
      for (const r of rows) ins.run(r);
    })();
  };
  const update = (seq: number, column: keyof Row, value: string) =>
    raw.prepare(`update audit set ${column} = ? where seq = ?`).run(value, seq);

  /** One kind of tampering: applies it at a random place and says where and how verification must fail. */
  type Tamper = (rnd: () => number) => { seq: number; problem: AuditProblem; touched: number[] };
  const pick = (rnd: () => number, lo = 1, hi = head) => lo + Math.floor(rnd() * (hi - lo + 1));
  const flipChar = (s: string, rnd: () => number) => {
    const i = Math.floor(rnd() * s.length);
    const c = s[i] === "a" ? "b" : "a";
    return `${s.slice(0, i)}${c}${s.slice(i + 1)}`;
  };

  const TAMPERS: Record<string, Tamper> = {
    "edit a field": (rnd) => {
      const seq = pick(rnd);
      const column =
        (["actor_name", "action", "target", "outcome", "time"] as const)[Math.floor(rnd() * 5)] ?? "target";
      update(seq, column, flipChar(get(seq)[column] as string, rnd));
      return { seq, problem: "hash-mismatch", touched: [seq] };
    },
    "edit the details": (rnd) => {
      const seq = pick(rnd);
      update(seq, "details", JSON.stringify({ ...JSON.parse(get(seq).details), forged: true }));
      return { seq, problem: "hash-mismatch", touched: [seq] };
    },
    "forge a hash": (rnd) => {
      const seq = pick(rnd);
      update(seq, "hash", flipChar(get(seq).hash, rnd));
      return { seq, problem: "hash-mismatch", touched: [seq] };
    },
    "relink to another predecessor": (rnd) => {
      const seq = pick(rnd, 2);
      update(seq, "prev_hash", flipChar(get(seq).prev_hash, rnd));
      return { seq, problem: "hash-mismatch", touched: [seq] };
    },
    "rewrite a record with a recomputed hash": (rnd) => {
      const seq = pick(rnd);
      const r = get(seq);
      const forged = { ...r, target: flipChar(r.target, rnd) };
      const hash = auditRecordHash({
        seq: forged.seq,
        time: forged.time,
        actor: { id: forged.actor_id, name: forged.actor_name },
        action: forged.action,
        target: forged.target,
        outcome: forged.outcome as "ok",
        details: JSON.parse(forged.details),
        prevHash: forged.prev_hash,
      });
      put([{ ...forged, hash }]);
      // The record itself checks out now; its successor (or the head) no longer follows it.
      return seq === head
        ? { seq, problem: "head-mismatch", touched: [seq] }
        : { seq: seq + 1, problem: "broken-link", touched: [seq] };
    },
    "delete a record": (rnd) => {
      const seq = pick(rnd);
      raw.prepare("delete from audit where seq = ?").run(seq);
      return { seq, problem: "missing", touched: [seq] };
    },
    "swap two records": (rnd) => {
      const a = pick(rnd, 1, head - 1);
      const b = pick(rnd, a + 1);
      const [ra, rb] = [get(a), get(b)];
      put([
        { ...rb, seq: a },
        { ...ra, seq: b },
      ]);
      return { seq: a, problem: "hash-mismatch", touched: [a, b] };
    },
    "truncate the tail": (rnd) => {
      const seq = pick(rnd, Math.max(1, head - 500));
      raw.prepare("delete from audit where seq >= ?").run(seq);
      return { seq, problem: "missing", touched: Array.from({ length: head - seq + 1 }, (_, i) => seq + i) };
    },
  };

  it("verifies intact, then detects every tampering at its first bad record", async () => {
    assert.deepEqual((await verifyAuditChain(inventory)).ok, true);
    const rnd = seededRandom(SEED);
    const random = () => Buffer.from(rnd.bytes(4)).readUInt32BE(0) / 2 ** 32;
    const kinds = Object.keys(TAMPERS);
    const seen = new Map<string, number>();
    for (let i = 0; i < CASES; i++) {
      const kind = kinds[i % kinds.length] ?? "edit a field";
      const tamper = TAMPERS[kind];
      assert.ok(tamper);
      // A snapshot to put back the rows the case names once it ran.
      const before = raw.prepare("select * from audit order by seq").all() as Row[];
      const expected = tamper(random);
      const v = await verifyAuditChain(inventory);
      const where = `case ${i} (${kind}, seq ${expected.seq})`;
      assert.equal(v.ok, false, `${where}: not detected`);
      assert.deepEqual(
        [v.firstBad?.seq, v.firstBad?.problem],
        [expected.seq, expected.problem],
        `${where}: ${v.firstBad?.message}`,
      );
      const verified = expected.problem === "head-mismatch" ? expected.seq : expected.seq - 1;
      assert.equal(v.verified, verified, `${where}: every record before it verified`);
      put(before.filter((r) => expected.touched.includes(r.seq)));
      seen.set(kind, (seen.get(kind) ?? 0) + 1);
    }
    assert.equal((await verifyAuditChain(inventory)).ok, true, "restored");
    assert.equal(seen.size, kinds.length, "every kind of tampering ran");
    recordSuite("audit-tamper", {
      suite: "Audit tamper",
      ran: { records: RECORDS, tamperings: CASES, kinds: kinds.length, seed: SEED },
      held: [
        "every tampering detected",
        "at exactly its first bad record, with the right problem (hash-mismatch, broken-link, missing, head-mismatch)",
        "every record before it verified",
        "the restored chain verifies",
      ],
    });
  });
});

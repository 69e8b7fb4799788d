/**
 * Group reservations on PostgreSQL: two nodes' placers, each with its own connection pool and its own read of the
 * hosts, reserving at once for the same few slots. Their groups lock many VM rows and several host rows per
 * transaction (`FOR UPDATE`), so this is where a lock-order mistake or a recount outside the lock would show: a
 * host over its pool, a VM reserved twice, or a refusal while a slot is free.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { isCiphervisorError } from "../errors.ts";
import { hostViews, Placer } from "./capacity.ts";
import { postgresUnreachable } from "./inventory/testing/postgres-server.ts";
import type { NewVm } from "./inventory/types.ts";
import { linuxSpec, PG_URL, postgresDatabase } from "./testing/control-fixture.ts";

const HOSTS = 12;
const SLOTS = 3;
const VMS = 60;

const db = await postgresDatabase();

if (db) {
  after(() => db.dispose());
  describe("group reservations on PostgreSQL: two nodes racing for the same slots", () => {
    it(`${VMS} SEV-ES VMs over ${HOSTS} hosts of ${SLOTS} slots: no host over its pool, no VM twice, no refusal while a slot is free`, async () => {
      const one = await db.open();
      const two = await db.open({ migrate: false });
      try {
        for (let i = 0; i < HOSTS; i++) {
          await one.hosts.create({
            id: `host_${i}`,
            name: `h-${String(i).padStart(2, "0")}`,
            cpuGeneration: "milan",
            sevAsids: 10,
            esAsids: SLOTS,
          });
        }
        const rows: NewVm[] = Array.from({ length: VMS }, (_, i) => ({
          id: `vm_${i}`,
          name: `es-${String(i).padStart(3, "0")}`,
          spec: linuxSpec,
          securityMode: "sev-es",
          policy: 0x7,
          hostId: null,
        }));
        await one.vms.createMany(rows);
        const [mine, theirs] = await Promise.all([Placer.load(one), Placer.load(two)]);
        const ask = (p: Placer, ids: readonly string[]) =>
          ids.map((id) =>
            p.reserve(id, { from: ["off"] }).then(
              (r) => ({ id, host: r.host.id }),
              (e: unknown) => {
                if (!isCiphervisorError(e)) throw e;
                return { id, code: e.code, retryable: e.details?.retryable === true };
              },
            ),
          );
        const ids = rows.map((r) => r.id as string);
        // Interleaved halves, and each node also asks for some of the other's VMs: both orders of contention.
        const results = await Promise.all([
          ...ask(
            mine,
            ids.filter((_, i) => i % 2 === 0),
          ),
          ...ask(
            theirs,
            ids.filter((_, i) => i % 2 === 1),
          ),
          ...ask(theirs, ids.slice(0, 6)),
        ]);
        const placed = results.filter((r) => "host" in r);
        const placedIds = placed.map((r) => r.id);
        assert.equal(new Set(placedIds).size, placedIds.length, "no VM reserved twice");
        for (const r of results) {
          if ("code" in r) {
            assert.ok(
              r.code === "NO_VALID_HOST" ||
                (r.code === "CONFLICT" && (r.retryable || placedIds.includes(r.id))),
              `${r.id}: ${r.code}`,
            );
          }
        }
        const views = await hostViews(one);
        for (const v of views)
          assert.ok(v.used.sevEs <= SLOTS, `${v.host.name}: ${v.used.sevEs} of ${SLOTS} slots`);
        const used = views.reduce((n, v) => n + v.used.sevEs, 0);
        assert.equal(used, placed.length, "the inventory holds exactly the reservations answered");
        const refused = results.some((r) => "code" in r && r.code === "NO_VALID_HOST");
        if (refused) assert.equal(used, HOSTS * SLOTS, "NO_VALID_HOST only once every slot is taken");
        assert.ok(used > HOSTS, `${used} slots taken`);
        for (const r of placed)
          assert.equal((await one.vms.get(r.id))?.hostId, r.host, `${r.id} where it was told`);
      } finally {
        await two.close();
        await one.close();
      }
    });
  });
} else {
  postgresUnreachable("PostgreSQL group reservations", PG_URL, "no connection");
}

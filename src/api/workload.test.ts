/**
 * A mixed workload through the API — hosts, creates, power cycles, migrations, snapshots, clones, bulk updates,
 * a drain, token administration, refused and denied requests — then the audit chain: it verifies through
 * `GET /v1/audit/verify`, holds a record for every change and every denial, and an edit, a deletion or a swap of
 * rows made behind the API's back is named at the first bad record.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import Database from "better-sqlite3";
import { type ApiFixture, json, withApi } from "./testing/api-fixture.ts";

const spec = { vcpus: 1, memoryMiB: 32, guestOs: "linux-5.19", firmware: "efi", hardwareVersion: 19 };

async function ok(
  a: ApiFixture,
  as: Parameters<ApiFixture["call"]>[0],
  method: string,
  url: string,
  body?: unknown,
) {
  const r = await a.call(as, method, url, body);
  assert.ok(r.statusCode < 300, `${method} ${url}: ${r.statusCode} ${r.body}`);
  return json(r);
}

async function settle(a: ApiFixture, res: Record<string, unknown>): Promise<void> {
  const id = (res.operation as { id: string } | undefined)?.id;
  if (id) await a.cp.engine.waitFor(id, 60_000);
}

describe("audit chain after a mixed workload through the API", () => {
  it("verifies, records every change and denial, and names the first tampered record", () =>
    withApi(async (a) => {
      for (const [name, generation, minSevAsid] of [
        ["rome-1", "rome", undefined],
        ["rome-2", "rome", 5],
        ["milan-1", "milan", undefined],
        ["naples-1", "naples", undefined],
      ] as const) {
        await ok(a, "admin", "POST", "/v1/hosts", {
          name,
          emulated: { generation, ...(minSevAsid ? { minSevAsid } : {}) },
        });
      }
      const ids: string[] = [];
      for (let i = 0; i < 8; i++) {
        const mode = (["none", "sev", "sev-es", "sev-es"] as const)[i % 4];
        const r = await ok(a, "all", "POST", "/v1/vms", {
          name: `app-${i}`,
          spec,
          securityMode: mode,
          labels: { app: "shop" },
        });
        ids.push((r.vm as { id: string }).id);
      }
      for (const id of ids.slice(0, 6)) await ok(a, "operator", "POST", `/v1/vms/${id}/power-on`);
      await ok(a, "operator", "POST", `/v1/vms/${ids[0]}/migrate`, { mode: "live" });
      await ok(a, "operator", "POST", `/v1/vms/${ids[2]}/restart`);
      await ok(a, "operator", "POST", `/v1/vms/${ids[1]}/snapshots`, { name: "before-upgrade" });
      await ok(a, "operator", "POST", `/v1/vms/${ids[6]}/clone`, { name: "app-6-copy" }).catch(
        () => undefined,
      );
      await ok(a, "operator", "POST", `/v1/vms/${ids[3]}/power-off`);
      await ok(a, "operator", "POST", `/v1/vms/${ids[3]}/migrate`, { mode: "cold" });
      // Strengthen an SEV VM's policy (DOMAIN | SEV), weaken an SEV-ES VM to SEV, turn it off; and a denied one.
      await ok(a, "operator", "POST", `/v1/vms/${ids[1]}/power-off`);
      await settle(
        a,
        await ok(a, "security-admin", "POST", "/v1/vms:bulk-update", {
          selector: { ids: [ids[1]] },
          set: { policy: 0x33 },
        }),
      );
      await settle(
        a,
        await ok(a, "security-officer", "POST", "/v1/vms:bulk-update", {
          selector: { ids: [ids[7]] },
          set: { securityMode: "sev" },
        }),
      );
      await settle(
        a,
        await ok(a, "security-officer", "POST", "/v1/vms:bulk-update", {
          selector: { ids: [ids[7]] },
          set: { securityMode: "none" },
        }),
      );
      await settle(
        a,
        await ok(a, "security-admin", "POST", "/v1/vms:bulk-update", {
          selector: { ids: [ids[7]] },
          set: { securityMode: "sev-es" },
        }),
      );
      await settle(
        a,
        await ok(a, "security-admin", "POST", "/v1/vms:bulk-update", {
          selector: { ids: [ids[6]] },
          set: { securityMode: "sev" },
        }),
      );
      const rome1 = (await a.inventory.hosts.getByName("rome-1"))?.id ?? "";
      await settle(a, await ok(a, "operator", "POST", `/v1/hosts/${rome1}/enter-maintenance`));
      await ok(a, "operator", "POST", `/v1/hosts/${rome1}/exit-maintenance`);
      const tok = await ok(a, "admin", "POST", "/v1/tokens", { name: "temp", roles: ["viewer"] });
      await ok(a, "admin", "DELETE", `/v1/tokens/${(tok.token as { id: string }).id}`);
      // Refused and denied requests.
      assert.equal(
        (await a.call("operator", "POST", `/v1/vms/${ids[2]}/migrate`, { mode: "live" })).statusCode,
        409,
      );
      assert.equal((await a.call("viewer", "POST", `/v1/vms/${ids[4]}/power-off`)).statusCode, 403);
      assert.equal((await a.call(null, "DELETE", `/v1/vms/${ids[5]}`)).statusCode, 401);
      // Anonymous denials are audited in aggregate per source and window (denied-requests.ts): write it now.
      await a.app.deniedAudit.flush();
      assert.equal(
        (
          await a.call("operator", "POST", "/v1/vms:bulk-update", {
            selector: { all: true },
            set: { securityMode: "none" },
          })
        ).statusCode,
        403,
      );

      const v = json(await a.call("auditor", "GET", "/v1/audit/verify"));
      assert.equal(v.ok, true, JSON.stringify(v));
      const records = json(await a.call("auditor", "GET", "/v1/audit?limit=5000")).items as {
        seq: number;
        action: string;
        outcome: string;
        target: string;
      }[];
      assert.equal(records.length, v.verified);
      const actions = new Set(records.map((r) => `${r.action}:${r.outcome}`));
      for (const expected of [
        "host.register:ok",
        "vm.create:ok",
        "vm.power-on:ok",
        "vm.migrate:ok",
        "vm.restart:ok",
        "vm.snapshot:ok",
        "vm.power-off:ok",
        "vm.policy.change:ok",
        "vm.security.downgrade:ok",
        "vm.security.disable:ok",
        "vm.security.enable:ok",
        "host.maintenance.enter:ok",
        "host.maintenance.exit:ok",
        "token.create:ok",
        "token.revoke:ok",
        "operation.create:ok",
        "vm.migrate:failed",
        "vm.power-off:denied",
        "request.unauthenticated:denied",
        "vm.bulk-update:denied",
      ]) {
        assert.ok(actions.has(expected), `an audit record ${expected}`);
      }
      // A VM's story is complete: created, started, changed — each with its record.
      assert.ok(records.filter((r) => r.target === ids[7]).length >= 3);

      // Tampering behind the API's back (the triggers dropped, as the database owner could).
      const raw = new Database(a.dbUrl ?? "");
      try {
        raw.exec("drop trigger audit_no_update; drop trigger audit_no_delete;");
        const mid = Math.floor(records.length / 2);
        raw.prepare("update audit set target = 'vm_forged' where seq = ?").run(mid);
        let bad = json(await a.call("auditor", "GET", "/v1/audit/verify")) as {
          ok: boolean;
          firstBad: { seq: number; problem: string };
        };
        assert.deepEqual([bad.ok, bad.firstBad.seq, bad.firstBad.problem], [false, mid, "hash-mismatch"]);
        raw.prepare("update audit set target = ? where seq = ?").run(records[mid - 1]?.target ?? "", mid);
        assert.equal((json(await a.call("auditor", "GET", "/v1/audit/verify")) as { ok: boolean }).ok, true);
        raw.prepare("delete from audit where seq = ?").run(mid + 1);
        bad = json(await a.call("auditor", "GET", "/v1/audit/verify")) as typeof bad;
        assert.deepEqual([bad.ok, bad.firstBad.seq, bad.firstBad.problem], [false, mid + 1, "missing"]);
      } finally {
        raw.close();
      }
    }));
});

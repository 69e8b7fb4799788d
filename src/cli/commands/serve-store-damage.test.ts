/**
 * `serve` on a damaged SQLite inventory, as a real process on real damaged files: it starts anyway and logs the
 * damage once; `/readyz` answers 503 problem+json naming which damage (corrupt page, truncated file, read-only
 * file) with its own code and message; reads work where SQLite can read; every mutating request is refused with the
 * same code, neither audited nor logged as an error; the damage never reaches the database as a migration or a
 * write. The file is damaged between two runs of the same data directory, as a crash or a bad restore would leave it.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import {
  corruptPages,
  makeReadOnly,
  populatedStore,
  restoreWritable,
  truncateStore,
} from "../../control/inventory/testing/damage.ts";
import { type ServeChild, startServeChild } from "../testing/serve-child.ts";

const dirs: string[] = [];
const readOnly: string[] = [];
after(() => {
  for (const f of readOnly) restoreWritable(f);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

type Running = ServeChild;

/** From the sources, so the test runs what is being edited (the bin runs dist/). */
const start = (dir: string) =>
  startServeChild(["--data-dir", dir, "--port", "0", "--log-level", "info"], {
    fromSources: true,
    settleMs: 50,
  });

async function stop(s: Running): Promise<void> {
  s.child.kill("SIGTERM");
  assert.equal(await s.exit(), 0, s.stderr());
}

/** A data directory whose inventory holds 3,000 VMs and the admin token of one clean serve run. */
async function dataDir(): Promise<{ dir: string; db: string; token: string }> {
  const root = mkdtempSync(join(tmpdir(), "cv-damaged-"));
  dirs.push(root);
  const dir = join(root, "data");
  const db = join(dir, "inventory.db");
  await populatedStore(db);
  await stop(await start(dir));
  return { dir, db, token: readFileSync(join(dir, "admin.token"), "utf8").trim() };
}

interface Answer {
  readonly status: number;
  readonly type: string;
  readonly body: Record<string, unknown>;
}

async function call(url: string, token: string | null, method = "GET", body?: unknown): Promise<Answer> {
  const r = await fetch(url, {
    method,
    headers: {
      ...(token === null ? {} : { authorization: `Bearer ${token}` }),
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return {
    status: r.status,
    type: r.headers.get("content-type") ?? "",
    body: (await r.json()) as Record<string, unknown>,
  };
}

const newVm = {
  name: "after-damage",
  spec: { vcpus: 1, memoryMiB: 64, guestOs: "linux-5.19", firmware: "efi", hardwareVersion: 19 },
};

/** The checks every damage shares: readiness names it, writes are refused with it, serve said it once. */
async function assertRefusesWrites(s: Running, token: string, code: string, kind: string, message: RegExp) {
  const ready = await call(`${s.url}/readyz`, null);
  assert.equal(ready.status, 503);
  assert.match(ready.type, /^application\/problem\+json/);
  assert.equal(ready.body.code, code);
  assert.equal(ready.body.damage, kind);
  assert.match(String(ready.body.detail), message);
  assert.equal((await call(`${s.url}/healthz`, null)).status, 200, "the process itself is alive");

  for (const [method, path, body, as = token] of [
    ["POST", "/v1/vms", newVm],
    ["POST", "/v1/tokens", { name: "x", roles: ["viewer"] }],
    ["DELETE", "/v1/vms/vm_none", undefined],
    // Before authentication: checking a token or auditing a denial would write into the store.
    ["POST", "/v1/tokens", { name: "y", roles: ["viewer"] }, null],
  ] as const) {
    const r = await call(`${s.url}${path}`, as, method, body);
    assert.equal(r.status, 503, `${method} ${path}`);
    assert.match(r.type, /^application\/problem\+json/);
    assert.equal(r.body.code, code, `${method} ${path}`);
    assert.match(String(r.body.detail), message);
  }
  const err = s.stderr();
  assert.equal(err.match(/inventory damaged, serving reads only/g)?.length, 1, err);
  assert.doesNotMatch(
    err,
    /request failed|could not write the audit record/,
    "refusals are not logged as errors",
  );
  assert.match(s.stdout(), new RegExp(`DAMAGED: .*\\(${code}\\); reads only`));
}

describe("serve on a damaged inventory", () => {
  it("a corrupt page: 503 STORE_CORRUPT from /readyz and for every write; reads still work", async () => {
    const { dir, db, token } = await dataDir();
    corruptPages(db);
    const s = await start(dir);
    try {
      await assertRefusesWrites(s, token, "STORE_CORRUPT", "corrupt", /corrupt: PRAGMA quick_check found/);
      const me = await call(`${s.url}/v1/me`, token);
      assert.equal(me.status, 200, "authentication (a read) still works");
      const check = await call(`${s.url}/v1/system/store-check?full=true`, token);
      assert.equal(check.status, 200);
      assert.equal(check.body.status, "damaged");
      assert.equal(check.body.check, "full");
      await stop(s);
    } finally {
      s.child.kill("SIGKILL");
    }
  });

  it("a truncated file: 503 STORE_CORRUPT with the truncation message; unreadable, yet serve answers", async () => {
    const { dir, db, token } = await dataDir();
    truncateStore(db);
    const size = statSync(db).size;
    const s = await start(dir);
    try {
      await assertRefusesWrites(
        s,
        token,
        "STORE_CORRUPT",
        "truncated",
        /file is truncated: [\d.]+ MiB of the/,
      );
      const vms = await call(`${s.url}/v1/vms`, token);
      assert.equal(vms.status, 503);
      assert.equal(vms.body.code, "STORE_CORRUPT");
      await stop(s);
      assert.equal(statSync(db).size, size, "nothing was written into the truncated file");
    } finally {
      s.child.kill("SIGKILL");
    }
  });

  it("a read-only file: 503 STORE_READ_ONLY; reads work; writable again, the node is ready again", async () => {
    const { dir, db, token } = await dataDir();
    makeReadOnly(db);
    readOnly.push(db);
    const s = await start(dir);
    try {
      await assertRefusesWrites(
        s,
        token,
        "STORE_READ_ONLY",
        "read-only",
        /read-only: the file cannot be written/,
      );
      const vms = await call(`${s.url}/v1/vms?limit=5`, token);
      assert.equal(vms.status, 200);
      assert.equal((vms.body.items as unknown[]).length, 5);
      // Writable again: this process's connection was opened read-only, which /readyz says, and a restart heals.
      restoreWritable(db);
      const stale = await call(`${s.url}/readyz`, null);
      assert.deepEqual([stale.status, stale.body.code], [503, "STORE_READ_ONLY"]);
      assert.match(String(stale.body.detail), /opened while the file could not be written; restart the node/);
      await stop(s);
      const healed = await start(dir);
      try {
        assert.equal((await call(`${healed.url}/readyz`, null)).status, 200);
        const created = await call(`${healed.url}/v1/tokens`, token, "POST", {
          name: "after",
          roles: ["viewer"],
        });
        assert.equal(created.status, 201, JSON.stringify(created.body));
        await stop(healed);
      } finally {
        healed.child.kill("SIGKILL");
      }
    } finally {
      s.child.kill("SIGKILL");
    }
  });

  it("a healthy store: ready, writes accepted, the store check says ok", async () => {
    const { dir, token } = await dataDir();
    const s = await start(dir);
    try {
      assert.equal((await call(`${s.url}/readyz`, null)).status, 200);
      const check = await call(`${s.url}/v1/system/store-check`, token);
      assert.deepEqual([check.body.status, check.body.check], ["ok", "quick"]);
      assert.doesNotMatch(s.stderr(), /inventory damaged/);
      await stop(s);
    } finally {
      s.child.kill("SIGKILL");
    }
  });
});

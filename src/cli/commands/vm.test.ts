import assert from "node:assert/strict";
import { createServer } from "node:net";
import { after, before, describe, it } from "node:test";
import { memoryIo } from "../io.ts";
import { type CliServer, oneLineError, startCliServer } from "../testing/cli-server.ts";

let s: CliServer & { close(): Promise<void> };
before(async () => {
  s = await startCliServer({ demo: true });
});
after(() => s.close());

/** Asserts a failed run: the exit code and one line `ciphervisor: … [CODE]` on stderr. */
function fails(
  r: { code: number; out: string; err: string },
  exit: number,
  code: string,
  text?: string | RegExp,
): void {
  assert.equal(r.code, exit, `exit code (stderr: ${r.err})`);
  assert.ok(oneLineError(r.err, code), `one-line ${code} error expected, got: ${r.err}`);
  if (typeof text === "string") assert.ok(r.err.includes(text), `"${r.err}" lacks "${text}"`);
  else if (text) assert.match(r.err, text);
}

function names(out: string): string[] {
  return out.split("\n").filter((l) => l !== "");
}

/** A port nothing listens on. */
async function deadPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const addr = srv.address();
  const port = typeof addr === "object" && addr !== null ? addr.port : 0;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

describe("ciphervisor vm list / get", () => {
  it("lists VMs as a table, JSON and one name a line", async () => {
    const t = await s.cli("viewer", "vm", "list");
    assert.equal(t.code, 0, t.err);
    assert.match(t.out, /^NAME +HOST +POWER +MODE +POLICY +OS\n/);
    assert.equal(names(t.out).length, 10);
    assert.match(t.out, /\ndb-1 +rome-1 +running +sev-es +0x7 +linux-5\.19\n/);
    const j = await s.cli("viewer", "vm", "list", "--json");
    const doc = JSON.parse(j.out) as { name: string; host: string | null; securityMode: string }[];
    assert.equal(doc.length, 9);
    assert.equal(doc.find((v) => v.name === "db-2")?.host, "rome-2");
    assert.equal(j.err, "");
    const wide = await s.cli("viewer", "vm", "list", "-o", "wide");
    assert.match(wide.out, /^ID +NAME .* LIVE-MIGRATE +LABELS\n/);
  });

  it("selects by mode, OS family, host and power, labels and name prefix", async () => {
    const sel = async (selector: string) =>
      names((await s.cli("viewer", "vm", "list", "--selector", selector, "-o", "name")).out);
    assert.deepEqual(await sel("mode=sev-es"), ["db-1", "db-2", "vault-1"]);
    assert.deepEqual(await sel("os=windows"), ["win-1"]);
    assert.deepEqual(await sel("os=linux-4.16"), ["legacy-1"]);
    assert.deepEqual(await sel("host=rome-2,power=running"), ["db-2", "win-1"]);
    assert.deepEqual(await sel("host=none"), ["batch-1"]);
    assert.deepEqual(await sel("label.app=web,label.env=prod"), ["web-1", "web-2"]);
    assert.deepEqual(await sel("name=web-*"), ["web-1", "web-2"]);
    assert.deepEqual(await sel("name=web-1"), ["web-1"]);
    assert.deepEqual(names((await s.cli("viewer", "vm", "list", "db-2", "web-1", "-o", "name")).out), [
      "db-2",
      "web-1",
    ]);
  });

  it("refuses bad selectors and flags with one line and exit 2, unknown hosts and VMs with exit 4", async () => {
    fails(
      await s.cli("viewer", "vm", "list", "--selector", "mdoe=none"),
      2,
      "INVALID_INPUT",
      "unknown key 'mdoe'",
    );
    fails(
      await s.cli("viewer", "vm", "list", "--selector", "power=on"),
      2,
      "INVALID_INPUT",
      "power must be one of",
    );
    fails(
      await s.cli("viewer", "vm", "list", "--selector", "host=nowhere"),
      4,
      "NOT_FOUND",
      "no host named 'nowhere'",
    );
    fails(
      await s.cli("viewer", "vm", "list", "-o", "yaml"),
      2,
      "INVALID_INPUT",
      "-o/--output must be one of",
    );
    fails(await s.cli("viewer", "vm", "list", "--json", "-o", "name"), 2, "USAGE");
    fails(await s.cli("viewer", "vm", "list", "--all", "--selector", "mode=none"), 2, "USAGE", "one way");
    fails(await s.cli("viewer", "vm", "list", "--frobnicate"), 2, "USAGE", "unknown option '--frobnicate'");
    fails(
      await s.cli("viewer", "vm", "list", "web-1", "nope-1", "nope-2"),
      4,
      "NOT_FOUND",
      "no VMs named 'nope-1', 'nope-2'",
    );
  });

  it("shows one VM by name or id", async () => {
    const r = await s.cli("viewer", "vm", "get", "db-1");
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^name: +db-1\n/);
    assert.match(r.out, /\nlive-migratable: +no \(/);
    const j = JSON.parse((await s.cli("viewer", "vm", "get", "db-1", "--json")).out) as {
      id: string;
      policy: number;
    };
    assert.equal(j.policy, 7);
    assert.equal(JSON.parse((await s.cli("viewer", "vm", "get", j.id, "--json")).out).name, "db-1");
    fails(await s.cli("viewer", "vm", "get", "nope"), 4, "NOT_FOUND", "no VM named 'nope'");
    fails(await s.cli("viewer", "vm", "get", "bad name!"), 4, "NOT_FOUND");
  });
});

describe("ciphervisor vm create", () => {
  it("creates VMs, SEV-ES ones included, and --what-if creates nothing", async () => {
    const before = await s.snapshot();
    const dryRuns = await s.dryRuns();
    const w = await s.cli(
      "ops",
      "vm",
      "create",
      "app-2",
      "--host",
      "rome-1",
      "--guest-os",
      "linux-5.19",
      "--sev-es",
      "on",
      "--what-if",
    );
    assert.equal(w.code, 0, w.err);
    assert.match(w.out, /^what-if: vm create app-2 — 1 VM: 1 would change.*Nothing was changed\.\n/);
    assert.equal(await s.snapshot(), before);
    assert.equal(await s.dryRuns(), dryRuns + 1, "a dry run writes exactly one audit record");
    const r = await s.cli(
      "ops",
      "vm",
      "create",
      "app-1",
      "--host",
      "rome-1",
      "--guest-os",
      "linux-5.19",
      "--sev-es",
      "on",
      "--label",
      "tier=gold",
    );
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^created VM app-1 \(vm_[0-9a-z]{26}, sev-es\) \[operation op_[0-9a-z]{26}\]\n$/);
    const vm = (await s.vms()).get("app-1");
    assert.equal(vm?.securityMode, "sev-es");
    assert.equal(vm?.policy, 0x7);
    assert.deepEqual(vm?.labels, { tier: "gold" });
    const j = JSON.parse(
      (await s.cli("ops", "vm", "create", "app-3", "--guest-os", "linux-5.10", "--json")).out,
    );
    assert.equal(j.vm.name, "app-3");
    assert.equal(j.operation.status, "succeeded");
  });

  it("refuses bad specs, incompatible modes and duplicates with their codes", async () => {
    const create = (...extra: string[]) => s.cli("ops", "vm", "create", ...extra);
    fails(
      await create("x-1", "--guest-os", "linux-5.19", "--vcpus", "0"),
      2,
      "INVALID_INPUT",
      "--vcpus must be an integer in 1..64",
    );
    fails(
      await create("x-1", "--guest-os", "linux-5.19", "--sev-es", "maybe"),
      2,
      "INVALID_INPUT",
      "--sev-es must be one of on, off",
    );
    fails(await create("x-1", "--guest-os", "beos"), 2, "INVALID_INPUT", "guestOs must be one of linux-5.19");
    fails(await create("x-1"), 2, "USAGE", "--guest-os");
    fails(await create("x-1", "--guest-os", "linux-5.19", "--host", "nowhere"), 4, "NOT_FOUND");
    fails(
      await create("x-1", "--guest-os", "windows-server-2022", "--sev-es", "on"),
      6,
      "REQUIREMENT_FAILED",
      "does not support SEV-ES",
    );
    fails(await create("web-1", "--guest-os", "linux-5.19"), 6, "CONFLICT", "already exists");
    fails(await s.cli("viewer", "vm", "create", "x-1", "--guest-os", "linux-5.19"), 5, "FORBIDDEN");
    const w = await s.cli(
      "ops",
      "vm",
      "create",
      "x-2",
      "--guest-os",
      "windows-server-2022",
      "--sev-es",
      "on",
      "--what-if",
      "--json",
    );
    const doc = JSON.parse(w.out) as { items: { outcome: string; code: string }[] };
    assert.deepEqual(
      doc.items.map((i) => [i.outcome, i.code]),
      [["refused", "REQUIREMENT_FAILED"]],
    );
  });
});

describe("ciphervisor vm start / stop / restart / delete", () => {
  it("starts and stops VMs, leaves VMs already as asked alone, and asks for --yes where it must", async () => {
    const start = await s.cli("ops", "vm", "start", "test-1");
    assert.equal(start.code, 0, start.err);
    assert.match(start.out, /^started 1 VM, 0 failed \(operation op_[0-9a-z]{26}\)\n$/);
    assert.equal((await s.vms()).get("test-1")?.powerState, "running");
    const again = await s.cli("ops", "vm", "start", "test-1", "--json");
    const doc = JSON.parse(again.out);
    assert.match(doc.operation, /^op_/);
    assert.deepEqual(
      { ...doc, operation: "op" },
      { ok: 1, changed: 0, unchanged: 1, failed: [], operation: "op" },
    );
    fails(await s.cli("ops", "vm", "stop", "web-1", "web-2"), 2, "CONFIRMATION_REQUIRED", "add --yes");
    fails(await s.cli("ops", "vm", "start", "--all"), 2, "CONFIRMATION_REQUIRED");
    const stop = await s.cli("ops", "vm", "stop", "web-1", "web-2", "--yes");
    assert.equal(stop.code, 0, stop.err);
    const vms = await s.vms();
    assert.deepEqual([vms.get("web-1")?.powerState, vms.get("web-2")?.powerState], ["off", "off"]);
  });

  it("reports each VM's refusal and exits 3 when some of several fail", async () => {
    const r = await s.cli("ops", "vm", "restart", "db-1", "vault-1", "--yes", "--json");
    assert.equal(r.code, 3, r.err);
    const doc = JSON.parse(r.out) as { ok: number; failed: { vm: string; code: string; message: string }[] };
    assert.equal(doc.ok, 1);
    assert.deepEqual(
      doc.failed.map((f) => [f.vm, f.code]),
      [["vault-1", "CONFLICT"]],
    );
    assert.match(doc.failed[0]?.message ?? "", /only a running VM can be restarted/);
    fails(
      await s.cli("ops", "vm", "restart", "vault-1"),
      6,
      "CONFLICT",
      "only a running VM can be restarted",
    );
  });

  it("plans a start over the key slots with --what-if, changing nothing", async () => {
    const before = await s.snapshot();
    const r = await s.cli("ops", "vm", "start", "--selector", "power=off", "--what-if", "--json");
    assert.equal(r.code, 0, r.err);
    assert.equal(await s.snapshot(), before);
    const doc = JSON.parse(r.out) as {
      items: { name: string; outcome: string; host: string }[];
      capacity: { host: string; pool: string; used: number; usedAfter: number }[];
    };
    const vault = doc.items.find((i) => i.name === "vault-1");
    assert.equal(vault?.outcome, "change");
    assert.ok(vault && ["rome-1", "rome-2", "milan-1"].includes(vault.host));
    assert.ok(doc.capacity.some((c) => c.pool === "sev-es" && c.usedAfter === c.used + 1));
    const table = await s.cli("ops", "vm", "start", "--selector", "power=off", "--what-if");
    assert.match(
      table.out,
      /capacity impact \(key slots per host and pool\):\nHOST +POOL +SIZE +IN-USE +AFTER/,
    );
  });

  it("deletes powered-off VMs only", async () => {
    assert.equal((await s.cli("ops", "vm", "create", "tmp-1", "--guest-os", "linux-5.19")).code, 0);
    const d = await s.cli("ops", "vm", "delete", "tmp-1");
    assert.equal(d.code, 0, d.err);
    assert.equal((await s.vms()).has("tmp-1"), false);
    fails(await s.cli("ops", "vm", "delete", "db-2"), 6, "CONFLICT", "power it off before deleting it");
    fails(await s.cli("ops", "vm", "delete", "tmp-1"), 4, "NOT_FOUND");
  });
});

describe("ciphervisor vm migrate / snapshot / clone", () => {
  it("refuses what the operation table refuses, with its code, and does the rest", async () => {
    fails(
      await s.cli("ops", "vm", "migrate", "db-2", "--live"),
      6,
      "LIVE_MIGRATION_UNSUPPORTED",
      "live migration (vMotion)",
    );
    const w = JSON.parse((await s.cli("ops", "vm", "migrate", "db-2", "--live", "--what-if", "--json")).out);
    assert.equal(w.items[0].code, "LIVE_MIGRATION_UNSUPPORTED");
    fails(await s.cli("ops", "vm", "migrate", "db-2"), 2, "USAGE", "exactly one of --live and --cold");
    const cold = await s.cli("ops", "vm", "migrate", "vault-1", "--cold", "--to", "rome-1");
    assert.equal(cold.code, 0, cold.err);
    assert.match(cold.out, /^migrated VM vault-1 \(cold\) to rome-1 /);
    const live = await s.cli("ops", "vm", "migrate", "win-1", "--live");
    assert.equal(live.code, 0, live.err);
    fails(await s.cli("ops", "vm", "snapshot", "db-2", "--memory"), 6, "MEMORY_SNAPSHOT_UNSUPPORTED");
    assert.equal((await s.cli("ops", "vm", "snapshot", "db-2", "before-patch")).code, 0);
    fails(await s.cli("ops", "vm", "snapshot", "db-2", "bad name"), 2, "INVALID_INPUT");
    fails(await s.cli("ops", "vm", "clone", "db-2", "db-2-copy"), 6, "HOT_CLONE_UNSUPPORTED");
    const clone = await s.cli("ops", "vm", "clone", "vault-1", "vault-2");
    assert.equal(clone.code, 0, clone.err);
    assert.equal((await s.vms()).get("vault-2")?.securityMode, "sev-es");
  });
});

describe("ciphervisor vm: connection and authentication", () => {
  it("says in one line when the server is unreachable (exit 1)", async () => {
    const port = await deadPort();
    const io = memoryIo({
      env: { HOME: s.home, CIPHERVISOR_SERVER: `http://127.0.0.1:${port}`, CIPHERVISOR_TOKEN: "cvt_x" },
    });
    fails(
      await s.cliWith(io, "vm", "list"),
      1,
      "UNREACHABLE",
      `cannot reach the ciphervisor server at http://127.0.0.1:${port} (connection refused)`,
    );
    fails(await s.cli("viewer", "vm", "list", "--server", "ftp://x"), 2, "INVALID_INPUT");
    fails(await s.cli("viewer", "vm", "list", "--timeout", "soon"), 2, "INVALID_INPUT");
  });

  it("exits 5 for a wrong, missing or underprivileged token, and never prints the token", async () => {
    const wrong = "cvt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    const r = await s.cliWith(memoryIo({ env: s.env(null, { CIPHERVISOR_TOKEN: wrong }) }), "vm", "list");
    fails(r, 5, "UNAUTHENTICATED", "unknown API token (token from CIPHERVISOR_TOKEN)");
    assert.ok(!r.err.includes(wrong));
    fails(await s.cli(null, "vm", "list"), 5, "UNAUTHENTICATED", "no API token was given; pass --token");
    fails(await s.cli("viewer", "vm", "start", "vault-1"), 5, "FORBIDDEN", "'vm.power'");
    const flag = await s.cli(null, "vm", "list", "--token", s.tokens.viewer, "-o", "name");
    assert.equal(flag.code, 0, flag.err);
  });
});

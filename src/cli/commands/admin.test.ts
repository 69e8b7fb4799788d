import assert from "node:assert/strict";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { memoryIo } from "../io.ts";
import { type CliServer, oneLineError, startCliServer } from "../testing/cli-server.ts";

let s: CliServer & { close(): Promise<void> };
before(async () => {
  s = await startCliServer({ demo: true });
});
after(() => s.close());

function fails(r: { code: number; err: string }, exit: number, code: string, text?: string): void {
  assert.equal(r.code, exit, r.err);
  assert.ok(oneLineError(r.err, code), `one-line ${code} error expected, got: ${r.err}`);
  if (text) assert.ok(r.err.includes(text), `"${r.err}" lacks "${text}"`);
}

describe("ciphervisor host", () => {
  it("lists and shows hosts with their key-slot pools", async () => {
    const t = await s.cli("viewer", "host", "list");
    assert.equal(t.code, 0, t.err);
    assert.match(t.out, /^NAME +CPU +SEV +ES-POOL +SEV-POOL +VMS-ON +MAINTENANCE\n/);
    assert.match(t.out, /\nrome-2 +rome +\w+ +1\/4 /);
    assert.deepEqual(t.out.split("\n").length, 6);
    assert.equal(
      (await s.cli("viewer", "host", "list", "-o", "name")).out,
      "naples-1\nrome-1\nrome-2\nmilan-1\n",
    );
    const g = await s.cli("viewer", "host", "get", "rome-2");
    assert.match(g.out, /\npools: +SEV-ES 1\/4 used \(ASIDs 1\.\.4\); SEV 0\/505 used \(ASIDs 5\.\.509\)\n/);
    assert.equal(
      JSON.parse((await s.cli("viewer", "host", "get", "naples-1", "--json")).out).pools.sevEs.size,
      0,
    );
    fails(await s.cli("viewer", "host", "get", "nope"), 4, "NOT_FOUND", "no host named 'nope'");
  });

  it("adds emulated hosts, refuses duplicates and drivers this build lacks", async () => {
    const w = await s.cli("admin", "host", "add", "--name", "genoa-1", "--generation", "genoa", "--what-if");
    assert.match(w.out, /^what-if: host add genoa-1 .*1 would change/);
    assert.equal((await s.cli("viewer", "host", "list", "-o", "name")).out.includes("genoa-1"), false);
    const r = await s.cli(
      "admin",
      "host",
      "add",
      "--name",
      "genoa-1",
      "--generation",
      "genoa",
      "--min-sev-asid",
      "11",
    );
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^added host genoa-1 \(host_[0-9a-z]{26}\): genoa, SEV-ES 0\/10 used/);
    fails(await s.cli("admin", "host", "add", "--name", "genoa-1", "--generation", "genoa"), 6, "CONFLICT");
    fails(
      await s.cli("admin", "host", "add", "--name", "x", "--generation", "zen9"),
      2,
      "INVALID_INPUT",
      "--generation must be one of",
    );
    fails(await s.cli("admin", "host", "add", "--name", "lv-1", "--driver", "libvirt"), 2, "USAGE", "--uri");
    const lv = await s.cli(
      "admin",
      "host",
      "add",
      "--name",
      "lv-1",
      "--driver",
      "libvirt",
      "--uri",
      "qemu+ssh://h/system",
    );
    assert.notEqual(lv.code, 0);
    assert.match(lv.err, /^ciphervisor: .*libvirt.* \[[A-Z_]+\]\n$/);
    fails(await s.cli("ops", "host", "add", "--name", "x-1", "--generation", "rome"), 5, "FORBIDDEN");
  });

  it("plans a drain with --what-if, changing nothing, then enters and exits maintenance", async () => {
    const before = await s.snapshot();
    const w = await s.cli("ops", "host", "maintenance", "enter", "rome-1", "--what-if", "--json");
    assert.equal(w.code, 0, w.err);
    assert.equal(await s.snapshot(), before);
    const plan = JSON.parse(w.out) as { items: { name: string; outcome: string; action?: string }[] };
    assert.deepEqual(
      plan.items.filter((i) => i.outcome === "change").map((i) => [i.name, i.action]),
      [
        ["web-1", "live-migrate"],
        ["db-1", "restart-elsewhere"],
      ],
    );
    const enter = await s.cli("ops", "host", "maintenance", "enter", "rome-1");
    assert.equal(enter.code, 0, enter.err);
    // Moved: web-1 and db-1; test-1 is powered off and stays registered (already as asked).
    assert.match(enter.out, /^drained rome-1: 2 VMs, 1 already as asked, 0 failed \(operation op_/);
    assert.equal(
      JSON.parse((await s.cli("viewer", "host", "get", "rome-1", "--json")).out).maintenance,
      "in-maintenance",
    );
    const vms = await s.vms();
    assert.notEqual(vms.get("db-1")?.hostId, vms.get("test-1")?.hostId);
    const exit = await s.cli("ops", "host", "maintenance", "exit", "rome-1");
    assert.equal(exit.code, 0, exit.err);
    assert.equal(
      JSON.parse((await s.cli("viewer", "host", "get", "rome-1", "--json")).out).maintenance,
      "none",
    );
    fails(await s.cli("viewer", "host", "maintenance", "enter", "rome-2"), 5, "FORBIDDEN");
  });
});

describe("ciphervisor operation", () => {
  it("lists, shows and watches operations; exits like the operation ended", async () => {
    const set = JSON.parse(
      (await s.cli("ops", "vm", "set", "web-2", "test-1", "--sev-es", "on", "--json")).out,
    );
    const id = set.operation as string;
    const list = await s.cli("viewer", "operation", "list", "--kind", "vm.bulk-update", "-o", "name");
    assert.ok(list.out.split("\n").includes(id));
    const get = await s.cli("viewer", "operation", "get", id);
    assert.match(get.out, /^id: +op_/);
    assert.match(get.out, /\nstatus: +partially-failed\n/);
    assert.match(get.out, /POWER_STATE/);
    const failedOnly = JSON.parse((await s.cli("viewer", "operation", "get", id, "--failed", "--json")).out);
    assert.deepEqual(
      failedOnly.items.map((i: { code: string }) => i.code),
      ["POWER_STATE"],
    );
    const watch = await s.cli("viewer", "operation", "watch", id);
    assert.equal(watch.code, 3);
    assert.match(
      watch.out,
      /^operation op_[0-9a-z]{26} \(vm\.bulk-update\) partially-failed: 2\/2 done, 1 ok, 1 failed\n$/,
    );
    const ok = JSON.parse((await s.cli("ops", "vm", "start", "test-1", "--json")).out).operation as string;
    assert.equal((await s.cli("viewer", "operation", "watch", ok)).code, 0);
    fails(await s.cli("viewer", "operation", "get", "op-1"), 2, "INVALID_INPUT", "not an operation id");
    fails(await s.cli("viewer", "operation", "get", "op_00000000000000000000000000"), 4, "NOT_FOUND");
    fails(await s.cli("viewer", "operation", "list", "--status", "done"), 2, "INVALID_INPUT");
  });
});

describe("ciphervisor audit", () => {
  it("lists and verifies the audit chain (auditors only)", async () => {
    const l = await s.cli("auditor", "audit", "list", "--action", "vm.security.enable", "--json");
    assert.equal(l.code, 0, l.err);
    const page = JSON.parse(l.out) as { items: { action: string; hash: string }[] };
    assert.ok(page.items.length > 0);
    assert.ok(page.items.every((r) => r.action === "vm.security.enable"));
    const t = await s.cli("auditor", "audit", "list", "--limit", "2");
    assert.match(t.out, /^SEQ +TIME +ACTOR +ACTION +TARGET +OUTCOME +DETAILS\n/);
    assert.match(t.err, /^ciphervisor: more records: --cursor \S+\n$/);
    const v = await s.cli("auditor", "audit", "verify");
    assert.equal(v.code, 0, v.err);
    assert.match(v.out, /^audit chain ok: \d+ records verified, head \d+ [0-9a-f]{64}\n$/);
    fails(await s.cli("viewer", "audit", "verify"), 5, "FORBIDDEN");
    fails(await s.cli("auditor", "audit", "list", "--outcome", "meh"), 2, "INVALID_INPUT");
  });
});

describe("ciphervisor token", () => {
  it("shows a new secret once, never lists it, and revoked tokens stop working", async () => {
    const c = await s.cli("admin", "token", "create", "ci", "--role", "viewer");
    assert.equal(c.code, 0, c.err);
    const secret = c.out.trim();
    assert.match(secret, /^cvt_[A-Za-z0-9_-]{43}$/);
    assert.match(c.err, /shown only this once/);
    const list = await s.cli("admin", "token", "list");
    assert.ok(!list.out.includes(secret));
    assert.match(list.out, /\ntok_[0-9a-z]{26} +ci +viewer +active /);
    const io = memoryIo({ env: s.env(null, { CIPHERVISOR_TOKEN: secret }) });
    assert.equal((await s.cliWith(io, "vm", "list", "-o", "name")).code, 0);
    const out = join(s.home, "ci2.token");
    const f = await s.cli("admin", "token", "create", "ci2", "--role", "operator", "--out", out);
    assert.match(f.out, /^created token ci2 \(tok_[0-9a-z]{26}\); secret written to /);
    assert.equal(statSync(out).mode & 0o777, 0o600);
    assert.ok(!f.out.includes(readFileSync(out, "utf8").trim()));
    const r = await s.cli("admin", "token", "revoke", "ci");
    assert.equal(r.code, 0, r.err);
    fails(
      await s.cliWith(memoryIo({ env: s.env(null, { CIPHERVISOR_TOKEN: secret }) }), "vm", "list"),
      5,
      "UNAUTHENTICATED",
      "was revoked",
    );
    fails(
      await s.cli("admin", "token", "create", "x", "--role", "wizard"),
      2,
      "INVALID_INPUT",
      "roles/0 must be one of viewer",
    );
    fails(await s.cli("admin", "token", "create", "x"), 2, "USAGE", "--role");
    fails(await s.cli("admin", "token", "revoke", "nope"), 4, "NOT_FOUND");
    fails(await s.cli("viewer", "token", "list"), 5, "FORBIDDEN");
  });
});

describe("ciphervisor config and completion", () => {
  it("keeps named contexts and reports who a command runs as, never the token", async () => {
    const cfg = { CIPHERVISOR_CONFIG: join(s.home, "config.json") };
    const env = { HOME: s.home, ...cfg };
    const stdin = memoryIo({ env, stdin: `${s.tokens.auditor}\n` });
    const set = await s.cliWith(
      stdin,
      "config",
      "set-context",
      "lab",
      "--server",
      s.url,
      "--token-stdin",
      "--use",
    );
    assert.equal(set.code, 0, set.err);
    assert.equal(statSync(cfg.CIPHERVISOR_CONFIG).mode & 0o777, 0o600);
    const who = await s.cliWith(memoryIo({ env }), "config", "whoami");
    assert.equal(who.code, 0, who.err);
    assert.match(who.out, /\ntoken: +auditor \(tok_[0-9a-z]{26}\) from context 'lab'\n/);
    assert.ok(!who.out.includes(s.tokens.auditor));
    const ctxs = await s.cliWith(memoryIo({ env }), "config", "get-contexts");
    assert.match(ctxs.out, /\n\* +lab +http:\/\/127\.0\.0\.1:\d+ +inline\n/);
    assert.ok(!ctxs.out.includes(s.tokens.auditor));
    const viaCtx = await s.cliWith(memoryIo({ env }), "audit", "verify");
    assert.equal(viaCtx.code, 0, viaCtx.err);
    fails(await s.cliWith(memoryIo({ env }), "config", "use-context", "prod"), 4, "NOT_FOUND");
    fails(await s.cliWith(memoryIo({ env }), "vm", "list", "--context", "prod"), 4, "NOT_FOUND");
    assert.equal((await s.cliWith(memoryIo({ env }), "config", "delete-context", "lab")).code, 0);
  });

  it("prints bash, zsh and fish completion generated from the command tree", async () => {
    const bash = await s.cli(null, "completion", "bash");
    assert.equal(bash.code, 0);
    const vmVerbs = /\['vm'\]='([^']*)'/.exec(bash.out)?.[1]?.split(" ") ?? [];
    for (const verb of [
      "list",
      "get",
      "create",
      "set",
      "start",
      "stop",
      "restart",
      "migrate",
      "snapshot",
      "clone",
      "delete",
    ]) {
      assert.ok(vmVerbs.includes(verb), `vm ${verb} missing from completion`);
    }
    assert.match(bash.out, /\['vm set'\]='[^']*--sev-es[^']*--what-if[^']*'/);
    assert.match(bash.out, /complete -F _ciphervisor ciphervisor\n$/);
    assert.match((await s.cli(null, "completion", "zsh")).out, /^#compdef ciphervisor\n.*bashcompinit/s);
    assert.match((await s.cli(null, "completion", "fish")).out, /complete -c ciphervisor .* -l sev-es/);
    fails(await s.cli(null, "completion", "tcsh"), 2, "INVALID_INPUT");
  });
});

/**
 * Hardening of the CLI (issue 13): text from the server (or a database written to directly) and from the user's own
 * arguments reaches the terminal with its control characters shown, never sent; `token create --out` never leaves
 * an orphan token; `token list` tells expired tokens from active ones.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createToken } from "../control/services/tokens.ts";
import { errorLine } from "./output/format.ts";
import { fields, table, visible } from "./output/table.ts";
import { type CliServer, oneLineError, startCliServer } from "./testing/cli-server.ts";

// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point.
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

let s: CliServer & { close(): Promise<void> };
before(async () => {
  s = await startCliServer();
});
after(() => s.close());

describe("CLI output: control characters are shown, not sent", () => {
  it("escapes them in tables, fields and error lines", () => {
    assert.equal(visible("a\x1b[2Jb\x07c\nd\x7fe\u009bf"), "a\\u001b[2Jb\\u0007c\\u000ad\\u007fe\\u009bf");
    assert.equal(visible("Zoë — ✓"), "Zoë — ✓");
    const t = table([{ header: "V", value: (r: string) => r }], ["x\x1b[31m", "plain"]);
    assert.equal(t, "V\nx\\u001b[31m\nplain\n");
    assert.equal(fields([["k", "v\r\nw"]]), "k: v\\u000d\\u000aw\n");
    assert.equal(
      errorLine("bad\x1b]0;title\x07 value\nsecond line", "X\x1b"),
      "ciphervisor: bad\\u001b]0;title\\u0007 value [X\\u001b]\n",
    );
  });

  it("prints a label that got into the database anyway escaped, in vm get and vm list -o wide", async () => {
    const rome = await s.host("rome-1", "rome");
    // Written to the inventory directly: the API would refuse it (the inventory checks label keys, not values).
    await s.vm("evil-1", "none", {
      hostId: rome,
      labels: { team: "\x1b]0;owned\x07red\x1b[31m\nfake-line", plain: "ok" },
    });
    const get = await s.cli("viewer", "vm", "get", "evil-1");
    assert.equal(get.code, 0, get.err);
    assert.ok(!RAW_CONTROL.test(get.out), JSON.stringify(get.out));
    assert.match(get.out, /^labels: +plain=ok,team=\\u001b\]0;owned\\u0007red\\u001b\[31m\\u000afake-line$/m);
    assert.ok(!get.out.split("\n").some((l) => l.startsWith("fake-line")));

    const wide = await s.cli("viewer", "vm", "list", "-o", "wide", "evil-1");
    assert.equal(wide.code, 0, wide.err);
    assert.ok(!RAW_CONTROL.test(wide.out), JSON.stringify(wide.out));
    assert.equal(wide.out.trimEnd().split("\n").length, 2, wide.out);
    assert.ok(wide.out.includes("plain=ok,team=\\u001b]0;owned\\u0007red\\u001b[31m\\u000afake-line"));
    // --json is JSON: its encoding escapes them already, and a script gets the value as stored.
    const doc = JSON.parse((await s.cli("viewer", "vm", "get", "evil-1", "--json")).out) as {
      labels: Record<string, string>;
    };
    assert.equal(doc.labels.team, "\x1b]0;owned\x07red\x1b[31m\nfake-line");
  });

  it("never puts an ESC on stderr: usage errors, local errors and the server's", async () => {
    const runs = [
      await s.cli("viewer", "vm", "list", "--bo\x1b[2Jgus"),
      await s.cli("viewer", "vm", "list", "--selector", "mode=\x1b[2J"),
      await s.cli("viewer", "vm", "get", "no\x1b[2Jpe"),
      await s.cli("viewer", "vm", "list", "--selector", "name=x\x1b[2J*"),
      await s.cli("viewer", "vm\x1b[2J"),
    ];
    for (const r of runs) {
      assert.notEqual(r.code, 0);
      assert.ok(!RAW_CONTROL.test(r.err), JSON.stringify(r.err));
      assert.ok(/^ciphervisor: [^\n]+ \[[A-Z_]+\]\n$/.test(r.err), JSON.stringify(r.err));
    }
    assert.ok(oneLineError(runs[0]?.err ?? "", "USAGE"), runs[0]?.err);
    assert.ok(runs[0]?.err.includes("--bo\\u001b[2Jgus"), runs[0]?.err);
  });
});

describe("vm set --selector host=none", () => {
  it("plans exactly the unplaced VMs (the selector's hostId: null reaches the server as null)", async () => {
    const milan = await s.host("milan-1", "milan");
    await s.vm("hn-placed", "none", { hostId: milan });
    await s.vm("hn-loose-1");
    await s.vm("hn-loose-2");
    const r = await s.cli(
      "ops",
      "vm",
      "set",
      "--selector",
      "host=none,name=hn-*",
      "--sev",
      "on",
      "--what-if",
      "--json",
    );
    assert.equal(r.code, 0, r.err);
    const plan = JSON.parse(r.out) as { items: { name: string }[] };
    assert.deepEqual(plan.items.map((i) => i.name).sort(), ["hn-loose-1", "hn-loose-2"]);
  });
});

describe("token create --out: no orphan tokens", () => {
  async function tokensNamed(name: string) {
    return (await s.inventory.tokens.list({ limit: 1000 })).items.filter((t) => t.name === name);
  }

  it("refuses a path it cannot write before asking the server, and creates no token", async () => {
    const dir = join(s.home, "out-tests");
    mkdirSync(dir, { recursive: true });
    const existing = join(dir, "existing.token");
    writeFileSync(existing, "keep me\n");
    const target = join(dir, "elsewhere.token");
    const link = join(dir, "link.token");
    symlinkSync(target, link);
    const cases: [string, RegExp][] = [
      [existing, /the file exists/],
      [link, /the file exists|symlink/],
      [join(dir, "no-such-dir", "x.token"), /folder does not exist/],
      [dir, /the file exists|folder/],
    ];
    for (const [out, why] of cases) {
      const r = await s.cli("admin", "token", "create", "orphan", "--role", "viewer", "--out", out);
      assert.equal(r.code, 1, r.err);
      assert.ok(oneLineError(r.err, "IO"), r.err);
      assert.match(r.err, why);
      assert.match(r.err, /no token was created/);
      assert.equal(r.out, "");
      assert.deepEqual(await tokensNamed("orphan"), [], `an orphan token after --out ${out}`);
    }
    assert.equal(readFileSync(existing, "utf8"), "keep me\n");
    assert.ok(!existsSync(target), "wrote through the symlink");
  });

  it("removes the file it made when the server refuses the token", async () => {
    const out = join(s.home, "refused.token");
    const r = await s.cli("admin", "token", "create", "refused", "--role", "wizard", "--out", out);
    assert.equal(r.code, 2, r.err);
    assert.ok(oneLineError(r.err, "INVALID_INPUT"), r.err);
    assert.ok(!existsSync(out));
    assert.deepEqual(await tokensNamed("refused"), []);
    // And the path works once the request is right.
    const ok = await s.cli("admin", "token", "create", "refused", "--role", "viewer", "--out", out);
    assert.equal(ok.code, 0, ok.err);
    assert.match(readFileSync(out, "utf8"), /^cvt_[A-Za-z0-9_-]{43}\n$/);
    assert.equal((await tokensNamed("refused")).length, 1);
  });
});

describe("token list: STATE", () => {
  it("shows active, expired and revoked tokens as such", async () => {
    const actor = { id: null, name: "test-setup" };
    const past = new Date(Date.now() - 60_000).toISOString();
    const future = new Date(Date.now() + 3_600_000).toISOString();
    await createToken(s.inventory, actor, { name: "st-expired", roles: ["viewer"], expiresAt: past });
    await createToken(s.inventory, actor, { name: "st-later", roles: ["viewer"], expiresAt: future });
    await createToken(s.inventory, actor, { name: "st-revoked", roles: ["viewer"] });
    assert.equal((await s.cli("admin", "token", "revoke", "st-revoked")).code, 0);
    const list = await s.cli("admin", "token", "list");
    assert.equal(list.code, 0, list.err);
    const state = (name: string) =>
      list.out
        .split("\n")
        .find((l) => l.split(/ +/)[1] === name)
        ?.split(/ +/)[3];
    assert.equal(state("st-expired"), "expired");
    assert.equal(state("st-later"), "active");
    assert.equal(state("st-revoked"), "revoked");
    assert.equal(state("viewer"), "active");
  });
});

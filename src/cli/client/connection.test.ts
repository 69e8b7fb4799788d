import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import type { CiphervisorError } from "../../errors.ts";
import { configPath, readConfig, writeConfig } from "./config-file.ts";
import { DEFAULT_SERVER, normaliseServer, resolveConnection } from "./connection.ts";

const dir = mkdtempSync(join(tmpdir(), "cv-conn-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

describe("connection settings", () => {
  it("normalises server addresses and refuses the rest", () => {
    assert.equal(normaliseServer("127.0.0.1:8080", "--server"), "http://127.0.0.1:8080");
    assert.equal(normaliseServer("https://cv.example/", "--server"), "https://cv.example");
    for (const bad of ["ftp://x", "http://user:pw@x", "http://[::1"]) {
      assert.throws(
        () => normaliseServer(bad, "--server"),
        (e: CiphervisorError) => e.code === "INVALID_INPUT",
      );
    }
  });

  it("resolves flags over environment over context over the local serve", () => {
    const home = join(dir, "home1");
    const dataDir = join(dir, "data1");
    const cfg = join(dir, "config1.json");
    writeConfig(cfg, {
      currentContext: "lab",
      contexts: {
        lab: { server: "http://10.0.0.5:8080", tokenFile: file("lab.token", "cvt_lab\n") },
        prod: { server: "https://prod.example", token: "cvt_prod" },
      },
    });
    assert.equal(statSync(cfg).mode & 0o777, 0o600);
    const env = { HOME: home, CIPHERVISOR_CONFIG: cfg, CIPHERVISOR_DATA_DIR: dataDir };
    const ctx = resolveConnection({}, env);
    assert.deepEqual(
      [ctx.server, ctx.token, ctx.tokenSource],
      ["http://10.0.0.5:8080", "cvt_lab", "context 'lab'"],
    );
    const named = resolveConnection({ context: "prod" }, env);
    assert.deepEqual([named.server, named.token], ["https://prod.example", "cvt_prod"]);
    const fromEnv = resolveConnection(
      {},
      { ...env, CIPHERVISOR_SERVER: "http://e:1", CIPHERVISOR_TOKEN: "cvt_env" },
    );
    assert.deepEqual(
      [fromEnv.server, fromEnv.token, fromEnv.serverSource],
      ["http://e:1", "cvt_env", "CIPHERVISOR_SERVER"],
    );
    const flags = resolveConnection(
      { server: "f:2", token: "cvt_flag" },
      { ...env, CIPHERVISOR_TOKEN: "cvt_env" },
    );
    assert.deepEqual([flags.server, flags.token, flags.tokenSource], ["http://f:2", "cvt_flag", "--token"]);
    assert.throws(
      () => resolveConnection({ context: "nope" }, env),
      (e: CiphervisorError) => e.code === "NOT_FOUND",
    );
    assert.throws(() => resolveConnection({ timeout: "soon" }, env), /--timeout must be a duration/);
  });

  it("finds a local serve and its admin token, and never sends that token elsewhere", () => {
    const dataDir = join(dir, "data2");
    const env = { HOME: join(dir, "home2"), CIPHERVISOR_DATA_DIR: dataDir };
    const none = resolveConnection({}, env);
    assert.equal(none.server, DEFAULT_SERVER);
    assert.equal(none.token, undefined);
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(join(dataDir, "admin.token"), "cvt_admin\n", { mode: 0o600 });
    const local = resolveConnection({}, env);
    assert.deepEqual(
      [local.server, local.token, local.tokenSource],
      [DEFAULT_SERVER, "cvt_admin", join(dataDir, "admin.token")],
    );
    assert.equal(resolveConnection({ server: "http://localhost:9" }, env).token, "cvt_admin");
    assert.equal(resolveConnection({ server: "http://10.1.2.3:8080" }, env).token, undefined);
  });

  it("reports a malformed config file by name, with no stack", () => {
    const bad = file("bad.json", "{ not json");
    assert.throws(() => readConfig(bad), /config file .*bad\.json: not valid JSON/);
    assert.throws(
      () => readConfig(file("bad2.json", '{"contexts":{"x":{}}}')),
      /context 'x' needs a 'server' URL/,
    );
    assert.deepEqual(readConfig(join(dir, "absent.json")), { contexts: {} });
    assert.equal(configPath({ HOME: "/h" }), "/h/.config/ciphervisor/config.json");
    assert.equal(configPath({ XDG_CONFIG_HOME: "/x", HOME: "/h" }), "/x/ciphervisor/config.json");
  });
});

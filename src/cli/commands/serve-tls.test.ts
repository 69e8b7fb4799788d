/**
 * `serve --tls-cert/--tls-key` serves HTTPS with a real certificate (made by openssl for 127.0.0.1), and a node
 * listening beyond loopback over plain HTTP warns that tokens cross the network readable; flag errors have codes.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { get } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { memoryIo } from "../io.ts";
import { main } from "../main.ts";
import { isLoopback, runServe, type ServeOptions } from "./serve.ts";

const root = mkdtempSync(join(tmpdir(), "cv-serve-tls-"));
after(() => rmSync(root, { recursive: true, force: true }));

/** A self-signed P-256 certificate for 127.0.0.1, as an operator would make one with openssl. */
function selfSigned(): { cert: string; key: string } {
  const cert = join(root, "cert.pem");
  const key = join(root, "key.pem");
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      key,
      "-out",
      cert,
      "-days",
      "2",
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
    ],
    { stdio: "ignore" },
  );
  return { cert, key };
}

/** Runs a node until `fn` returns; `fn` gets its URL and its output so far. */
async function serving(
  options: Partial<ServeOptions> & Pick<ServeOptions, "host">,
  fn: (url: string, io: ReturnType<typeof memoryIo>) => Promise<void>,
): Promise<void> {
  const io = memoryIo();
  const stop = new AbortController();
  let url = "";
  const done = runServe(
    { dataDir: mkdtempSync(join(root, "data-")), port: 0, demo: false, logLevel: "silent", ...options },
    io,
    { signal: stop.signal, onListening: (u) => (url = u) },
  );
  try {
    while (url === "") {
      await Promise.race([done, new Promise((r) => setTimeout(r, 20))]);
    }
    await fn(url, io);
  } finally {
    stop.abort();
    await done;
  }
}

function httpsGet(url: string, ca: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    get(url, { ca }, (res) => {
      let body = "";
      res.on("data", (c) => (body += String(c)));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    }).on("error", reject);
  });
}

describe("serve over TLS", () => {
  it("serves HTTPS with --tls-cert/--tls-key and says https in its banner", async () => {
    const files = selfSigned();
    const tls = { cert: readFileSync(files.cert), key: readFileSync(files.key) };
    await serving({ host: "127.0.0.1", tls }, async (url, io) => {
      assert.match(url, /^https:\/\/127\.0\.0\.1:\d+$/);
      assert.match(io.stdout, /listening on https:\/\//);
      const ca = readFileSync(files.cert, "utf8");
      const health = await httpsGet(`${url}/healthz`, ca);
      assert.equal(health.status, 200, health.body);
      const anon = await httpsGet(`${url}/v1/vms`, ca);
      assert.equal(anon.status, 401);
      assert.equal(io.stderr, "", "no plain-HTTP warning with TLS");
    });
  });

  it("warns when listening beyond loopback over plain HTTP, not on loopback", async () => {
    await serving({ host: "0.0.0.0" }, async (_url, io) => {
      assert.match(
        io.stderr,
        /WARNING: listening on 0\.0\.0\.0 over plain HTTP: API tokens cross the network/,
      );
      assert.match(io.stderr, /--tls-cert and --tls-key/);
    });
    await serving({ host: "127.0.0.1" }, async (_url, io) => {
      assert.doesNotMatch(io.stderr, /WARNING/);
    });
    assert.ok(isLoopback("::1") && isLoopback("localhost") && isLoopback("127.0.0.2"));
    assert.ok(!isLoopback("0.0.0.0") && !isLoopback("::") && !isLoopback("10.0.0.1"));
  });

  it("refuses one TLS flag without the other, and files that are not PEM of their kind", async () => {
    const files = selfSigned();
    const run = async (...argv: string[]) => {
      const io = memoryIo();
      const code = await main(["serve", "--data-dir", join(root, "never"), ...argv], io);
      return { code, err: io.stderr };
    };
    const alone = await run("--tls-cert", files.cert);
    assert.equal(alone.code, 2);
    assert.match(alone.err, /give --tls-cert and --tls-key together \[USAGE\]/);
    const swapped = await run("--tls-cert", files.key, "--tls-key", files.cert);
    assert.equal(swapped.code, 2);
    assert.match(swapped.err, /--tls-cert .* is not a PEM file of that kind \[INVALID_INPUT\]/);
    const garbage = join(root, "garbage.pem");
    writeFileSync(garbage, "not a key");
    assert.match((await run("--tls-cert", files.cert, "--tls-key", garbage)).err, /--tls-key/);
    const missing = await run("--tls-cert", join(root, "nope.pem"), "--tls-key", files.key);
    assert.equal(missing.code, 1);
    assert.match(missing.err, /\[IO\]/);
    assert.doesNotMatch(swapped.err + missing.err, /PRIVATE KEY|\n\s+at /);
  });
});

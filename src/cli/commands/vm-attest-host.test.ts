/**
 * Step 1 of the README's attested launch, end to end through the CLI against a listening server: `host sev-info
 * HOST --out DIR` writes sevctl's six files, with the ASK-signed CEK, ASK and ARK fetched from the server's
 * emulated KDS, and `owner verify-chain --dir DIR --generation emulated` accepts them (`chain ok`) — while AMD's
 * roots refuse them, and a tampered file fails naming its link.
 */
import assert from "node:assert/strict";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ExitCode } from "../exit-codes.ts";
import { type CliResult, type CliServer, oneLineError, startCliServer } from "../testing/cli-server.ts";

let s: CliServer & { close(): Promise<void> };
let dir: string;
before(async () => {
  s = await startCliServer();
  dir = mkdtempSync(join(tmpdir(), "cv-sev-info-cli-"));
});
after(async () => {
  await s.close();
  rmSync(dir, { recursive: true, force: true });
});

const FILES = ["ark", "ask", "cek", "oca", "pek", "pdh"] as const;

function ok(r: CliResult): string {
  assert.equal(r.code, 0, `exit ${r.code}: ${r.err}`);
  return r.out;
}

/** A copy of `from` with one byte of `file` flipped at `offset`. */
function tampered(from: string, name: string, file: string, offset: number): string {
  const to = join(dir, name);
  cpSync(from, to, { recursive: true });
  const b = readFileSync(join(to, file));
  b[offset] = (b[offset] ?? 0) ^ 0x01;
  writeFileSync(join(to, file), b);
  return to;
}

describe("ciphervisor host sev-info --out, then owner verify-chain", () => {
  for (const generation of ["naples", "rome", "milan", "genoa"] as const) {
    it(`${generation}: writes the whole chain from the KDS, and verify-chain prints 'chain ok' under the emulated root`, async () => {
      await s.host(`${generation}-1`, generation);
      const out = join(dir, generation);
      const r = await s.cli("attestation-reader", "host", "sev-info", `${generation}-1`, "--out", out);
      ok(r);
      for (const f of FILES) {
        assert.ok(existsSync(join(out, `${f}.cert`)), `${f}.cert written`);
        assert.match(r.err, new RegExp(`wrote .*${f}\\.cert`));
      }
      const info = JSON.parse(
        ok(await s.cli("attestation-reader", "host", "sev-info", `${generation}-1`, "--json")),
      );
      assert.match(ok(r), new RegExp(`kds-cek: +${s.url}/cek/id/${info.cpu0Id}`));
      // cek.cert is what the KDS serves for cpu0Id, not the platform's own (unsigned) CEK.
      const served = new Uint8Array(await (await fetch(`${s.url}${info.kds.cek}`)).arrayBuffer());
      assert.deepEqual(new Uint8Array(readFileSync(join(out, "cek.cert"))), served);
      assert.notDeepEqual(served, new Uint8Array(Buffer.from(info.cek, "base64")));

      const v = await s.cli(null, "owner", "verify-chain", "--dir", out, "--generation", "emulated");
      assert.equal(v.code, 0, v.err);
      assert.equal(v.out, "chain ok\n");
      // AMD's roots (the default) do not take an emulated chain.
      const amd = await s.cli(null, "owner", "verify-chain", "--dir", out);
      assert.equal(amd.code, ExitCode.ERROR);
      assert.ok(oneLineError(amd.err, "CHAIN_INVALID"), amd.err);
    });
  }

  it("a tampered file fails verify-chain with one line naming the link", async () => {
    await s.host("rome-tamper", "rome");
    const good = join(dir, "good");
    ok(await s.cli("attestation-reader", "host", "sev-info", "rome-tamper", "--out", good));
    const cases: [string, number, string][] = [
      ["cek.cert", 0x41c + 10, "ASK → CEK"], // the ASK's signature
      ["ask.cert", 0x40 + 8, "ARK → ASK"], // the ASK's modulus
      ["pek.cert", 0x624 + 3, "CEK → PEK"], // the CEK's signature on the PEK
      ["pdh.cert", 0x41c + 5, "PEK → PDH"],
    ];
    for (const [file, offset, link] of cases) {
      const bad = tampered(good, `bad-${file}`, file, offset);
      const r = await s.cli(null, "owner", "verify-chain", "--dir", bad, "--generation", "emulated");
      assert.equal(r.code, ExitCode.ERROR, `${file}: ${r.err}`);
      assert.ok(oneLineError(r.err, "CHAIN_INVALID"), r.err);
      assert.ok(r.err.includes(link), `${file}: '${r.err.trim()}' names ${link}`);
    }
  });

  it("sev-info stays an attestation read: another role is refused before anything is written", async () => {
    await s.host("rome-rbac-out", "rome");
    const out = join(dir, "denied");
    const r = await s.cli("operator", "host", "sev-info", "rome-rbac-out", "--out", out);
    assert.equal(r.code, ExitCode.AUTH);
    assert.ok(oneLineError(r.err, "FORBIDDEN"), r.err);
    assert.equal(existsSync(out), false);
  });
});

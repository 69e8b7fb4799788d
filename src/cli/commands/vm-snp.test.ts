/**
 * SEV-SNP from the command line against a listening API: `host add --es-mode snp`, `vm create --sev-snp on` with
 * QEMU's launch options (`--host-data`, `--id-block`, `--id-auth`), `vm attestation-report`, and the owner's
 * `owner id-block` signing the digest the first report showed, so that a second VM launches only because the
 * firmware accepted the owner's ID block — and its report names the owner's key. Bad keys and sizes are one-line
 * errors with their codes.
 */
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type CliResult, type CliServer, oneLineError, startCliServer } from "../testing/cli-server.ts";

let s: CliServer & { close(): Promise<void> };
let dir: string;
before(async () => {
  s = await startCliServer();
  dir = mkdtempSync(join(tmpdir(), "cv-snp-cli-"));
});
after(async () => {
  await s.close();
  rmSync(dir, { recursive: true, force: true });
});

function ok(r: CliResult): string {
  assert.equal(r.code, 0, `exit ${r.code}: ${r.err}`);
  return r.out;
}

function fails(r: CliResult, exit: number, code: string, text: RegExp): void {
  assert.equal(r.code, exit, `exit code (stderr: ${r.err})`);
  assert.ok(oneLineError(r.err, code), `one-line ${code} error expected, got: ${r.err}`);
  assert.match(r.err, text);
}

function keyFile(name: string, curve: string): string {
  const { privateKey } = generateKeyPairSync("ec", { namedCurve: curve });
  const path = join(dir, name);
  writeFileSync(path, privateKey.export({ format: "pem", type: "pkcs8" }));
  return path;
}

interface Report {
  fields: { measurement: string; hostData: string; idKeyDigest: string; authorKeyDigest: string };
}

describe("SEV-SNP from the command line", () => {
  it("host data and an owner-signed ID block reach the firmware, and the reports say so", async () => {
    ok(
      await s.cli("admin", "host", "add", "--name", "milan-snp", "--generation", "milan", "--es-mode", "snp"),
    );
    const hostData = Buffer.alloc(32, 0xa5).toString("base64");
    const create = (name: string, ...extra: string[]) =>
      s.cli(
        "ops",
        "vm",
        "create",
        name,
        "--guest-os",
        "linux-5.19",
        "--sev-snp",
        "on",
        "--host",
        "milan-snp",
        ...extra,
      );
    ok(await create("enclave-1", "--host-data", hostData));
    ok(await s.cli("operator", "vm", "start", "enclave-1"));
    const report = async (name: string) =>
      JSON.parse(ok(await s.cli("attestation-reader", "vm", "attestation-report", name, "--json"))) as Report;
    const first = await report("enclave-1");
    assert.equal(first.fields.hostData, "a5".repeat(32));

    const idKey = keyFile("id.pem", "secp384r1");
    const authorKey = keyFile("author.pem", "secp384r1");
    const signed = JSON.parse(
      ok(
        await s.cli(
          null,
          "owner",
          "id-block",
          "--measurement",
          first.fields.measurement,
          "--id-key",
          idKey,
          "--author-key",
          authorKey,
          "--json",
        ),
      ),
    ) as { idBlock: string; idAuth: string; idKeyDigest: string; authorKeyDigest: string };
    ok(
      await create(
        "enclave-2",
        "--id-block",
        signed.idBlock,
        "--id-auth",
        signed.idAuth,
        "--author-key-enabled",
      ),
    );
    ok(await s.cli("operator", "vm", "start", "enclave-2"));
    const second = await report("enclave-2");
    assert.equal(second.fields.measurement, first.fields.measurement);
    assert.equal(second.fields.idKeyDigest, signed.idKeyDigest);
    assert.equal(second.fields.authorKeyDigest, signed.authorKeyDigest);
    assert.notEqual(signed.idKeyDigest, signed.authorKeyDigest);
    const text = ok(await s.cli("attestation-reader", "vm", "attestation-report", "enclave-2"));
    assert.match(text, new RegExp(`id-key-digest:\\s+${signed.idKeyDigest}`));

    // The same ID block without the author key flag: the firmware reads id-auth differently and refuses nothing it
    // should not — the ID key still signs the block, so the launch goes on and the report has no author key.
    ok(await create("enclave-3", "--id-block", signed.idBlock, "--id-auth", signed.idAuth));
    ok(await s.cli("operator", "vm", "start", "enclave-3"));
    assert.equal((await report("enclave-3")).fields.authorKeyDigest, "00".repeat(48));

    // An ID block for another launch digest: the VM does not start, and the error says why.
    const other = `${first.fields.measurement.slice(0, -2)}${first.fields.measurement.endsWith("00") ? "01" : "00"}`;
    const wrong = JSON.parse(
      ok(await s.cli(null, "owner", "id-block", "--measurement", other, "--id-key", idKey, "--json")),
    ) as { idBlock: string; idAuth: string };
    ok(await create("enclave-4", "--id-block", wrong.idBlock, "--id-auth", wrong.idAuth));
    const refused = await s.cli("operator", "vm", "start", "enclave-4");
    assert.notEqual(refused.code, 0, refused.err);
    assert.match(refused.err, /launch digest is not this launch's measurement/);
  });

  it("refuses keys and values the SNP structures cannot carry, in one line with a code", async () => {
    const m = "ab".repeat(48);
    fails(
      await s.cli(
        null,
        "owner",
        "id-block",
        "--measurement",
        m,
        "--id-key",
        keyFile("p256.pem", "prime256v1"),
      ),
      2,
      "INVALID_INPUT",
      /not an ECDSA P-384 key/,
    );
    const junk = join(dir, "junk.pem");
    writeFileSync(junk, "not a key");
    fails(
      await s.cli(null, "owner", "id-block", "--measurement", m, "--id-key", junk),
      2,
      "INVALID_INPUT",
      /not a PEM or DER/,
    );
    fails(
      await s.cli(
        null,
        "owner",
        "id-block",
        "--measurement",
        "ab",
        "--id-key",
        keyFile("k.pem", "secp384r1"),
      ),
      2,
      "INVALID_INPUT",
      /--measurement/,
    );
    const short = Buffer.alloc(31).toString("base64");
    fails(
      await s.cli(
        "ops",
        "vm",
        "create",
        "short",
        "--guest-os",
        "linux-5.19",
        "--sev-snp",
        "on",
        "--host-data",
        short,
      ),
      2,
      "INVALID_INPUT",
      /spec\.snp\.hostData/,
    );
    fails(
      await s.cli(
        "ops",
        "vm",
        "create",
        "not-snp",
        "--guest-os",
        "linux-5.19",
        "--sev-es",
        "on",
        "--host-data",
        short,
      ),
      2,
      "INVALID_INPUT",
      /spec\.snp/,
    );
  });
});

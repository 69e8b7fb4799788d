import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { emulatedChain, fixture, fixturePath } from "../../../test/certs/support.ts";
import { encodeSnpTcb } from "../../certs/snp-report.ts";
import { concat, toHex } from "../../lib/bytes.ts";
import { EmulatedKds } from "../../sev/manufacturer/emulated-kds.ts";
import { EMULATED_SNP_SERIAL, emulatedSnpCrl } from "../../sev/manufacturer/emulated-snp.ts";
import { emulatedChipReport } from "../../sev/snp/report-signer.ts";
import { memoryIo } from "../io.ts";
import { main } from "../main.ts";

const rome = fixturePath("rome");
const naples = fixturePath("naples");
const snp = fixturePath("milan-snp");
const tmp = mkdtempSync(join(tmpdir(), "ciphervisor-owner-chain-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

async function run(...argv: string[]) {
  const io = memoryIo();
  const code = await main(argv, io);
  return { code, out: io.stdout, err: io.stderr };
}

/** One line on stderr, in the CLI's error shape, with no stack trace. */
function assertOneLineError(err: string, code: string, contains: string | RegExp): void {
  assert.match(err, new RegExp(`^ciphervisor: .*\\[${code}\\]\\n$`));
  assert.equal(err.split("\n").length, 2, err);
  assert.ok(!/\bat .*\.ts:\d+/.test(err), `stack trace in: ${err}`);
  if (typeof contains === "string") assert.ok(err.includes(contains), `"${err}" lacks "${contains}"`);
  else assert.match(err, contains);
}

function writeDir(name: string, files: Record<string, Uint8Array>): string {
  const dir = join(tmp, name);
  mkdirSync(dir);
  for (const [n, b] of Object.entries(files)) writeFileSync(join(dir, n), b);
  return dir;
}

describe("ciphervisor owner verify-chain", () => {
  it("prints 'chain ok' for the real Rome and Naples chains (generation inferred from the ARK key id)", async () => {
    for (const dir of [rome, naples]) {
      const r = await run("owner", "verify-chain", "--dir", dir);
      assert.equal(r.err, "");
      assert.equal(r.code, 0);
      assert.equal(r.out, "chain ok\n");
    }
    const explicit = await run("owner", "verify-chain", "--dir", rome, "--generation", "rome", "--verbose");
    assert.equal(explicit.code, 0);
    assert.match(explicit.out, /^chain ok\nroot: AMD rome root/);
    assert.match(explicit.out, /PEK → PDH {2}verified/);
  });

  it("accepts single-file flags, using the built-in ARK/ASK of the named generation", async () => {
    const f = (n: string) => join(rome, `${n}.cert`);
    const r = await run(
      "owner",
      "verify-chain",
      "--cek",
      f("cek"),
      "--oca",
      f("oca"),
      "--pek",
      f("pek"),
      "--pdh",
      f("pdh"),
      "--generation",
      "rome",
    );
    assert.equal(r.out, "chain ok\n", r.err);
    const none = await run(
      "owner",
      "verify-chain",
      "--cek",
      f("cek"),
      "--oca",
      f("oca"),
      "--pek",
      f("pek"),
      "--pdh",
      f("pdh"),
    );
    assert.equal(none.code, 2);
    assertOneLineError(none.err, "INVALID_INPUT", "pass --generation");
  });

  it("fails a broken chain with exit 1 and one line naming the link", async () => {
    const r = await run("owner", "verify-chain", "--dir", rome, "--cek", join(naples, "cek.cert"));
    assert.equal(r.code, 1);
    assert.equal(r.out, "");
    assertOneLineError(r.err, "CHAIN_INVALID", /^ciphervisor: ASK → CEK: /);

    const pdh = fixture("rome/pdh.cert").slice();
    pdh[4]! ^= 1;
    const dir = writeDir("tampered", { ...filesOf(rome), "pdh.cert": pdh });
    const t = await run("owner", "verify-chain", "--dir", dir);
    assert.equal(t.code, 1);
    assertOneLineError(t.err, "CHAIN_INVALID", "PEK → PDH: signature does not verify");

    const wrongRoot = await run("owner", "verify-chain", "--dir", naples, "--generation", "rome");
    assert.equal(wrongRoot.code, 1);
    assertOneLineError(wrongRoot.err, "CHAIN_INVALID", /^ciphervisor: ARK: .*AMD's naples root/);
  });

  it("reports a missing file, a truncated certificate and bad flags as one line, never a stack trace", async () => {
    const missing = await run("owner", "verify-chain", "--dir", rome, "--pdh", join(tmp, "nope.cert"));
    assert.equal(missing.code, 1);
    assertOneLineError(missing.err, "IO", "--pdh");
    assertOneLineError(missing.err, "IO", "no such file");

    const noDir = await run("owner", "verify-chain", "--dir", join(tmp, "no-such-dir"));
    assert.equal(noDir.code, 1);
    assertOneLineError(noDir.err, "IO", "no such directory");

    const short = join(tmp, "short.cert");
    writeFileSync(short, fixture("rome/pek.cert").subarray(0, 1000));
    const truncated = await run("owner", "verify-chain", "--dir", rome, "--pek", short);
    assert.equal(truncated.code, 1);
    assertOneLineError(truncated.err, "CERT_INVALID", "CEK → PEK: ");
    assertOneLineError(truncated.err, "CERT_INVALID", "is 1000");

    const bad = await run("owner", "verify-chain", "--dir", rome, "--generation", "sapphire");
    assert.equal(bad.code, 2);
    assertOneLineError(bad.err, "INVALID_INPUT", "--generation must be one of");
  });

  it("--json prints parseable per-link results, for a good and a broken chain", async () => {
    const ok = await run("owner", "verify-chain", "--dir", rome, "--json");
    assert.equal(ok.code, 0);
    const body = JSON.parse(ok.out) as {
      ok: boolean;
      root: { generation: string };
      links: { link: string; ok: boolean }[];
      certificates: Record<string, { role: string }>;
    };
    assert.equal(body.ok, true);
    assert.equal(body.root.generation, "rome");
    assert.equal(body.links.length, 7);
    assert.equal(body.certificates["pdh"]?.role, "PDH");

    const broken = await run(
      "owner",
      "verify-chain",
      "--dir",
      rome,
      "--cek",
      join(naples, "cek.cert"),
      "--json",
    );
    assert.equal(broken.code, 1);
    const b = JSON.parse(broken.out) as { ok: boolean; links: { link: string; ok: boolean }[] };
    assert.equal(b.ok, false);
    assert.deepEqual(
      b.links.filter((l) => !l.ok).map((l) => l.link),
      ["ASK → CEK", "CEK → PEK"], // a foreign CEK neither is ASK-signed nor signed this PEK
    );
    assertOneLineError(broken.err, "CHAIN_INVALID", "ASK → CEK");
  });

  it("accepts the unsigned Naples ARK only as the pinned Naples root", async () => {
    const bad = join(naples, "ark.cert.bad");
    assert.equal((await run("owner", "verify-chain", "--dir", naples, "--ark", bad)).out, "chain ok\n");
    const refused = await run(
      "owner",
      "verify-chain",
      "--dir",
      naples,
      "--ark",
      bad,
      "--generation",
      "genoa",
    );
    assert.equal(refused.code, 1);
    assertOneLineError(refused.err, "CHAIN_INVALID", /^ciphervisor: ARK: /);
  });

  it("reads sevctl's concatenated chain and AMD's ASK ‖ ARK bundle", async () => {
    const f = filesOf(rome);
    const full = join(tmp, "full-chain.bin");
    writeFileSync(
      full,
      concat(f["pdh.cert"]!, f["pek.cert"]!, f["oca.cert"]!, f["cek.cert"]!, f["ask.cert"]!, f["ark.cert"]!),
    );
    assert.equal((await run("owner", "verify-chain", "--chain", full)).out, "chain ok\n");
    const sevOnly = join(tmp, "sev-chain.bin");
    writeFileSync(sevOnly, concat(f["pdh.cert"]!, f["pek.cert"]!, f["oca.cert"]!, f["cek.cert"]!));
    const caFile = join(tmp, "ask_ark_rome.cert");
    writeFileSync(caFile, concat(f["ask.cert"]!, f["ark.cert"]!));
    assert.equal((await run("owner", "verify-chain", "--chain", sevOnly, "--ca", caFile)).out, "chain ok\n");
    const both = await run("owner", "verify-chain", "--chain", full, "--dir", rome);
    assert.equal(both.code, 2);
    assertOneLineError(both.err, "INVALID_INPUT", "either --dir or --chain");
  });

  it("trusts a chain signed by the emulated ASK only with --generation emulated", async () => {
    const chain = emulatedChain("rome", "cli");
    const dir = writeDir("emulated", {
      "ark.cert": chain.ark,
      "ask.cert": chain.ask,
      "cek.cert": chain.cek,
      "oca.cert": chain.oca,
      "pek.cert": chain.pek,
      "pdh.cert": chain.pdh,
    });
    const ok = await run("owner", "verify-chain", "--dir", dir, "--generation", "emulated");
    assert.equal(ok.out, "chain ok\n", ok.err);
    const refused = await run("owner", "verify-chain", "--dir", dir);
    assert.equal(refused.code, 1);
    assertOneLineError(refused.err, "CHAIN_INVALID", "emulated root");
    const amdRome = await run("owner", "verify-chain", "--dir", dir, "--generation", "rome");
    assert.equal(amdRome.code, 1);
  });
});

describe("ciphervisor owner verify-report", () => {
  const report = join(snp, "report_milan.hex");
  const vcek = join(snp, "vcek_milan.der");

  it("verifies the real Milan report (hex or binary) with the PEM chain or the built-in roots", async () => {
    const withChain = await run(
      "owner",
      "verify-report",
      "--report",
      report,
      "--vcek",
      vcek,
      "--chain",
      join(snp, "cert_chain_milan"),
    );
    assert.equal(withChain.code, 0, withChain.err);
    assert.match(withChain.out, /^report ok\n/);
    assert.match(withChain.out, /measurement {2}7a1e5c26/);
    const binary = join(tmp, "report.bin");
    writeFileSync(
      binary,
      Buffer.from(new TextDecoder().decode(fixture("milan-snp/report_milan.hex")), "hex"),
    );
    const builtin = await run("owner", "verify-report", "--report", binary, "--vcek", vcek);
    assert.equal(builtin.code, 0, builtin.err);
    assert.match(builtin.out, /built-in AMD roots/);
  });

  it("--json parses", async () => {
    const r = await run("owner", "verify-report", "--report", report, "--vcek", vcek, "--json");
    assert.equal(r.code, 0);
    const body = JSON.parse(r.out) as {
      ok: boolean;
      report: { policy: string; reportedTcb: { snp: number } };
    };
    assert.equal(body.ok, true);
    assert.equal(body.report.policy, "0x30000");
    assert.equal(body.report.reportedTcb.snp, 8);
  });

  it("fails a tampered report, a wrong-size report and a missing VCEK with one line", async () => {
    const bytes = Buffer.from(new TextDecoder().decode(fixture("milan-snp/report_milan.hex")), "hex");
    bytes[0x90]! ^= 1;
    const tampered = join(tmp, "tampered-report.bin");
    writeFileSync(tampered, bytes);
    const t = await run("owner", "verify-report", "--report", tampered, "--vcek", vcek);
    assert.equal(t.code, 1);
    assertOneLineError(t.err, "REPORT_INVALID", "VCEK → report: signature does not verify");

    const short = join(tmp, "short-report.bin");
    writeFileSync(short, bytes.subarray(0, 100));
    const s = await run("owner", "verify-report", "--report", short, "--vcek", vcek);
    assert.equal(s.code, 1);
    assertOneLineError(s.err, "REPORT_INVALID", "1184");

    const m = await run("owner", "verify-report", "--report", report, "--vcek", join(tmp, "missing.der"));
    assert.equal(m.code, 1);
    assertOneLineError(m.err, "IO", "--vcek");

    const notCert = await run("owner", "verify-report", "--report", report, "--vcek", join(rome, "pek.cert"));
    assert.equal(notCert.code, 1);
    assertOneLineError(notCert.err, "CERT_INVALID", "VCEK");
  });
});

function filesOf(dir: string): Record<string, Uint8Array> {
  const out: Record<string, Uint8Array> = {};
  for (const n of ["ark", "ask", "cek", "oca", "pek", "pdh"])
    out[`${n}.cert`] = fixture(`${dir.split("/").pop()}/${n}.cert`);
  return out;
}

describe("ciphervisor owner verify-report with a policy and the emulated root", () => {
  const chipId = new Uint8Array(64).fill(0xc3);
  const kds = new EmulatedKds(() => "milan");
  const spl = { bootloader: 3, tee: 0, snp: 8, microcode: 115 };
  const tcb = encodeSnpTcb(spl, "milan");
  const measurement = new Uint8Array(48).fill(0x11);
  const file = (name: string, bytes: Uint8Array | string) => {
    const p = join(tmp, name);
    writeFileSync(p, bytes);
    return p;
  };
  const report = file(
    "emulated-report.bin",
    emulatedChipReport("milan", chipId, {
      version: 2,
      policy: 0x30000n,
      currentTcb: tcb,
      reportedTcb: tcb,
      committedTcb: tcb,
      launchTcb: tcb,
      measurement,
    }),
  );
  const vcek = file(
    "emulated-vcek.der",
    kds.vcek("Milan", toHex(chipId), { blSPL: "3", teeSPL: "0", snpSPL: "8", ucodeSPL: "115" }),
  );
  const chain = file("emulated-chain.pem", kds.vcekCertChain("Milan"));
  const args = ["owner", "verify-report", "--report", report, "--vcek", vcek, "--chain", chain];

  it("verifies under --trust emulated with the expected measurement and minimum TCB, and not under AMD's roots", async () => {
    const ok = await run(
      ...args,
      "--trust",
      "emulated",
      "--measurement",
      toHex(measurement),
      "--min-tcb",
      "bl=3,snp=8,ucode=115",
      "--crl",
      file("crl.der", kds.vcekCrl("Milan")),
    );
    assert.equal(ok.code, 0, ok.err);
    assert.match(ok.out, /^report ok\n/);
    const amd = await run(...args);
    assert.equal(amd.code, 1);
    assertOneLineError(amd.err, "CHAIN_INVALID", "ARK: ");
  });

  it("names the failing policy check, and refuses malformed policy flags with exit 2", async () => {
    const low = await run(...args, "--trust", "emulated", "--min-tcb", "snp=9");
    assert.equal(low.code, 1);
    assertOneLineError(low.err, "REPORT_INVALID", "minimum TCB: ");
    const wrong = await run(...args, "--trust", "emulated", "--measurement", "00".repeat(48));
    assertOneLineError(wrong.err, "REPORT_INVALID", "measurement: ");
    const revoked = await run(
      ...args,
      "--trust",
      "emulated",
      "--crl",
      file("revoking.der", emulatedSnpCrl("milan", [EMULATED_SNP_SERIAL.ask])),
    );
    assertOneLineError(revoked.err, "CHAIN_INVALID", "ASK revocation: ");
    const json = await run(...args, "--trust", "emulated", "--vmpl", "1", "--json");
    assert.equal(json.code, 1);
    const body = JSON.parse(json.out) as { trust: string; links: { link: string; ok: boolean }[] };
    assert.equal(body.trust, "emulated");
    assert.deepEqual(
      body.links.filter((l) => !l.ok).map((l) => l.link),
      ["vmpl"],
    );
    for (const bad of [
      ["--min-tcb", "foo=1"],
      ["--min-tcb", "snp=300"],
      ["--vmpl", "4"],
      ["--trust", "intel"],
      ["--measurement", "00"],
    ]) {
      const r = await run(...args, ...bad);
      assert.equal(r.code, 2, `${bad.join(" ")}: ${r.err}`);
      assertOneLineError(r.err, "INVALID_INPUT", bad[0]!);
    }
  });
});

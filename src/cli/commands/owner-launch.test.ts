import assert from "node:assert/strict";
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { Algo, encodeSevCert, parseSevCert, Usage } from "../../certs/sev-cert.ts";
import { ecdh, generateEcKeyPair } from "../../crypto/ec.ts";
import { seededRandom } from "../../crypto/random.ts";
import { parseSession, unwrapSession } from "../../crypto/session.ts";
import { fromHex, toHex } from "../../lib/bytes.ts";
import { memoryIo } from "../io.ts";
import { main } from "../main.ts";

const fx = (p: string) => fileURLToPath(new URL(`../../../test/fixtures/${p}`, import.meta.url));
const SEVCTL_OVMF = fx("measure/sevctl/OVMF.amdsev.fd_trimmed_edk2-ovmf-20220126gitbb1bba3d77-4.el9");
const SNP_OVMF = fx("measure/sev-snp-measure/ovmf_AmdSev_suffix.bin");
const MEASURE_TIK = fx("measure/sevctl/tik1.bin");
const tmp = mkdtempSync(join(tmpdir(), "cv-owner-launch-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

async function run(...argv: string[]) {
  const io = memoryIo();
  const code = await main(argv, io);
  return { code, out: io.stdout, err: io.stderr };
}

/** A failed run: the exit code, one line on stderr with the error code, no stack trace. */
async function fails(code: number, errCode: string | RegExp, ...argv: string[]) {
  const r = await run(...argv);
  assert.equal(r.code, code, `exit code for ${argv.join(" ")}: ${r.err}`);
  assert.equal(r.out, "");
  assert.equal(r.err.trim().split("\n").length, 1, r.err);
  assert.doesNotMatch(r.err, /\n\s+at /);
  if (typeof errCode === "string") assert.match(r.err, new RegExp(`\\[${errCode}\\]`));
  else assert.match(r.err, errCode);
  return r.err;
}

const sevctlMeasure = [
  "--api-major",
  "0x01",
  "--api-minor",
  "40",
  "--build",
  "40",
  "--mnonce",
  "c313fab511c216b1505b1b2ea9903c40",
];
const b64 = (hex: string) => Buffer.from(fromHex(hex)).toString("base64");

describe("ciphervisor owner measure", () => {
  it("prints the launch digest of an OVMF image, and of OVMF plus kernel hashes", async () => {
    const r = await run("owner", "measure", "--firmware", SEVCTL_OVMF);
    assert.deepEqual(r, {
      code: 0,
      out: "2f6fc6065f4abc131eb4fb2b5090a542636eae84a94c0db0fdd5f405cb372ff5\n",
      err: "",
    });
    const k = await run(
      "owner",
      "measure",
      "--firmware",
      SEVCTL_OVMF,
      "--kernel",
      fx("measure/sevctl/vmlinuz-fake"),
      "--initrd",
      fx("measure/sevctl/initrd-fake"),
      "--append",
      "foo bar baz fake kernel=cmdline",
      "--tik",
      MEASURE_TIK,
      "--policy",
      "0x03",
      ...sevctlMeasure,
      "--json",
    );
    assert.equal(k.code, 0, k.err);
    assert.deepEqual(JSON.parse(k.out), {
      launchDigest: "4b47fec6f851487c33714c8a00a832a1b705ad0a7cac4a647388eccfa9f0c570",
      measurement: "8776ae61b5909d55bb1062d63781dff52374a0460c3d4dac2b86cb9de7d63f0b",
    });
  });

  it("prints the measurement for a given launch digest (sevctl vector 1)", async () => {
    const r = await run(
      "owner",
      "measure",
      "--launch-digest",
      "c64bd101fc9a4a2ce0a27c408d9200911f139a895469b04a40a6fa2890830d23",
      "--tik",
      MEASURE_TIK,
      "--policy",
      "3",
      ...sevctlMeasure,
    );
    assert.deepEqual(r, {
      code: 0,
      out: "96cc1bc56c48f60724c9ad7a250bdd16da5898d3b86fede29c03e9aac828048e\n",
      err: "",
    });
  });

  it("computes SEV-ES digests: mode from the policy's ES bit, vCPU model, VMM profile", async () => {
    const es = await run(
      "owner",
      "measure",
      "--firmware",
      SEVCTL_OVMF,
      "--vcpus",
      "4",
      "--vcpu-type",
      "EPYC-Milan",
      "--vmm",
      "qemu-legacy",
      "--tik",
      MEASURE_TIK,
      "--policy",
      "0x05",
      ...sevctlMeasure,
    );
    assert.equal(es.code, 0, es.err);
    assert.equal(
      es.out,
      `${Buffer.from("tsLCcIIPrm3TWcyaOFfvUVEjRLGQzEnGlznRioMOCU4=", "base64").toString("hex")}\n`,
    );
    const null0 = join(tmp, "empty");
    writeFileSync(null0, new Uint8Array());
    const snp = await run(
      "owner",
      "measure",
      "--firmware",
      SNP_OVMF,
      "--kernel",
      null0,
      "--initrd",
      null0,
      "--append",
      "",
      "--mode",
      "sev-es",
      "--vcpus",
      "4",
      "--vcpu-sig",
      "0x800f12",
    );
    assert.equal(snp.out, "0dccbcaba8e90b261bd0d2e1863a2f9da714768b7b2a19363cd6ae35aa90de91\n", snp.err);
  });

  it("refuses bad input with one line and a usage or I/O exit code", async () => {
    await fails(2, "INVALID_INPUT", "owner", "measure", "--launch-digest", "not-hex");
    await fails(2, /32 bytes/, "owner", "measure", "--launch-digest", "00ff");
    await fails(
      2,
      "USAGE",
      "owner",
      "measure",
      "--launch-digest",
      "00".repeat(32),
      "--firmware",
      SEVCTL_OVMF,
    );
    await fails(2, "USAGE", "owner", "measure");
    await fails(1, "IO", "owner", "measure", "--firmware", join(tmp, "missing.fd"));
    await fails(
      2,
      "USAGE",
      "owner",
      "measure",
      "--firmware",
      SEVCTL_OVMF,
      "--vcpu-type",
      "EPYC",
      "--vcpu-sig",
      "1",
      "--mode",
      "sev-es",
    );
    await fails(2, "USAGE", "owner", "measure", "--firmware", SEVCTL_OVMF, "--mode", "sev-es");
    await fails(2, "USAGE", "owner", "measure", "--firmware", SEVCTL_OVMF, "--vcpus", "2");
    await fails(2, "USAGE", "owner", "measure", "--firmware", SEVCTL_OVMF, "--append", "x");
    await fails(
      2,
      /unknown vCPU type/,
      "owner",
      "measure",
      "--firmware",
      SEVCTL_OVMF,
      "--mode",
      "sev-es",
      "--vcpu-type",
      "i486",
    );
    await fails(
      2,
      /contradicts --policy 0x1/,
      "owner",
      "measure",
      "--firmware",
      SEVCTL_OVMF,
      "--mode",
      "sev-es",
      "--policy",
      "1",
    );
    await fails(
      2,
      /--mode must be one of sev, sev-es, snp/,
      "owner",
      "measure",
      "--firmware",
      SEVCTL_OVMF,
      "--mode",
      "tdx",
    );
    await fails(
      2,
      /missing --api-minor, --build, --mnonce, --policy/,
      "owner",
      "measure",
      "--firmware",
      SEVCTL_OVMF,
      "--tik",
      MEASURE_TIK,
      "--api-major",
      "1",
    );
    await fails(
      2,
      /holds 4096 bytes; a TIK file is 16 raw bytes/,
      "owner",
      "measure",
      "--launch-digest",
      "00".repeat(32),
      "--tik",
      SEVCTL_OVMF,
      "--policy",
      "0",
      ...sevctlMeasure,
    );
    await fails(2, /unknown option/, "owner", "measure", "--firmwar", SEVCTL_OVMF);
    // A firmware without a footer table is fine for SEV but not for SEV-ES.
    const plain = join(tmp, "plain.fd");
    writeFileSync(plain, new Uint8Array(4096));
    assert.equal((await run("owner", "measure", "--firmware", plain)).code, 0);
    await fails(
      2,
      /plain SEV only/,
      "owner",
      "measure",
      "--firmware",
      plain,
      "--mode",
      "sev-es",
      "--vcpu-type",
      "EPYC-v4",
    );
  });
});

describe("ciphervisor owner verify-measurement", () => {
  const blob = b64(
    "96cc1bc56c48f60724c9ad7a250bdd16da5898d3b86fede29c03e9aac828048ec313fab511c216b1505b1b2ea9903c40",
  );
  const args = (build: string) => [
    "owner",
    "verify-measurement",
    "--tik",
    MEASURE_TIK,
    "--launch-measure-blob",
    blob,
    "--api-major",
    "1",
    "--api-minor",
    "40",
    "--build",
    build,
    "--policy",
    "0x03",
  ];

  it("exits 0 with a match line when the measurement matches", async () => {
    const r = await run(
      ...args("40"),
      "--launch-digest",
      "c64bd101fc9a4a2ce0a27c408d9200911f139a895469b04a40a6fa2890830d23",
    );
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^launch measurement matches: 96cc1bc5/);
    const img = await run(...args("40"), "--firmware", SEVCTL_OVMF, "--json");
    assert.equal(img.code, 1); // the blob is for another launch digest
    const fromImage = b64(
      "a0c0dec08a2e252a5ba4d4478fb324de9d3c1f674f65076c64c535e2a2329819c313fab511c216b1505b1b2ea9903c40",
    );
    const ok = await run(
      ...args("40").map((a) => (a === blob ? fromImage : a)),
      "--firmware",
      SEVCTL_OVMF,
      "--json",
    );
    assert.equal(ok.code, 0, ok.err);
    assert.deepEqual(JSON.parse(ok.out), {
      match: true,
      measurement: "a0c0dec08a2e252a5ba4d4478fb324de9d3c1f674f65076c64c535e2a2329819",
      launchDigest: "2f6fc6065f4abc131eb4fb2b5090a542636eae84a94c0db0fdd5f405cb372ff5",
    });
  });

  it("exits 1 with MEASUREMENT_MISMATCH otherwise, and 2 for bad input", async () => {
    const ld = ["--launch-digest", "c64bd101fc9a4a2ce0a27c408d9200911f139a895469b04a40a6fa2890830d23"];
    await fails(1, "MEASUREMENT_MISMATCH", ...args("41"), ...ld);
    await fails(2, /not base64/, ...args("40").map((a) => (a === blob ? "!!" : a)), ...ld);
    await fails(2, /48 bytes/, ...args("40").map((a) => (a === blob ? b64("00") : a)), ...ld);
    await fails(2, /--build must be an integer in 0\.\.255/, ...args("256"), ...ld);
    await fails(2, /required option '--tik/, "owner", "verify-measurement", "--launch-measure-blob", blob);
  });
});

describe("ciphervisor owner session", () => {
  it("writes the four sevctl files; the platform unwraps TEK/TIK with its PDH key", async () => {
    const pdhKey = generateEcKeyPair(seededRandom("cli-pdh"));
    const pdhFile = join(tmp, "pdh.cert");
    writeFileSync(
      pdhFile,
      encodeSevCert({ apiMajor: 0, apiMinor: 24, usage: Usage.PDH, algo: Algo.ECDH_SHA256, pub: pdhKey.pub }),
    );
    const out = join(tmp, "session-out");
    const r = await run(
      "owner",
      "session",
      "--pdh",
      pdhFile,
      "--policy",
      "0x5",
      "--name",
      "vm1",
      "--out",
      out,
    );
    assert.equal(r.code, 0, r.err);
    const names = ["vm1_godh.b64", "vm1_session.b64", "vm1_tek.bin", "vm1_tik.bin"];
    assert.equal(r.out, names.map((n) => `wrote ${join(out, n)}\n`).join(""));
    const read = (n: string) => new Uint8Array(readFileSync(join(out, n)));
    const tek = read("vm1_tek.bin");
    const tik = read("vm1_tik.bin");
    assert.equal(tek.length, 16);
    assert.equal(statSync(join(out, "vm1_tik.bin")).mode & 0o077, 0);
    assert.ok(!r.out.includes(toHex(tek)) && !r.out.includes(toHex(tik)));
    const godh = parseSevCert(
      new Uint8Array(Buffer.from(readFileSync(join(out, "vm1_godh.b64"), "utf8"), "base64")),
    );
    const sessionText = readFileSync(join(out, "vm1_session.b64"), "utf8");
    assert.doesNotMatch(sessionText, /\n/);
    if (godh.key.kind !== "ecc") throw new Error("GODH must be an ECC key");
    const unwrapped = unwrapSession(
      ecdh(pdhKey.d, godh.key.pub),
      parseSession(new Uint8Array(Buffer.from(sessionText, "base64"))),
      0x5,
    );
    assert.deepEqual(unwrapped, { ok: true, keys: { tek, tik } });
  });

  it("works with a real Rome PDH and refuses bad input", async () => {
    const out = join(tmp, "rome");
    const r = await run(
      "owner",
      "session",
      "--pdh",
      fx("owner/rome/pdh.cert"),
      "--policy",
      "1",
      "--name",
      "r",
      "--out",
      out,
    );
    assert.equal(r.code, 0, r.err);
    await fails(
      1,
      "IO",
      "owner",
      "session",
      "--pdh",
      join(tmp, "nope"),
      "--policy",
      "1",
      "--name",
      "x",
      "--out",
      out,
    );
    await fails(
      1,
      "CERT_INVALID",
      "owner",
      "session",
      "--pdh",
      SEVCTL_OVMF,
      "--policy",
      "1",
      "--name",
      "x",
      "--out",
      out,
    );
    await fails(
      2,
      /--policy must be/,
      "owner",
      "session",
      "--pdh",
      fx("owner/rome/pdh.cert"),
      "--policy",
      "x",
      "--name",
      "x",
    );
    await fails(
      2,
      /file-name prefix/,
      "owner",
      "session",
      "--pdh",
      fx("owner/rome/pdh.cert"),
      "--policy",
      "1",
      "--name",
      "a/b",
    );
    await fails(
      2,
      /required option '--name/,
      "owner",
      "session",
      "--pdh",
      fx("owner/rome/pdh.cert"),
      "--policy",
      "1",
    );
  });
});

describe("ciphervisor owner secret build", () => {
  const secret = (guid: string, file: string) => ["--secret", `${guid}:${fx(`owner/sevctl/${file}`)}`];
  const base = (header: string, payload: string) => [
    "owner",
    "secret",
    "build",
    "--tik",
    fx("owner/sevctl/tik1.bin"),
    "--tek",
    fx("owner/sevctl/tek1.bin"),
    "--launch-measure-blob",
    "TLeA7607lZQntLjRY1/i+sbtdSZ+75zxpz4Px9hzpBLwItF5Q2o4prA++3ZZv9ZS",
    "--iv",
    "ac5474ed4dd32c7d989ec523d92559ec",
    "--out-header",
    header,
    "--out-secret",
    payload,
  ];

  it("writes the sevctl two-entry vector as base64 (default) or binary", async () => {
    const [h, p] = [join(tmp, "hdr"), join(tmp, "payload")];
    const r = await run(
      ...base(h, p),
      ...secret("736869e5-84f0-4973-92ec-06879ce3da0b", "secret1.txt"),
      ...secret("736869e5-AAAA-4973-92ec-06879ce3da0b", "secret2.txt"),
    );
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, `wrote header to ${h}\nwrote payload to ${p}\n`);
    assert.equal(
      readFileSync(h, "utf8"),
      "AAAAAKxUdO1N0yx9mJ7FI9klWeyZ3r0dOEKHUOhIRqzGYYvTJgdMtBPL1nK6GD9aGET7Ng==",
    );
    assert.equal(
      readFileSync(p, "utf8"),
      "0U3e5PcXv0UW+H4tSBFKObWYfKE1+j38Bc2fuO16mYiyI+sWx7INfn+lgYj56GL12yyinDa+lVfCC+WWs332lpLNUX1ZI3YK7vYgtys4X+uGxEIlkIQ90v8/w8ZFmQMe",
    );
    const bin = await run(
      ...base(h, p),
      ...secret("736869e5-84f0-4973-92ec-06879ce3da0b", "secret1.txt"),
      "--format",
      "binary",
      "--force",
    );
    assert.equal(bin.code, 0, bin.err);
    assert.equal(
      Buffer.from(readFileSync(h)).toString("base64"),
      "AAAAAKxUdO1N0yx9mJ7FI9klWey8FSzeYQ4X8K71VzNKLU/KQsIsQxLjtbhaPUewqshX5Q==",
    );
    assert.equal(readFileSync(p).length, 64);
  });

  it("refuses bad input with one line and exit 2 (or 1 for I/O)", async () => {
    const [h, p] = [join(tmp, "h2"), join(tmp, "p2")];
    const ok = secret("736869e5-84f0-4973-92ec-06879ce3da0b", "secret1.txt");
    await fails(
      2,
      /'not-a-guid' is not a GUID/,
      ...base(h, p),
      "--secret",
      `not-a-guid:${fx("owner/sevctl/secret1.txt")}`,
    );
    await fails(2, /GUID:FILE/, ...base(h, p), "--secret", "736869e5-84f0-4973-92ec-06879ce3da0b");
    await fails(
      1,
      "IO",
      ...base(h, p),
      "--secret",
      `736869e5-84f0-4973-92ec-06879ce3da0b:${join(tmp, "nope")}`,
    );
    await fails(2, "USAGE", ...base(h, p));
    await fails(
      2,
      /--iv must be 16 bytes/,
      ...base(h, p).map((a) => (a === "ac5474ed4dd32c7d989ec523d92559ec" ? "abcd" : a)),
      ...ok,
    );
    await fails(
      2,
      /--tek .* holds 18 bytes; a TEK file is 16 raw bytes/,
      ...base(h, p).map((a) => (a.endsWith("tek1.bin") ? fx("owner/sevctl/secret1.txt") : a)),
      ...ok,
    );
    const big = join(tmp, "big.bin");
    writeFileSync(big, new Uint8Array(16345));
    await fails(2, /at most 16384/, ...base(h, p), "--secret", `23058844-597b-42fb-8259-a0f5d9d495af:${big}`);
    await fails(2, /--format must be one of/, ...base(h, p), ...ok, "--format", "hex");
    await fails(2, "USAGE", ...base(h, p), ...ok, "--api-major", "0");
  });

  it("leaves MEASURE out for API below 0.17 when told the platform's API", async () => {
    const [h, p] = [join(tmp, "h3"), join(tmp, "p3")];
    const ok = secret("736869e5-84f0-4973-92ec-06879ce3da0b", "secret1.txt");
    assert.equal((await run(...base(h, p), ...ok, "--api-major", "0", "--api-minor", "16")).code, 0);
    const old = readFileSync(h, "utf8");
    assert.equal(
      (await run(...base(h, p), ...ok, "--api-major", "0", "--api-minor", "17", "--force")).code,
      0,
    );
    assert.equal(
      readFileSync(h, "utf8"),
      "AAAAAKxUdO1N0yx9mJ7FI9klWey8FSzeYQ4X8K71VzNKLU/KQsIsQxLjtbhaPUewqshX5Q==",
    );
    assert.notEqual(old, readFileSync(h, "utf8"));
  });
});

describe("owner session and owner secret build: the files they write", () => {
  it("are 0600, never replace a file without --force, never follow a symlink, and are checked before any is written", async () => {
    const out = join(tmp, "files");
    const session = (...extra: string[]) =>
      run(
        "owner",
        "session",
        "--pdh",
        fx("owner/rome/pdh.cert"),
        "--policy",
        "0x5",
        "--name",
        "vm9",
        "--out",
        out,
        ...extra,
      );
    assert.equal((await session()).code, 0);
    for (const n of ["vm9_godh.b64", "vm9_session.b64", "vm9_tek.bin", "vm9_tik.bin"]) {
      assert.equal(statSync(join(out, n)).mode & 0o777, 0o600, n);
    }
    const tek = readFileSync(join(out, "vm9_tek.bin"));
    await fails(
      1,
      /vm9_godh.b64: the file exists \(give --force/,
      "owner",
      "session",
      "--pdh",
      fx("owner/rome/pdh.cert"),
      "--policy",
      "0x5",
      "--name",
      "vm9",
      "--out",
      out,
    );
    assert.deepEqual(readFileSync(join(out, "vm9_tek.bin")), tek, "nothing was replaced");
    // --force replaces them, and narrows a file someone made world-readable.
    chmodSync(join(out, "vm9_tik.bin"), 0o644);
    assert.equal((await session("--force")).code, 0);
    assert.notDeepEqual(readFileSync(join(out, "vm9_tek.bin")), tek);
    assert.equal(statSync(join(out, "vm9_tik.bin")).mode & 0o777, 0o600);
    // A planted symlink is refused even with --force, before any of the four is written.
    const elsewhere = join(tmp, "stolen.bin");
    rmSync(join(out, "vm9_tik.bin"));
    symlinkSync(elsewhere, join(out, "vm9_tik.bin"));
    const before = readFileSync(join(out, "vm9_tek.bin"));
    const r = await session("--force");
    assert.equal(r.code, 1);
    assert.match(r.err, /vm9_tik.bin: it is a symlink/);
    assert.ok(!existsSync(elsewhere), "nothing was written through the link");
    assert.deepEqual(
      readFileSync(join(out, "vm9_tek.bin")),
      before,
      "no file was written before the refusal",
    );

    const [h, p] = [join(tmp, "h9"), join(tmp, "p9")];
    const build = (...extra: string[]) =>
      run(
        "owner",
        "secret",
        "build",
        "--tik",
        fx("owner/sevctl/tik1.bin"),
        "--tek",
        fx("owner/sevctl/tek1.bin"),
        "--launch-measure-blob",
        "TLeA7607lZQntLjRY1/i+sbtdSZ+75zxpz4Px9hzpBLwItF5Q2o4prA++3ZZv9ZS",
        "--secret",
        `736869e5-84f0-4973-92ec-06879ce3da0b:${fx("owner/sevctl/secret1.txt")}`,
        "--out-header",
        h,
        "--out-secret",
        p,
        ...extra,
      );
    writeFileSync(p, "keep me");
    const refused = await build();
    assert.equal(refused.code, 1);
    assert.match(refused.err, /--out-secret .*p9: the file exists/);
    assert.ok(!existsSync(h), "the header was not written either");
    assert.equal(readFileSync(p, "utf8"), "keep me");
    assert.equal((await build("--force")).code, 0);
    assert.equal(statSync(h).mode & 0o777, 0o600);
    assert.equal(statSync(p).mode & 0o777, 0o600);
    await fails(
      2,
      /name the same file/,
      "owner",
      "secret",
      "build",
      "--tik",
      fx("owner/sevctl/tik1.bin"),
      "--tek",
      fx("owner/sevctl/tek1.bin"),
      "--launch-measure-blob",
      "TLeA7607lZQntLjRY1/i+sbtdSZ+75zxpz4Px9hzpBLwItF5Q2o4prA++3ZZv9ZS",
      "--secret",
      `736869e5-84f0-4973-92ec-06879ce3da0b:${fx("owner/sevctl/secret1.txt")}`,
      "--out-header",
      h,
      "--out-secret",
      h,
      "--force",
    );
  });
});

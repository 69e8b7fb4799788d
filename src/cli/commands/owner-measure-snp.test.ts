import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { memoryIo } from "../io.ts";
import { main } from "../main.ts";

const fx = (p: string) => fileURLToPath(new URL(`../../../test/fixtures/${p}`, import.meta.url));
const AMDSEV = fx("measure/sev-snp-measure/ovmf_AmdSev_suffix.bin");
const OVMFX64 = fx("measure/sev-snp-measure/ovmf_OvmfX64_suffix.bin");
const SEVCTL_OVMF = fx("measure/sevctl/OVMF.amdsev.fd_trimmed_edk2-ovmf-20220126gitbb1bba3d77-4.el9");
const tmp = mkdtempSync(join(tmpdir(), "cv-owner-snp-"));
after(() => rmSync(tmp, { recursive: true, force: true }));
/** sev-snp-measure's tests pass /dev/null as kernel and initrd. */
const NULL = join(tmp, "empty");
writeFileSync(NULL, new Uint8Array());
const OVMF_HASH =
  "086e2e9149ebf45abdc3445fba5b2da8270bdbb04094d7a2c37faaa4b24af3aa16aff8c374c2a55c467a50da6d466b74";

async function run(...argv: string[]) {
  const io = memoryIo();
  const code = await main(argv, io);
  return { code, out: io.stdout, err: io.stderr };
}

const snp = (...argv: string[]) => run("owner", "measure", "--mode", "snp", ...argv);

/** A failed run: the exit code, one line on stderr with the error code, no stack trace. */
async function fails(code: number, errCode: string, pattern: RegExp, ...argv: string[]) {
  const r = await snp(...argv);
  assert.equal(r.code, code, `exit code for ${argv.join(" ")}: ${r.err}`);
  assert.equal(r.out, "");
  assert.equal(r.err.trim().split("\n").length, 1, r.err);
  assert.doesNotMatch(r.err, /\n\s+at /);
  assert.match(r.err, new RegExp(`\\[${errCode}\\]`));
  assert.match(r.err, pattern);
}

const kernelFlags = ["--kernel", NULL, "--initrd", NULL];

describe("ciphervisor owner measure --mode snp (virtee/sev-snp-measure tests/test_guest.py vectors)", () => {
  it("prints the 96-hex digest: append 'console=ttyS0 loglevel=7', guest features 0x21 (test_snp_default)", async () => {
    const r = await snp(
      "--firmware",
      AMDSEV,
      ...kernelFlags,
      "--append",
      "console=ttyS0 loglevel=7",
      "--vcpus",
      "1",
      "--vcpu-type",
      "EPYC-v4",
      "--guest-features",
      "0x21",
    );
    assert.deepEqual(r, {
      code: 0,
      out: "803f691094946e42068aaa3a8f9e26a5c89f36f7b73ecfb28c653360fe4b3aba7e534442e7e1e17895dfe778d0228977\n",
      err: "",
    });
  });

  it("defaults to guest features 0x1 and 1 vCPU (test_snp_guest_feature_snp_only)", async () => {
    const r = await snp(
      "--firmware",
      AMDSEV,
      ...kernelFlags,
      "--append",
      "console=ttyS0 loglevel=7",
      "--vcpu-sig",
      "0x800f12",
    );
    assert.equal(
      r.out,
      "6d287813eb5222d770f75005c664e34c204f385ce832cc2ce7d0d6f354454362f390ef83a92046c042e706363b4b08fa\n",
      r.err,
    );
  });

  it("without a kernel (test_snp_without_kernel_*), and several vCPUs (test_snp_with_multiple_vcpus_*)", async () => {
    const cases: [string[], string][] = [
      [
        ["--guest-features", "0x21"],
        "e1e1ca029dd7973ab9513295be68198472dcd4fc834bd9af9b63f6e8a1674dbf281a9278a4a2ebe0eed9f22adbcd0e2b",
      ],
      [
        [],
        "19358ba9a7615534a9a1e2f0dfc29384dcd4dcb7062ff9c6013b26869a5fc6ecabe033c48dd6f6db5d6d76e7c5df632d",
      ],
      [
        [...kernelFlags, "--append", "", "--vcpus", "4", "--guest-features", "33"],
        "4953b1fb416fa874980e8442b3706d345926d5f38879134e00813c5d7abcbe78eafe7b422907be0b4698e2414a631942",
      ],
      [
        [...kernelFlags, "--vcpus", "4", "--guest-features", "0x1"],
        "5061fffb019493a903613d56d54b94912a1a2f9e4502385f5c194616753720a92441310ba6c4933de877c36e23046ad5",
      ],
    ];
    for (const [flags, digest] of cases) {
      const r = await snp("--firmware", AMDSEV, "--vcpu-type", "EPYC-v4", ...flags);
      assert.equal(r.out, `${digest}\n`, `${flags.join(" ")}: ${r.err}`);
    }
  });

  it("EC2 and GCE VMM types, which need no vCPU type (test_snp_ec2_*, test_snp_gce_*)", async () => {
    const cases: [string[], string][] = [
      [
        ["--vmm-type", "ec2", "--vcpu-type", "EPYC-v4", "--guest-features", "0x21"],
        "0ce9ccc06bab55eebe8abc234f3df6514883977a68a591b71052498ab52b2f1aa415db338033946ef93aa8278c0d67fb",
      ],
      [
        ["--vmm-type", "ec2"],
        "0883bd0eeb716e65b7b977a321c278d1e51b33b5c655fab985443bbcc65c086b9c15e8a0bd8811050dec7e24964e5056",
      ],
      [
        ["--vmm-type", "gce"],
        "5da7106cf14cf46b1725ebab123eb9e53bd46a1e9f400cd0c08e7827b04b688ea8b4e403c8404efed4397ea5d5d0722e",
      ],
      [
        ["--vmm-type", "gce", "--vcpus", "4"],
        "5c5debf100fc339f90276e761ee1f1658d08922c3b20e2a2e6c7a6c3370b2452a15a00eae11886a93d6fd1e7ab81e29d",
      ],
    ];
    for (const [flags, digest] of cases) {
      const r = await snp("--firmware", AMDSEV, ...kernelFlags, "--append", "", ...flags);
      assert.equal(r.out, `${digest}\n`, `${flags.join(" ")}: ${r.err}`);
    }
  });

  it("--snp-ovmf-hash starts from a precomputed OVMF digest; --json prints it too (test_snp_ovmf_hash_*)", async () => {
    const r = await snp(
      "--firmware",
      AMDSEV,
      ...kernelFlags,
      "--vcpu-type",
      "EPYC-v4",
      "--guest-features",
      "0x21",
      "--snp-ovmf-hash",
      OVMF_HASH,
      "--json",
    );
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(JSON.parse(r.out), {
      launchDigest:
        "329c8ce0972ae52343b64d34a434a86f245dfd74f5ed7aae15d22efc78fb9683632b9b50e4e1d7fa41179ef98a7ef198",
      ovmfHash: OVMF_HASH,
    });
    // Without the flag, --json reports the OVMF digest it computed, the same value.
    const j = await snp("--firmware", AMDSEV, "--vcpu-type", "EPYC-v4", "--json");
    assert.equal(JSON.parse(j.out).ovmfHash, OVMF_HASH);
    assert.equal(JSON.parse(j.out).launchDigest.length, 96);
    const seeded = await snp(
      "--firmware",
      AMDSEV,
      ...kernelFlags,
      "--vcpu-type",
      "EPYC-v4",
      "--snp-ovmf-hash",
      OVMF_HASH,
    );
    assert.equal(
      seeded.out,
      "ddc5224521617a536ee7ce9dd6224d1b58a8d4fda1c741f3ac99fc4bfa04ba6e9fc98646d4a07a9079397fa3852819b5\n",
    );
  });

  it("the OvmfPkgX64 build: no kernel measured (test_snp_with_ovmfx64_*), and a kernel refused", async () => {
    const r = await snp("--firmware", OVMFX64, "--vcpu-type", "EPYC-v4", "--guest-features", "0x21");
    assert.equal(
      r.out,
      "28797ae0afaba4005a81e629acebfb59e6687949d6be44007cd5506823b0dd66f146aaae26ff291eed7b493d8a64c385\n",
    );
    await fails(
      6,
      "KERNEL_HASHES_UNSUPPORTED",
      /no SNP_KERNEL_HASHES/,
      "--firmware",
      OVMFX64,
      ...kernelFlags,
      "--vcpu-type",
      "EPYC-v4",
    );
  });
});

describe("ciphervisor owner measure --mode snp refusals", () => {
  it("refuses a firmware without SEV metadata, as QEMU refuses to launch it", async () => {
    await fails(
      6,
      "SEV_METADATA_MISSING",
      /no SEV metadata entry/,
      "--firmware",
      SEVCTL_OVMF,
      "--vcpu-type",
      "EPYC-v4",
    );
    const plain = join(tmp, "plain.fd");
    writeFileSync(plain, new Uint8Array(8192));
    await fails(
      6,
      "SEV_METADATA_MISSING",
      /no OVMF footer table/,
      "--firmware",
      plain,
      "--vcpu-type",
      "EPYC-v4",
    );
  });

  it("refuses bad and misplaced flags with one line", async () => {
    const fw = ["--firmware", AMDSEV, "--vcpu-type", "EPYC-v4"];
    await fails(2, "USAGE", /needs --firmware/);
    await fails(2, "USAGE", /needs --vcpu-type or --vcpu-sig/, "--firmware", AMDSEV);
    await fails(2, "USAGE", /not both/, ...fw, "--vcpu-sig", "0x800f12");
    await fails(2, "USAGE", /only with --kernel/, ...fw, "--append", "x");
    await fails(2, "USAGE", /--vmm does not apply to --mode snp/, ...fw, "--vmm", "qemu");
    await fails(2, "USAGE", /--tik, --policy do not apply/, ...fw, "--tik", NULL, "--policy", "0x30000");
    await fails(2, "USAGE", /--launch-digest does not apply/, ...fw, "--launch-digest", "00".repeat(48));
    await fails(2, "INVALID_INPUT", /--vmm-type must be one of QEMU, ec2, gce/, ...fw, "--vmm-type", "kvm");
    await fails(2, "INVALID_INPUT", /--guest-features must be a 64-bit/, ...fw, "--guest-features", "0x1_0");
    await fails(
      2,
      "INVALID_INPUT",
      /--guest-features must be a 64-bit/,
      ...fw,
      "--guest-features",
      `0x1${"0".repeat(16)}`,
    );
    await fails(
      2,
      "INVALID_INPUT",
      /--snp-ovmf-hash must be 48 bytes/,
      ...fw,
      "--snp-ovmf-hash",
      "00".repeat(32),
    );
    await fails(2, "INVALID_INPUT", /--vcpus must be an integer in 1..4096/, ...fw, "--vcpus", "0");
    await fails(1, "IO", /no such file/, "--firmware", join(tmp, "missing.fd"), "--vcpu-type", "EPYC-v4");
  });

  it("the SNP-only flags are refused in the other modes", async () => {
    for (const flag of [
      ["--vmm-type", "ec2"],
      ["--guest-features", "0x1"],
      ["--snp-ovmf-hash", OVMF_HASH],
    ]) {
      const r = await run("owner", "measure", "--firmware", AMDSEV, ...flag);
      assert.equal(r.code, 2);
      assert.match(r.err, new RegExp(`${flag[0]} only applies to --mode snp \\[USAGE\\]`));
    }
    // verify-measurement has no SNP mode.
    const tik = join(tmp, "tik.bin");
    writeFileSync(tik, new Uint8Array(16));
    const v = await run(
      "owner",
      "verify-measurement",
      "--tik",
      tik,
      "--launch-measure-blob",
      Buffer.alloc(48).toString("base64"),
      "--api-major",
      "1",
      "--api-minor",
      "0",
      "--build",
      "0",
      "--policy",
      "0",
      "--firmware",
      AMDSEV,
      "--mode",
      "snp",
    );
    assert.equal(v.code, 2);
    assert.match(v.err, /--mode must be one of sev, sev-es, got 'snp'/);
  });
});

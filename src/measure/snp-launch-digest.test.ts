import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { type ErrorCode, isCiphervisorError } from "../errors.ts";
import { concat, fromHex, guidToBytes, toHex, u16le, u32le } from "../lib/bytes.ts";
import { buildKernelHashesTable, type DirectBootInput } from "./kernel-hashes.ts";
import { OvmfGuid } from "./ovmf-footer.ts";
import {
  computeSnpLaunchDigest,
  type ExpectedSnpLaunchInput,
  encodeSnpPageInfo,
  expectedSnpLaunch,
  SNP_VMSA_GPA,
  SnpLaunchDigest,
  SnpPageType,
  snpFirmwareGpa,
  snpOvmfHash,
} from "./snp-launch-digest.ts";
import { vcpuSignatureOf } from "./vcpu-types.ts";
import { decodeVmsa } from "./vmsa.ts";

const fixture = (p: string) =>
  new Uint8Array(readFileSync(new URL(`../../test/fixtures/measure/${p}`, import.meta.url)));
const AMDSEV = fixture("sev-snp-measure/ovmf_AmdSev_suffix.bin");
const OVMFX64 = fixture("sev-snp-measure/ovmf_OvmfX64_suffix.bin");
const SEVCTL_OVMF = fixture("sevctl/OVMF.amdsev.fd_trimmed_edk2-ovmf-20220126gitbb1bba3d77-4.el9");
const EMPTY = new Uint8Array();
const EPYC_V4 = vcpuSignatureOf("EPYC-v4");
/** The tests pass /dev/null as kernel and initrd. */
const nullBoot = (cmdline?: string): DirectBootInput => ({ kernel: EMPTY, initrd: EMPTY, cmdline });
const OVMF_HASH =
  "086e2e9149ebf45abdc3445fba5b2da8270bdbb04094d7a2c37faaa4b24af3aa16aff8c374c2a55c467a50da6d466b74";

function fails(code: ErrorCode, pattern: RegExp) {
  return (e: unknown) => isCiphervisorError(e, code) && pattern.test(e.message);
}

/**
 * virtee/sev-snp-measure@8f2b337 `tests/test_guest.py`, every SEV-SNP case whose inputs are in test/fixtures (the
 * `snp:svsm` cases need the SVSM binaries; `test_snp_dump_vmsa` asserts no digest). Kernel and initrd are the null
 * device; vCPU signature EPYC-v4 unless the VMM ignores it.
 */
const VECTORS: { name: string; input: ExpectedSnpLaunchInput; digest: string }[] = [
  {
    name: "test_snp_default",
    input: {
      firmware: AMDSEV,
      vcpuSignature: EPYC_V4,
      directBoot: nullBoot("console=ttyS0 loglevel=7"),
      guestFeatures: 0x21n,
    },
    digest:
      "803f691094946e42068aaa3a8f9e26a5c89f36f7b73ecfb28c653360fe4b3aba7e534442e7e1e17895dfe778d0228977",
  },
  {
    name: "test_snp_guest_feature_snp_only",
    input: {
      firmware: AMDSEV,
      vcpuSignature: EPYC_V4,
      directBoot: nullBoot("console=ttyS0 loglevel=7"),
      guestFeatures: 0x1n,
    },
    digest:
      "6d287813eb5222d770f75005c664e34c204f385ce832cc2ce7d0d6f354454362f390ef83a92046c042e706363b4b08fa",
  },
  {
    name: "test_snp_without_kernel_default",
    input: { firmware: AMDSEV, vcpuSignature: EPYC_V4, guestFeatures: 0x21n },
    digest:
      "e1e1ca029dd7973ab9513295be68198472dcd4fc834bd9af9b63f6e8a1674dbf281a9278a4a2ebe0eed9f22adbcd0e2b",
  },
  {
    name: "test_snp_without_kernel_feature_snp_only",
    input: { firmware: AMDSEV, vcpuSignature: EPYC_V4, guestFeatures: 0x1n },
    digest:
      "19358ba9a7615534a9a1e2f0dfc29384dcd4dcb7062ff9c6013b26869a5fc6ecabe033c48dd6f6db5d6d76e7c5df632d",
  },
  {
    name: "test_snp_with_multiple_vcpus_default",
    input: {
      firmware: AMDSEV,
      vcpus: 4,
      vcpuSignature: EPYC_V4,
      directBoot: nullBoot(""),
      guestFeatures: 0x21n,
    },
    digest:
      "4953b1fb416fa874980e8442b3706d345926d5f38879134e00813c5d7abcbe78eafe7b422907be0b4698e2414a631942",
  },
  {
    name: "test_snp_with_multiple_vcpus_feature_snp_only",
    input: {
      firmware: AMDSEV,
      vcpus: 4,
      vcpuSignature: EPYC_V4,
      directBoot: nullBoot(""),
      guestFeatures: 0x1n,
    },
    digest:
      "5061fffb019493a903613d56d54b94912a1a2f9e4502385f5c194616753720a92441310ba6c4933de877c36e23046ad5",
  },
  {
    name: "test_snp_ec2_default",
    input: {
      firmware: AMDSEV,
      vcpuSignature: EPYC_V4,
      directBoot: nullBoot(""),
      guestFeatures: 0x21n,
      vmmType: "ec2",
    },
    digest:
      "0ce9ccc06bab55eebe8abc234f3df6514883977a68a591b71052498ab52b2f1aa415db338033946ef93aa8278c0d67fb",
  },
  {
    name: "test_snp_ec2_feature_snp_only",
    input: {
      firmware: AMDSEV,
      vcpuSignature: EPYC_V4,
      directBoot: nullBoot(""),
      guestFeatures: 0x1n,
      vmmType: "ec2",
    },
    digest:
      "0883bd0eeb716e65b7b977a321c278d1e51b33b5c655fab985443bbcc65c086b9c15e8a0bd8811050dec7e24964e5056",
  },
  {
    name: "test_snp_gce_default",
    input: { firmware: AMDSEV, directBoot: nullBoot(""), guestFeatures: 0x1n, vmmType: "gce" },
    digest:
      "5da7106cf14cf46b1725ebab123eb9e53bd46a1e9f400cd0c08e7827b04b688ea8b4e403c8404efed4397ea5d5d0722e",
  },
  {
    name: "test_snp_gce_with_multiple_vcpus_default",
    input: { firmware: AMDSEV, vcpus: 4, directBoot: nullBoot(""), guestFeatures: 0x1n, vmmType: "gce" },
    digest:
      "5c5debf100fc339f90276e761ee1f1658d08922c3b20e2a2e6c7a6c3370b2452a15a00eae11886a93d6fd1e7ab81e29d",
  },
  {
    name: "test_snp_ovmf_hash_gen_default",
    input: {
      firmware: AMDSEV,
      ovmfHash: fromHex(OVMF_HASH),
      vcpuSignature: EPYC_V4,
      directBoot: nullBoot(""),
      guestFeatures: 0x21n,
    },
    digest:
      "329c8ce0972ae52343b64d34a434a86f245dfd74f5ed7aae15d22efc78fb9683632b9b50e4e1d7fa41179ef98a7ef198",
  },
  {
    name: "test_snp_ovmf_hash_gen_feature_snp_only",
    input: {
      firmware: AMDSEV,
      ovmfHash: fromHex(OVMF_HASH),
      vcpuSignature: EPYC_V4,
      directBoot: nullBoot(""),
      guestFeatures: 0x1n,
    },
    digest:
      "ddc5224521617a536ee7ce9dd6224d1b58a8d4fda1c741f3ac99fc4bfa04ba6e9fc98646d4a07a9079397fa3852819b5",
  },
  {
    name: "test_snp_with_ovmfx64_without_default",
    input: { firmware: OVMFX64, vcpuSignature: EPYC_V4, guestFeatures: 0x21n },
    digest:
      "28797ae0afaba4005a81e629acebfb59e6687949d6be44007cd5506823b0dd66f146aaae26ff291eed7b493d8a64c385",
  },
  {
    name: "test_snp_with_ovmfx64_without_kernel_feature_snp_only",
    input: { firmware: OVMFX64, vcpuSignature: EPYC_V4, guestFeatures: 0x1n },
    digest:
      "da0296de8193586a5512078dcd719eccecbd87e2b825ad4148c44f665dc87df21e5b49e21523a9ad993afdb6a30b4005",
  },
];

describe("SEV-SNP launch digest: virtee/sev-snp-measure tests/test_guest.py vectors", () => {
  for (const v of VECTORS) {
    it(v.name, () => assert.equal(toHex(computeSnpLaunchDigest(v.input)), v.digest));
  }

  it("test_snp_ovmf_hash_full_*: the OVMF digest, and a launch from it equals one from the image", () => {
    assert.equal(toHex(snpOvmfHash(AMDSEV)), OVMF_HASH);
    for (const guestFeatures of [0x21n, 0x1n]) {
      const input = {
        firmware: AMDSEV,
        vcpuSignature: EPYC_V4,
        directBoot: nullBoot("console=ttyS0 loglevel=7"),
        guestFeatures,
      };
      const seeded = expectedSnpLaunch({ ...input, ovmfHash: snpOvmfHash(AMDSEV) });
      assert.deepEqual(seeded.launchDigest, computeSnpLaunchDigest(input));
      assert.equal(toHex(seeded.ovmfHash), OVMF_HASH);
    }
  });

  it("the default guest features are sev-snp-measure's 0x1", () => {
    const input = { firmware: AMDSEV, vcpuSignature: EPYC_V4 };
    assert.equal(
      toHex(computeSnpLaunchDigest(input)),
      "19358ba9a7615534a9a1e2f0dfc29384dcd4dcb7062ff9c6013b26869a5fc6ecabe033c48dd6f6db5d6d76e7c5df632d",
    );
  });

  it("test_snp_with_ovmfx64_and_kernel_should_fail: no SNP_KERNEL_HASHES section, no direct boot", () => {
    assert.throws(
      () => expectedSnpLaunch({ firmware: OVMFX64, vcpuSignature: EPYC_V4, directBoot: nullBoot("") }),
      fails("KERNEL_HASHES_UNSUPPORTED", /no SNP_KERNEL_HASHES section/),
    );
  });
});

describe("SEV-SNP launch digest: what is measured", () => {
  const sha384 = (b: Uint8Array) => new Uint8Array(createHash("sha384").update(b).digest());

  it("PAGE_INFO is LD ‖ contents ‖ 0x70 ‖ type ‖ imi ‖ reserved ‖ VMPL perms ‖ GPA (SNP ABI #56860 section 8.17.2)", () => {
    const digest = new Uint8Array(48).fill(0x11);
    const contents = new Uint8Array(48).fill(0x22);
    const p = encodeSnpPageInfo({ digest, contents, pageType: SnpPageType.CPUID, gpa: 0x80e000 });
    assert.equal(p.length, 0x70);
    assert.deepEqual(p.subarray(0, 48), digest);
    assert.deepEqual(p.subarray(48, 96), contents);
    assert.equal(toHex(p.subarray(96)), "7000060000000000" + "00e0800000000000");
    // The chain is SHA-384 of each PAGE_INFO in turn.
    const ld = new SnpLaunchDigest(digest).update(SnpPageType.CPUID, 0x80e000, contents);
    assert.deepEqual(ld.digest(), sha384(p));
    assert.equal(ld.pageCount, 1);
  });

  it("the firmware is mapped to end at 4 GiB, one NORMAL page per 4 KiB", () => {
    assert.equal(snpFirmwareGpa(AMDSEV), 0xfffff000);
    const page = encodeSnpPageInfo({
      digest: new Uint8Array(48),
      contents: sha384(AMDSEV),
      pageType: SnpPageType.NORMAL,
      gpa: 0xfffff000,
    });
    assert.deepEqual(snpOvmfHash(AMDSEV), sha384(page));
    const two = concat(AMDSEV, AMDSEV);
    assert.equal(snpFirmwareGpa(two), 0xffffe000);
    assert.deepEqual(snpOvmfHash(two), new SnpLaunchDigest().normalPages(0xffffe000, two).digest());
    for (const bad of [EMPTY, AMDSEV.subarray(0, 4000)]) {
      assert.throws(() => snpFirmwareGpa(bad), fails("INVALID_INPUT", /whole 4 KiB pages/));
    }
  });

  it("walks the metadata sections in order, then the VMSAs; the kernel-hashes page holds the table at 0xC00", () => {
    const boot = nullBoot("console=ttyS0 loglevel=7");
    const r = expectedSnpLaunch({
      firmware: AMDSEV,
      vcpus: 2,
      vcpuSignature: EPYC_V4,
      directBoot: boot,
      guestFeatures: 0x21n,
    });
    // By hand: SEC_MEM 0x800000+9 pages, 0x80a000+3, SECRETS 0x80d000, CPUID 0x80e000, SVSM_CAA 0x80f000,
    // KERNEL_HASHES 0x810000 (NORMAL), SEC_MEM 0x811000+15, then BSP and AP VMSAs.
    const page = new Uint8Array(4096);
    page.set(buildKernelHashesTable(boot), 0xc00);
    assert.deepEqual(r.kernelHashesPage, page);
    const ld = new SnpLaunchDigest(fromHex(OVMF_HASH))
      .zeroPages(0x800000, 0x9000)
      .zeroPages(0x80a000, 0x3000)
      .secretsPage(0x80d000)
      .cpuidPage(0x80e000)
      .zeroPages(0x80f000, 0x1000)
      .normalPages(0x810000, page)
      .zeroPages(0x811000, 0xf000);
    for (const v of r.vmsaPages) ld.vmsaPage(v);
    assert.deepEqual(r.launchDigest, ld.digest());
    assert.equal(r.pagesAfterFirmware, 9 + 3 + 1 + 1 + 1 + 1 + 15 + 2);
    assert.equal(SNP_VMSA_GPA, 0xfffffffff000);
    // The VMSAs are the docs/sev-interface.md §12.2 reset state with sev_features = the guest features.
    const [bsp, ap] = r.vmsaPages.map(decodeVmsa);
    assert.equal(bsp?.sevFeatures, 0x21n);
    assert.equal(bsp?.rdx, BigInt(EPYC_V4));
    assert.equal(bsp?.rip, 0xfff0n);
    assert.equal(ap?.rip, 0xb004n);
    assert.equal(ap?.cs.base, 0x800000n);
    assert.equal(bsp?.mxcsr, 0x1f80);
  });

  it("EC2 measures its CPUID pages last and ignores the vCPU signature; GCE measures SEC_MEM as UNMEASURED", () => {
    const base = { firmware: AMDSEV, guestFeatures: 0x1n };
    assert.deepEqual(
      computeSnpLaunchDigest({ ...base, vmmType: "ec2" }),
      computeSnpLaunchDigest({ ...base, vmmType: "ec2", vcpuSignature: EPYC_V4 }),
    );
    const gce = expectedSnpLaunch({ ...base, vmmType: "gce" });
    const ld = new SnpLaunchDigest(fromHex(OVMF_HASH))
      .unmeasuredPages(0x800000, 0x9000)
      .unmeasuredPages(0x80a000, 0x3000)
      .secretsPage(0x80d000)
      .cpuidPage(0x80e000)
      .zeroPages(0x80f000, 0x1000)
      .zeroPages(0x810000, 0x1000)
      .unmeasuredPages(0x811000, 0xf000);
    for (const v of gce.vmsaPages) ld.vmsaPage(v);
    assert.deepEqual(gce.launchDigest, ld.digest());
  });

  it("every input changes the digest: vCPUs, signature, features, cmdline, VMM type", () => {
    const base: ExpectedSnpLaunchInput = {
      firmware: AMDSEV,
      vcpuSignature: EPYC_V4,
      directBoot: nullBoot("a"),
    };
    const variants: ExpectedSnpLaunchInput[] = [
      base,
      { ...base, vcpus: 2 },
      { ...base, vcpus: 3 },
      { ...base, vcpuSignature: vcpuSignatureOf("EPYC-Milan") },
      { ...base, guestFeatures: 0x21n },
      { ...base, directBoot: nullBoot("b") },
      { ...base, directBoot: undefined },
      { ...base, vmmType: "ec2" },
      { ...base, vmmType: "gce" },
    ];
    const seen = new Set(variants.map((v) => toHex(computeSnpLaunchDigest(v))));
    assert.equal(seen.size, variants.length);
  });
});

describe("SEV-SNP launch digest: refusals", () => {
  it("refuses an image without SEV metadata (QEMU will not launch it) with SEV_METADATA_MISSING", () => {
    assert.throws(
      () => expectedSnpLaunch({ firmware: SEVCTL_OVMF, vcpuSignature: EPYC_V4 }),
      fails("SEV_METADATA_MISSING", /no SEV metadata entry.*cannot launch SEV-SNP/),
    );
    assert.throws(
      () => expectedSnpLaunch({ firmware: new Uint8Array(4096), vcpuSignature: EPYC_V4 }),
      fails("SEV_METADATA_MISSING", /no OVMF footer table/),
    );
  });

  it("refuses a firmware whose SEV metadata is there but whose AP reset block is not", () => {
    // Rebuild the AmdSev tail's footer table without the SEV-ES reset block entry.
    const metadataOffset = 0x554;
    const entry = (guid: string, data: Uint8Array) =>
      concat(data, u16le(data.length + 18), guidToBytes(guid));
    const table = entry(OvmfGuid.SNP_METADATA, u32le(metadataOffset));
    const tail = concat(
      table,
      u16le(table.length + 18),
      guidToBytes(OvmfGuid.FOOTER_TABLE),
      new Uint8Array(32),
    );
    const image = AMDSEV.slice();
    image.set(tail, image.length - tail.length);
    assert.throws(
      () => expectedSnpLaunch({ firmware: image, vcpuSignature: EPYC_V4 }),
      fails("SEV_ES_RESET_BLOCK_MISSING", /no SEV-ES reset block/),
    );
  });

  it("refuses bad vCPU counts, a missing QEMU signature, bad features and a bad OVMF digest", () => {
    assert.throws(
      () => expectedSnpLaunch({ firmware: AMDSEV }),
      fails("INVALID_INPUT", /CPU signature in RDX/),
    );
    for (const vcpus of [0, 4097, 1.5]) {
      assert.throws(
        () => expectedSnpLaunch({ firmware: AMDSEV, vcpuSignature: EPYC_V4, vcpus }),
        fails("INVALID_INPUT", /vCPU count/),
      );
    }
    for (const guestFeatures of [-1n, 1n << 64n]) {
      assert.throws(
        () => expectedSnpLaunch({ firmware: AMDSEV, vcpuSignature: EPYC_V4, guestFeatures }),
        fails("INVALID_INPUT", /u64/),
      );
    }
    assert.throws(
      () => expectedSnpLaunch({ firmware: AMDSEV, vcpuSignature: EPYC_V4, ovmfHash: new Uint8Array(32) }),
      fails("INVALID_INPUT", /48 bytes/),
    );
  });
});

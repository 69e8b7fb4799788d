import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { sha256 } from "../crypto/hash.ts";
import { isCiphervisorError } from "../errors.ts";
import { concat, fromHex, toHex } from "../lib/bytes.ts";
import {
  buildKernelHashesTable,
  decodeKernelHashesTable,
  directBootHashes,
  KERNEL_HASHES_TABLE_SIZE,
} from "./kernel-hashes.ts";
import { computeLaunchDigest, expectedLaunch, LaunchDigest } from "./launch-digest.ts";
import { measurementMac } from "./measurement.ts";
import { parseOvmfFooter } from "./ovmf-footer.ts";
import { cpuSignature, vcpuSignatureOf } from "./vcpu-types.ts";
import {
  BSP_RESET_EIP,
  buildResetVmsa,
  decodeVmsa,
  encodeVmsa,
  resetVmsaFields,
  resetVmsaPages,
  VMSA_PAGE_SIZE,
} from "./vmsa.ts";

const fixture = (p: string) =>
  new Uint8Array(readFileSync(new URL(`../../test/fixtures/measure/${p}`, import.meta.url)));
const SEVCTL_OVMF = fixture("sevctl/OVMF.amdsev.fd_trimmed_edk2-ovmf-20220126gitbb1bba3d77-4.el9");
const SNP_MEASURE_OVMF = fixture("sev-snp-measure/ovmf_AmdSev_suffix.bin");
const EMPTY = new Uint8Array();
const b64hex = (b64: string) => Buffer.from(b64, "base64").toString("hex");

function isCode(code: "INVALID_INPUT" | "MALFORMED", pattern: RegExp) {
  return (e: unknown) => isCiphervisorError(e, code) && pattern.test(e.message);
}

describe("measurement MAC known answer (docs/sev-interface.md §16.2)", () => {
  it("matches virtee/sev and sev-tool", () => {
    const m = measurementMac(fromHex("66320db73158a35a255d051758e95ed4"), {
      apiMajor: 0,
      apiMinor: 0x12,
      build: 0x0f,
      policy: 0,
      launchDigest: sha256(EMPTY),
      mnonce: fromHex("4fbe0bedbad6c86ae8f68971d103e554"),
    });
    assert.equal(toHex(m), "6faab2daae389bcd3405a05d6cafe33c0414f7bedd0bae19ba5f38b7fd1664ea");
  });
});

describe("sevctl `measurement build` vectors (docs/sev-interface.md §16.3, virtee/sevctl tests/measurementbuild.rs)", () => {
  const tik = fixture("sevctl/tik1.bin");
  const common = {
    apiMajor: 1,
    apiMinor: 40,
    build: 40,
    mnonce: fromHex("c313fab511c216b1505b1b2ea9903c40"),
  };
  const measure = (launchDigest: Uint8Array, policy = 0x03) =>
    toHex(measurementMac(tik, { ...common, policy, launchDigest }));

  it("LD given directly", () => {
    const ld = fromHex("c64bd101fc9a4a2ce0a27c408d9200911f139a895469b04a40a6fa2890830d23");
    assert.equal(measure(ld), b64hex("lswbxWxI9gckya16JQvdFtpYmNO4b+3inAPpqsgoBI4="));
  });

  it("OVMF only: LD is the image's SHA-256", () => {
    const ld = computeLaunchDigest({ mode: "sev", firmware: SEVCTL_OVMF });
    assert.equal(toHex(ld), "2f6fc6065f4abc131eb4fb2b5090a542636eae84a94c0db0fdd5f405cb372ff5");
    assert.equal(measure(ld), "a0c0dec08a2e252a5ba4d4478fb324de9d3c1f674f65076c64c535e2a2329819");
  });

  it("OVMF plus the kernel-hashes table", () => {
    const r = expectedLaunch({
      mode: "sev",
      firmware: SEVCTL_OVMF,
      directBoot: {
        kernel: fixture("sevctl/vmlinuz-fake"),
        initrd: fixture("sevctl/initrd-fake"),
        cmdline: "foo bar baz fake kernel=cmdline",
      },
    });
    assert.equal(r.kernelHashesTable?.length, 176);
    assert.ok(toHex(r.kernelHashesTable ?? EMPTY).startsWith("06d63894224fc94cb479a793d411fd21a800"));
    assert.equal(toHex(r.launchDigest), "4b47fec6f851487c33714c8a00a832a1b705ad0a7cac4a647388eccfa9f0c570");
    assert.equal(measure(r.launchDigest), "8776ae61b5909d55bb1062d63781dff52374a0460c3d4dac2b86cb9de7d63f0b");
  });

  it("SEV-ES, 4 vCPUs: the measured pages are sevctl's vmsa0.bin then 3 × vmsa1.bin", () => {
    const r = expectedLaunch({
      mode: "sev-es",
      firmware: SEVCTL_OVMF,
      vcpus: 4,
      vmm: "qemu-legacy",
      vcpuSignature: vcpuSignatureOf("EPYC-Milan"),
    });
    const [vmsa0, vmsa1] = [fixture("sevctl/vmsa0.bin"), fixture("sevctl/vmsa1.bin")];
    assert.deepEqual(r.vmsaPages, [vmsa0, vmsa1, vmsa1, vmsa1]);
    assert.deepEqual(r.launchDigest, sha256(SEVCTL_OVMF, vmsa0, vmsa1, vmsa1, vmsa1));
    assert.equal(measure(r.launchDigest, 0x05), b64hex("tsLCcIIPrm3TWcyaOFfvUVEjRLGQzEnGlznRioMOCU4="));
  });
});

describe("sev-snp-measure launch digests (docs/sev-interface.md §16.5, virtee/sev-snp-measure tests/test_guest.py)", () => {
  const epycV4 = vcpuSignatureOf("EPYC-v4");
  // The tests pass /dev/null as kernel and initrd, and "" or the console string as append.
  const nullBoot = (cmdline?: string) => ({ kernel: EMPTY, initrd: EMPTY, cmdline });

  it("SEV with append 'console=ttyS0 loglevel=7'", () => {
    const ld = computeLaunchDigest({
      mode: "sev",
      firmware: SNP_MEASURE_OVMF,
      directBoot: nullBoot("console=ttyS0 loglevel=7"),
    });
    assert.equal(toHex(ld), "82a3ee5d537c3620628270c292ae30cb40c3c878666a7890ee7ef2a08fb535ff");
  });

  it("SEV with a kernel only (no initrd, no append)", () => {
    const ld = computeLaunchDigest({
      mode: "sev",
      firmware: SNP_MEASURE_OVMF,
      directBoot: { kernel: EMPTY },
    });
    assert.equal(toHex(ld), "77f613d7bbcdf12a73782ea9e88b0172aeda50d1a54201cb903594ff52846898");
  });

  it("SEV-ES with 1 and 4 vCPUs (EPYC-v4, QEMU INIT2 profile)", () => {
    const es = (vcpus: number) =>
      toHex(
        computeLaunchDigest({
          mode: "sev-es",
          firmware: SNP_MEASURE_OVMF,
          directBoot: nullBoot(""),
          vcpus,
          vcpuSignature: epycV4,
          vmm: "qemu",
        }),
      );
    assert.equal(es(1), "13810ae661ea11e2bb205621f582fee268f0367c8f97bc297b7fadef3e12002c");
    assert.equal(es(4), "0dccbcaba8e90b261bd0d2e1863a2f9da714768b7b2a19363cd6ae35aa90de91");
  });
});

describe("reset-state VMSA (docs/sev-interface.md §12.2)", () => {
  it("rebuilds sevctl's vmsa0.bin and vmsa1.bin byte for byte with the qemu-legacy profile", () => {
    const apEip = parseOvmfFooter(SEVCTL_OVMF).sevEsResetEip;
    assert.equal(apEip, 0x80b004);
    const o = { profile: "qemu-legacy", vcpuSignature: 0xa00f11 } as const;
    assert.deepEqual(buildResetVmsa({ ...o, eip: BSP_RESET_EIP }), fixture("sevctl/vmsa0.bin"));
    assert.deepEqual(buildResetVmsa({ ...o, eip: apEip ?? 0 }), fixture("sevctl/vmsa1.bin"));
  });

  it("differs between profiles only where §12.2 says", () => {
    const base = { eip: BSP_RESET_EIP, vcpuSignature: 0x800f12 };
    const qemu = decodeVmsa(buildResetVmsa({ ...base, profile: "qemu" }));
    const legacy = decodeVmsa(buildResetVmsa({ ...base, profile: "qemu-legacy" }));
    assert.equal(qemu.mxcsr, 0x1f80);
    assert.equal(qemu.x87Fcw, 0x037f);
    assert.deepEqual({ ...qemu, mxcsr: 0, x87Fcw: 0 }, legacy);
    const ec2 = decodeVmsa(buildResetVmsa({ ...base, profile: "ec2" }));
    const ec2Ap = decodeVmsa(buildResetVmsa({ ...base, eip: 0x80b004, profile: "ec2" }));
    assert.deepEqual(
      [ec2.cs.attrib, ec2Ap.cs.attrib, ec2.ss.attrib, ec2.tr.attrib],
      [0x9a, 0x9b, 0x92, 0x83],
    );
    assert.equal(ec2.rdx, 0x600n);
    const gce = decodeVmsa(buildResetVmsa({ ...base, profile: "gce" }));
    assert.deepEqual([gce.gPat, gce.rdx, gce.mxcsr], [0x00070106n, 0x600n, 0]);
    assert.throws(
      () => resetVmsaFields({ eip: BSP_RESET_EIP, profile: "qemu" }),
      isCode("INVALID_INPUT", /RDX/),
    );
  });

  it("computes CPUID signatures for QEMU's EPYC models", () => {
    assert.equal(vcpuSignatureOf("EPYC-v4"), 0x00800f12);
    assert.equal(vcpuSignatureOf("EPYC-Milan"), 0x00a00f11);
    assert.equal(vcpuSignatureOf("EPYC-Rome-v2"), 0x00830f10);
    assert.equal(vcpuSignatureOf("EPYC-Genoa"), 0x00a10f10);
    assert.equal(cpuSignature(6, 0x55, 7), 0x00050657);
    assert.throws(() => vcpuSignatureOf("EPYC-Atlantis"), isCode("INVALID_INPUT", /unknown vCPU type/));
    assert.throws(() => vcpuSignatureOf("toString"), isCode("INVALID_INPUT", /unknown vCPU type/));
  });

  it("builds the BSP page then n−1 AP pages, and needs an AP EIP beyond one vCPU", () => {
    const pages = resetVmsaPages({ vcpus: 3, apResetEip: 0x80b004, profile: "qemu", vcpuSignature: 1 });
    assert.equal(pages.length, 3);
    assert.equal(decodeVmsa(pages[0]!).rip, 0xfff0n);
    assert.deepEqual(decodeVmsa(pages[2]!).cs, {
      selector: 0xf000,
      attrib: 0x9b,
      limit: 0xffff,
      base: 0x800000n,
    });
    assert.throws(
      () => resetVmsaPages({ vcpus: 2, profile: "qemu", vcpuSignature: 1 }),
      isCode("INVALID_INPUT", /AP reset EIP/),
    );
    assert.throws(
      () => resetVmsaPages({ vcpus: 0, profile: "qemu", vcpuSignature: 1 }),
      isCode("INVALID_INPUT", /1\.\.4096/),
    );
  });
});

describe("VMSA codec (docs/sev-interface.md §12.1)", () => {
  it("round-trips every field at its offset", () => {
    const page = fixture("sevctl/vmsa1.bin");
    assert.deepEqual(encodeVmsa(decodeVmsa(page)), page);
    const fields = {
      rsp: 0xffffffff81000000n,
      r15: 0x0123456789abcdefn,
      vmpl: 3,
      pkru: 0x55555554,
      x87Fop: 0x1234,
      fpregXmm: new Uint8Array(256).fill(7),
      sevFeatures: 0x21n,
    };
    const p = encodeVmsa(fields);
    assert.equal(p.length, VMSA_PAGE_SIZE);
    assert.deepEqual(p.slice(0x1d8, 0x1e0), fromHex("00000081ffffffff"));
    assert.equal(p[0xca], 3);
    assert.deepEqual(p.slice(0x3b0, 0x3b8), fromHex("2100000000000000"));
    assert.equal(p[0x470], 7);
    assert.equal(p[0x570], 0);
    const d = decodeVmsa(p);
    assert.deepEqual(
      {
        rsp: d.rsp,
        r15: d.r15,
        vmpl: d.vmpl,
        pkru: d.pkru,
        x87Fop: d.x87Fop,
        fpregXmm: d.fpregXmm,
        sevFeatures: d.sevFeatures,
      },
      fields,
    );
    assert.equal(d.rax, 0n);
  });

  it("refuses values that do not fit and pages of the wrong size", () => {
    assert.throws(() => encodeVmsa({ vmpl: 256 }), isCode("INVALID_INPUT", /vmpl: must be a u8/));
    assert.throws(() => encodeVmsa({ rip: 1n << 64n }), isCode("INVALID_INPUT", /rip: must be a u64/));
    assert.throws(() => encodeVmsa({ rip: -1n }), isCode("INVALID_INPUT", /rip/));
    assert.throws(
      () => encodeVmsa({ cs: { selector: 0x10000, attrib: 0, limit: 0, base: 0n } }),
      isCode("INVALID_INPUT", /cs\.selector/),
    );
    assert.throws(() => encodeVmsa({ fpregX87: new Uint8Array(79) }), isCode("INVALID_INPUT", /80 bytes/));
    assert.throws(() => decodeVmsa(new Uint8Array(0x670)), isCode("MALFORMED", /4096 bytes/));
  });
});

describe("kernel-hashes table (docs/sev-interface.md §8.3)", () => {
  it("hashes the cmdline with its NUL, a missing cmdline as a lone NUL and a missing initrd as empty input", () => {
    const h = directBootHashes({ kernel: EMPTY });
    assert.deepEqual(h.cmdline, sha256(new Uint8Array([0])));
    assert.deepEqual(h.initrd, sha256(EMPTY));
    assert.deepEqual(
      directBootHashes({ kernel: EMPTY, cmdline: "a" }).cmdline,
      sha256(new Uint8Array([0x61, 0])),
    );
  });

  it("encodes 176 padded bytes and decodes them back", () => {
    const h = directBootHashes({ kernel: new Uint8Array([1]), initrd: new Uint8Array([2]), cmdline: "x" });
    const t = buildKernelHashesTable({
      kernel: new Uint8Array([1]),
      initrd: new Uint8Array([2]),
      cmdline: "x",
    });
    assert.equal(t.length, KERNEL_HASHES_TABLE_SIZE);
    assert.deepEqual(t.slice(0xa8), new Uint8Array(8));
    assert.deepEqual(decodeKernelHashesTable(t), h);
    assert.deepEqual(decodeKernelHashesTable(t.slice(0, 0xa8)), h);
    const bad = t.slice();
    bad[0x12]! ^= 1;
    assert.throws(() => decodeKernelHashesTable(bad), isCode("MALFORMED", /cmdline entry/));
    assert.throws(() => decodeKernelHashesTable(t.slice(0, 100)), isCode("MALFORMED", /168 bytes/));
  });
});

describe("launch digest (docs/sev-interface.md §8.1)", () => {
  it("hashes bytes, not addresses: any split of the same stream gives the same digest", () => {
    const page = buildResetVmsa({ eip: BSP_RESET_EIP, profile: "qemu", vcpuSignature: 0x800f12 });
    const whole = new LaunchDigest().updateData(SEVCTL_OVMF).updateVmsa(page);
    const split = new LaunchDigest()
      .updateData(SEVCTL_OVMF.subarray(0, 1000))
      .updateData(SEVCTL_OVMF.subarray(1000))
      .updateVmsa(page);
    assert.deepEqual(whole.digest(), split.digest());
    assert.deepEqual(whole.digest(), sha256(concat(SEVCTL_OVMF, page)));
    assert.equal(whole.vmsaCount, 1);
    // digest() does not finalise: more data may follow.
    assert.notDeepEqual(whole.updateData(new Uint8Array(16)).digest(), split.digest());
    assert.throws(() => new LaunchDigest().updateVmsa(new Uint8Array(4095)), isCode("INVALID_INPUT", /4096/));
  });

  it("needs a kernel-hashes area for a direct boot and a reset block for SEV-ES", () => {
    const plain = new Uint8Array(8192);
    assert.deepEqual(computeLaunchDigest({ mode: "sev", firmware: plain }), sha256(plain));
    assert.throws(
      () => computeLaunchDigest({ mode: "sev", firmware: plain, directBoot: { kernel: EMPTY } }),
      isCode("INVALID_INPUT", /kernel-hashes area/),
    );
    assert.throws(
      () => computeLaunchDigest({ mode: "sev-es", firmware: plain, vcpuSignature: 1 }),
      isCode("INVALID_INPUT", /cannot launch SEV-ES/),
    );
    // Plain SEV does not read the footer, so even a corrupt one is just hashed.
    const corrupt = SEVCTL_OVMF.slice();
    corrupt.set([1, 0], corrupt.length - 50);
    assert.deepEqual(computeLaunchDigest({ mode: "sev", firmware: corrupt }), sha256(corrupt));
    assert.throws(
      () => computeLaunchDigest({ mode: "sev-es", firmware: corrupt, vcpuSignature: 1 }),
      isCode("MALFORMED", /OVMF/),
    );
  });
});

/**
 * SEV-SNP VMs on an emulated host (snp-launch.ts, `Host.attestationReport`; docs/sev-interface.md §14, §14.1): the
 * report a guest requests through its guest agent carries the MEASUREMENT a guest owner recomputes with
 * `owner measure --mode snp` from the recorded launch inputs, the caller's REPORT_DATA and the spec's HOST_DATA, and
 * verifies against the emulated KDS chain; ID blocks are checked at SNP_LAUNCH_FINISH; Rome refuses SNP.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { parseSnpReport } from "../certs/snp-report.ts";
import { generateEcKeyPair } from "../crypto/ec.ts";
import { seededRandom } from "../crypto/random.ts";
import { isCiphervisorError } from "../errors.ts";
import { toHex } from "../lib/bytes.ts";
import { parseSevMetadata } from "../measure/ovmf-sev-metadata.ts";
import { computeSnpLaunchDigest } from "../measure/snp-launch-digest.ts";
import { verifySnpReport } from "../owner/verify-report.ts";
import { EmulatedKds } from "../sev/manufacturer/emulated-kds.ts";
import { emulatedVcekCert } from "../sev/manufacturer/emulated-snp.ts";
import { emulatedChipId } from "../sev/secure-processor.ts";
import {
  encodeIdBlock,
  encodeSnpPublicKey,
  ID_AUTH_LAYOUT,
  signIdAuth,
  snpKeyDigest,
} from "../sev/snp/id-block.ts";
import { EMULATED_SNP_SPL } from "../sev/snp/tcb.ts";
import { builtinUefiImage } from "./builtin-uefi.ts";
import { Host } from "./host.ts";
import { vmSpec } from "./test-support.ts";
import type { LaunchInputs, LaunchSpec } from "./types.ts";

const SEED = "snp-host-1";
const HOST_DATA = new Uint8Array(32).map((_, i) => 0xa0 + i);
const DEBIAN_OVMF = "/usr/share/OVMF/OVMF_CODE.fd";

function milan(): Host {
  return new Host({ name: "milan-snp", generation: "milan", seed: SEED });
}

function snpSpec(name: string, patch: Partial<LaunchSpec> = {}): LaunchSpec {
  return vmSpec(name, { security: "sev-snp", ...patch });
}

/** The owner's recomputation from what the host says it measured and the owner's own copy of the firmware. */
function ownerDigest(firmware: Uint8Array, inputs: LaunchInputs): string {
  return toHex(
    computeSnpLaunchDigest({
      firmware,
      vcpus: inputs.vcpus,
      vcpuSignature: inputs.cpu.signature,
      vmmType: "QEMU",
      guestFeatures: BigInt(inputs.guestFeatures ?? 1),
    }),
  );
}

function verify(report: Uint8Array, measurement: string, hostData: Uint8Array) {
  const vcek = emulatedVcekCert("milan", emulatedChipId(SEED), EMULATED_SNP_SPL.milan);
  const chain = new TextEncoder().encode(new EmulatedKds(() => "milan").vcekCertChain("Milan"));
  return verifySnpReport({
    report,
    vcek,
    chain,
    trust: "emulated",
    policy: { measurement: Buffer.from(measurement, "hex"), hostData },
  });
}

describe("SEV-SNP launch on an emulated host", () => {
  it("the built-in UEFI: the guest's report carries the owner's digest, REPORT_DATA, HOST_DATA, and verifies", () => {
    const host = milan();
    host.define(snpSpec("snp", { vcpus: 2, snp: { hostData: HOST_DATA } }));
    const { status } = host.start("snp");
    assert.equal(status.power, "running");
    assert.match(status.console ?? "", /OK/);
    const inputs = status.launchInputs!;
    assert.equal(inputs.security, "sev-snp");
    assert.equal(inputs.guestFeatures, 1);
    assert.equal(inputs.vcpus, 2);
    const expected = ownerDigest(builtinUefiImage(), inputs);
    assert.equal(status.launchDigest, expected, "the host's own record is the owner's digest");

    const reportData = new Uint8Array(64).map((_, i) => i * 3);
    const { report } = host.attestationReport("snp", reportData);
    const r = parseSnpReport(report);
    assert.equal(toHex(r.measurement), expected);
    assert.deepEqual(r.reportData, reportData);
    assert.deepEqual(r.hostData, HOST_DATA);
    assert.equal(r.policy, 0x30000n);
    assert.equal(r.vmpl, 0);
    assert.equal(toHex(verify(report, expected, HOST_DATA).report.measurement), expected);
    assert.throws(
      () => verify(report, expected, new Uint8Array(32)),
      /host/i,
      "another HOST_DATA is refused",
    );

    // A second request: the guest's sequence numbers moved on, the report carries the new REPORT_DATA.
    const again = parseSnpReport(host.attestationReport("snp", new Uint8Array(64).fill(0x5a)).report);
    assert.deepEqual(again.reportData, new Uint8Array(64).fill(0x5a));
    assert.equal(host.status("snp").power, "running");

    // A relaunch measures the same digest again (the RMP pages of the first launch are not reused).
    host.reset("snp");
    const third = parseSnpReport(host.attestationReport("snp", reportData).report);
    assert.equal(toHex(third.measurement), expected);
  });

  it("Debian's OVMF_CODE.fd: launched and measured as owner measure --mode snp, or refused without SEV metadata", () => {
    assert.ok(existsSync(DEBIAN_OVMF), `${DEBIAN_OVMF} is missing: install Debian's 'ovmf' package`);
    const firmware = new Uint8Array(readFileSync(DEBIAN_OVMF));
    const host = milan();
    const spec = snpSpec("ovmf", {
      firmware: { kind: "efi", image: firmware, imageName: DEBIAN_OVMF },
      snp: { hostData: HOST_DATA },
    });
    if (!parseSevMetadata(firmware)) {
      assert.throws(
        () => host.define(spec),
        (e) => isCiphervisorError(e, "SEV_METADATA_MISSING"),
      );
      return;
    }
    host.define(spec);
    const { status } = host.start("ovmf");
    const expected = ownerDigest(firmware, status.launchInputs!);
    const { report } = host.attestationReport("ovmf", new Uint8Array(64).fill(1));
    assert.equal(toHex(parseSnpReport(report).measurement), expected);
    verify(report, expected, HOST_DATA);
  });

  it("a firmware without SEV metadata is refused with SEV_METADATA_MISSING before any launch", () => {
    const fixture = new URL(
      "../../test/fixtures/measure/sevctl/OVMF.amdsev.fd_trimmed_edk2-ovmf-20220126gitbb1bba3d77-4.el9",
      import.meta.url,
    );
    const host = milan();
    const spec = snpSpec("old", { firmware: { kind: "efi", image: new Uint8Array(readFileSync(fixture)) } });
    assert.throws(
      () => host.define(spec),
      (e) => isCiphervisorError(e, "SEV_METADATA_MISSING"),
    );
    // The same image still boots SEV-ES: only SNP needs the block.
    host.define({ ...spec, security: "sev-es" });
    assert.equal(host.start("old").status.power, "running");
  });

  it("SNP_LAUNCH_FINISH checks the ID block: a good one is reported, a wrong signature refuses the launch", () => {
    const rng = seededRandom("snp-id-keys");
    const idKey = generateEcKeyPair(rng);
    const authorKey = generateEcKeyPair(rng);
    const other = generateEcKeyPair(rng);
    const digest = Buffer.from(ownerDigest(builtinUefiImage(), milanInputs()), "hex");
    const block = encodeIdBlock({
      ld: new Uint8Array(digest),
      familyId: new Uint8Array(16).fill(1),
      imageId: new Uint8Array(16).fill(2),
      version: 1,
      guestSvn: 4,
      policy: 0x30000n,
    });

    const host = milan();
    const forged = signIdAuth(block, idKey);
    forged.set(
      signIdAuth(block, other).subarray(ID_AUTH_LAYOUT.idBlockSig, ID_AUTH_LAYOUT.idBlockSig + 0x200),
      ID_AUTH_LAYOUT.idBlockSig,
    );
    host.define(snpSpec("forged", { snp: { idBlock: block, idAuth: forged } }));
    assert.throws(
      () => host.start("forged"),
      (e) =>
        isCiphervisorError(e, "SEV_FIRMWARE") &&
        e.details?.statusName === "BAD_SIGNATURE" &&
        /SNP_LAUNCH_FINISH refused VM 'forged'.*signature/.test(e.message),
    );
    assert.equal(host.status("forged").power, "defined");
    assert.equal(host.platform().pools.snp.used, 0, "the ASID went back to its pool");

    host.define(
      snpSpec("signed", {
        snp: { idBlock: block, idAuth: signIdAuth(block, idKey, authorKey), authorKeyEnabled: true },
      }),
    );
    host.start("signed");
    const r = parseSnpReport(host.attestationReport("signed", new Uint8Array(64)).report);
    assert.deepEqual(r.idKeyDigest, snpKeyDigest(encodeSnpPublicKey(idKey.pub)));
    assert.deepEqual(r.authorKeyDigest, snpKeyDigest(encodeSnpPublicKey(authorKey.pub)));
    assert.equal(r.guestSvn, 4);
    assert.deepEqual(r.familyId, new Uint8Array(16).fill(1));
  });

  it("refuses SEV-SNP on Rome, kernels without SNP, and malformed SNP specs", () => {
    const rome = new Host({ name: "rome-1", generation: "rome", seed: 2 });
    rome.define(snpSpec("snp"));
    assert.throws(
      () => rome.start("snp"),
      (e) =>
        isCiphervisorError(e) &&
        ((e.details?.findings ?? []) as { code: string }[]).some((f) => f.code === "CPU_GENERATION") &&
        /SEV-SNP needs milan/.test(e.message),
    );
    const host = milan();
    host.define(snpSpec("old-kernel", { guestOs: "linux-5.10" }));
    assert.throws(
      () => host.start("old-kernel"),
      (e) =>
        isCiphervisorError(e) &&
        ((e.details?.findings ?? []) as { code: string }[]).some((f) => f.code === "GUEST_OS_UNSUPPORTED"),
    );
    const invalid = (patch: Partial<LaunchSpec>, field: string) =>
      assert.throws(
        () => host.define(snpSpec(`bad-${field}`, patch)),
        (e) => isCiphervisorError(e, "INVALID_INPUT") && e.details?.field === field,
      );
    invalid({ snp: { hostData: new Uint8Array(31) } }, "snp.hostData");
    invalid({ policy: 0x10000 }, "policy");
    invalid({ snp: { authorKeyEnabled: true } }, "snp.authorKeyEnabled");
    invalid({ security: "sev-es", snp: { hostData: HOST_DATA } }, "snp");
    // Only SNP guests have reports, and REPORT_DATA is 64 bytes.
    host.define(vmSpec("es", { security: "sev-es" }));
    host.start("es");
    assert.throws(
      () => host.attestationReport("es", new Uint8Array(64)),
      (e) => isCiphervisorError(e, "CONFLICT"),
    );
    assert.throws(
      () => host.attestationReport("es", new Uint8Array(63)),
      (e) => isCiphervisorError(e, "INVALID_INPUT"),
    );
  });
});

/** The inputs a Milan host records for a one-vCPU SNP launch (its guest CPU), without launching. */
function milanInputs(): LaunchInputs {
  const cpu = milan().platform().guestCpu!;
  return {
    security: "sev-snp",
    vmmProfile: "qemu",
    guestFeatures: 1,
    vcpus: 1,
    cpu,
    images: { firmware: { name: "", sha256: "" } },
  };
}

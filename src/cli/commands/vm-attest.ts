/**
 * `vm launch-session | launch-measurement | launch-secret | launch-finish`: the guest owner's attested launch
 * through the API, like `virsh` with `<dhCert>`/`<session>`, `domlaunchsecinfo` and `domsetlaunchsecstate`. The
 * files are what the owner tools write — sevctl's `NAME_godh.b64` / `NAME_session.b64` (or `owner session`'s), and
 * `owner secret build`'s header and payload, base64 or binary. `launch-measurement` prints exactly the values
 * `owner verify-measurement` takes, what the launch measured (mode, the host's VMM profile, vCPUs, the vCPU model and
 * CPUID signature, the SHA-256 of each image) and the `owner measure` command that rebuilds the launch digest from
 * those values and the owner's own copies of the images; the control plane only relays them, and the owner decides.
 */
import type { Command } from "commander";
import { CiphervisorError } from "../../errors.ts";
import { readInputFile } from "../args.ts";
import { findVm } from "../client/lookup.ts";
import type { ApiLaunchFinish, ApiLaunchMeasurement, ApiLaunchSession } from "../client/types.ts";
import type { CliIo } from "../io.ts";
import { apiCommand, apiFor, type CommonFlags, modeFor } from "../options.ts";
import { json } from "../output/format.ts";
import { fields } from "../output/table.ts";
import { hex } from "../output/vm-table.ts";

/** What `GET /v1/vms/{id}/launch-measurement` answers. */
type LaunchMeasurement = ApiLaunchMeasurement;
type LaunchAnswer = ApiLaunchFinish;

/** The reported launch inputs as `fields` rows. */
function launchInputRows(m: LaunchMeasurement): [string, string | number][] {
  const rows: [string, string | number][] = [
    ["mode", m.securityMode],
    ["vmm-profile", m.vmmProfile],
    ["vcpus", m.vcpus],
  ];
  if (m.vcpuType !== undefined) rows.push(["vcpu-type", m.vcpuType]);
  if (m.cpuSignature) {
    const c = m.cpuSignature;
    rows.push(["vcpu-sig", `${hex(c.value)} (family ${c.family}, model ${c.model}, stepping ${c.stepping})`]);
  }
  if (m.images) {
    rows.push(["firmware", `${m.images.firmware.name} sha256 ${m.images.firmware.sha256}`]);
    for (const k of ["kernel", "initrd", "cmdline"] as const) {
      const image = m.images[k];
      if (image) rows.push([`${k}-sha256`, image.sha256]);
    }
  }
  return rows;
}

const BASE64_TEXT = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * A file as base64 for the API. `binarySize` is the size of the raw form (sevctl and `--format binary` write raw
 * bytes); anything else must be base64 text. Sizes are checked again by the server, which names the field.
 */
export function fileAsBase64(path: string, flag: string, binarySize?: number): string {
  const raw = readInputFile(path, flag);
  const text = Buffer.from(raw).toString("latin1").trim();
  if (text.length > 0 && text.length % 4 === 0 && BASE64_TEXT.test(text)) return text;
  if (binarySize === undefined || raw.length === binarySize || (binarySize === 0 && raw.length > 0)) {
    return Buffer.from(raw).toString("base64");
  }
  throw new CiphervisorError(
    "INVALID_INPUT",
    `${flag} ${path}: neither base64 text nor the raw bytes expected`,
  );
}

export function registerVmAttest(vm: Command, io: CliIo): void {
  apiCommand(
    vm
      .command("launch-session")
      .argument("<name>", "VM name or id (powered off, SEV or SEV-ES, placed on the host whose PDH you used)")
      .requiredOption("--godh <file>", "the GODH certificate: sevctl's NAME_godh.b64 (or 0x824 raw bytes)")
      .requiredOption("--session <file>", "the session blob: sevctl's NAME_session.b64 (or 0x80 raw bytes)")
      .description("set the guest owner's launch session; the next power-on starts paused for attestation"),
  ).action(async (name: string, flags: CommonFlags & { godh: string; session: string }) => {
    const mode = modeFor(flags);
    const body = {
      godhCert: fileAsBase64(flags.godh, "--godh", 0x824),
      session: fileAsBase64(flags.session, "--session", 0x80),
    };
    const api = apiFor(io, flags);
    const v = await findVm(api, name);
    const r = await api.request<ApiLaunchSession>("PUT", `/v1/vms/${v.id}/launch-session`, { body });
    if (mode === "json") io.out(json(r.body));
    else {
      io.out(
        fields([
          ["vm", v.name],
          ["host", r.body.host],
          ["policy", hex(r.body.policy)],
          ["attestation", r.body.attestationState],
        ]),
      );
      if (flags.quiet !== true) io.err(`note: ${r.body.note}\n`);
    }
  });

  apiCommand(
    vm
      .command("launch-measurement")
      .argument("<name>", "VM name or id (paused for attestation)")
      .description("print the raw launch measurement with the values `owner verify-measurement` needs"),
  ).action(async (name: string, flags: CommonFlags) => {
    const mode = modeFor(flags);
    const api = apiFor(io, flags);
    const v = await findVm(api, name);
    const m = await api.get<LaunchMeasurement>(`/v1/vms/${v.id}/launch-measurement`);
    if (mode === "json") {
      io.out(json(m));
      return;
    }
    // Named like the flags of `owner verify-measurement` / `owner secret build`, so the values carry over as is.
    io.out(
      fields([
        ["launch-measure-blob", m.measurement],
        ["api-major", m.apiMajor],
        ["api-minor", m.apiMinor],
        ["build", m.build],
        ["policy", hex(m.policy)],
        ["host", m.host],
        ["loader-sha256", m.loaderSha256],
        ...launchInputRows(m),
      ]),
    );
    // The server builds the command (control/services/owner-measure.ts); its placeholders are named below.
    io.out(`\nciphervisor owner measure ${m.ownerMeasure.join(" ")}\n`);
    if (flags.quiet !== true) {
      const images = [`FIRMWARE = your copy of the firmware (sha256 ${m.loaderSha256})`];
      if (m.images?.firmware.name === "builtin-uefi") {
        images.push("'ciphervisor firmware export --out FIRMWARE' writes the built-in one");
      }
      if (m.images?.kernel)
        images.push("KERNEL, INITRD, CMDLINE: your direct-boot kernel, initrd and cmdline");
      io.err(
        `the command above recomputes the launch digest; ${images.join("; ")}. The same image flags go to 'owner verify-measurement'\n`,
      );
      io.err("not verified here: check it with 'ciphervisor owner verify-measurement' and your TIK\n");
    }
  });

  apiCommand(
    vm
      .command("launch-secret")
      .argument("<name>", "VM name or id (paused for attestation)")
      .requiredOption(
        "--header <file>",
        "the packet header from `owner secret build --out-header` (base64 or raw)",
      )
      .requiredOption("--secret <file>", "the payload from `owner secret build --out-secret` (base64 or raw)")
      .description("inject the owner's secret (LAUNCH_SECRET) and finish the launch: the VM runs"),
  ).action(async (name: string, flags: CommonFlags & { header: string; secret: string }) => {
    const mode = modeFor(flags);
    const body = {
      header: fileAsBase64(flags.header, "--header", 0x34),
      secret: fileAsBase64(flags.secret, "--secret", 0),
    };
    const api = apiFor(io, flags);
    const v = await findVm(api, name);
    const r = await api.post<LaunchAnswer>(`/v1/vms/${v.id}/launch-secret`, body);
    printAnswer(io, mode, r);
  });

  apiCommand(
    vm
      .command("launch-finish")
      .argument("<name>", "VM name or id (paused for attestation)")
      .description("finish an attested launch without a secret (LAUNCH_FINISH): the VM runs"),
  ).action(async (name: string, flags: CommonFlags) => {
    const mode = modeFor(flags);
    const api = apiFor(io, flags);
    const v = await findVm(api, name);
    printAnswer(io, mode, await api.post<LaunchAnswer>(`/v1/vms/${v.id}/launch-finish`, undefined));
  });
}

function printAnswer(io: CliIo, mode: string, r: LaunchAnswer): void {
  if (mode === "json") io.out(json(r));
  else
    io.out(
      fields([
        ["vm", r.name],
        ["power", r.powerState],
        ["attestation", r.attestationState],
      ]),
    );
}

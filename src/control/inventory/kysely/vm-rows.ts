/** Conversion between VM objects and `vms` rows, with validation of everything a caller can set. */
import type { Selectable } from "kysely";
import { CiphervisorError } from "../../../errors.ts";
import { canonicalJson, parseStoredJson } from "../../json.ts";
import {
  ATTESTATION_STATES,
  DEVICE_KINDS,
  type NewVm,
  POWER_STATES,
  SECURITY_MODES,
  type StoredVm,
  type Vm,
  type VmPatch,
  type VmSpec,
} from "../types.ts";
import { intInRange, oneOf, validName } from "../validate.ts";
import type { VmTable } from "./schema.ts";

const MAX_DEVICES = 64;

export function toVm(r: Selectable<VmTable>): Vm {
  return {
    id: r.id,
    name: r.name,
    clusterId: r.cluster_id,
    hostId: r.host_id,
    spec: parseStoredJson<VmSpec>(r.spec, "VM spec"),
    powerState: oneOf(r.power_state, POWER_STATES, "powerState"),
    securityMode: oneOf(r.security_mode, SECURITY_MODES, "securityMode"),
    policy: Number(r.policy),
    attestationState: oneOf(r.attestation_state, ATTESTATION_STATES, "attestationState"),
    labels: parseStoredJson<Record<string, string>>(r.labels, "VM labels"),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    version: Number(r.version),
  };
}

/** A row as a `StoredVm`: the enumerations checked (cheap), spec and labels left as their canonical text. */
export function toStoredVm(r: Selectable<VmTable>): StoredVm {
  return {
    id: r.id,
    name: r.name,
    clusterId: r.cluster_id,
    hostId: r.host_id,
    specJson: r.spec,
    powerState: oneOf(r.power_state, POWER_STATES, "powerState"),
    securityMode: oneOf(r.security_mode, SECURITY_MODES, "securityMode"),
    policy: Number(r.policy),
    attestationState: oneOf(r.attestation_state, ATTESTATION_STATES, "attestationState"),
    labelsJson: r.labels,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    version: Number(r.version),
  };
}

/** A stored session is two base64 strings of the exact sizes LAUNCH_START takes (GODH 0x824, session 0x80). */
function validLaunchSession(l: VmSpec["launchSession"]): void {
  const ok = (v: unknown, bytes: number): boolean =>
    typeof v === "string" &&
    /^[A-Za-z0-9+/]*={0,2}$/.test(v) &&
    v.length % 4 === 0 &&
    Buffer.from(v, "base64").length === bytes;
  if (typeof l !== "object" || l === null || !ok(l.godhCert, 0x824) || !ok(l.session, 0x80)) {
    throw new CiphervisorError("INVALID_INPUT", "spec.launchSession must hold base64 godhCert and session", {
      details: { field: "spec.launchSession" },
    });
  }
}

function validSpec(s: VmSpec): string {
  intInRange(s.vcpus, 1, 1024, "spec.vcpus");
  intInRange(s.memoryMiB, 1, 64 * 1024 * 1024, "spec.memoryMiB");
  validName(s.guestOs, "spec.guestOs");
  oneOf(s.firmware, ["efi", "bios"], "spec.firmware");
  intInRange(s.hardwareVersion, 1, 1000, "spec.hardwareVersion");
  if (s.machine !== undefined) oneOf(s.machine, ["q35", "pc"], "spec.machine");
  if (s.secureBoot !== undefined && typeof s.secureBoot !== "boolean") {
    throw new CiphervisorError("INVALID_INPUT", "spec.secureBoot must be a boolean", {
      details: { field: "spec.secureBoot" },
    });
  }
  if (s.attestation !== undefined && typeof s.attestation !== "boolean") {
    throw new CiphervisorError("INVALID_INPUT", "spec.attestation must be a boolean", {
      details: { field: "spec.attestation" },
    });
  }
  if (s.launchSession !== undefined) validLaunchSession(s.launchSession);
  if (s.devices !== undefined) {
    if (!Array.isArray(s.devices) || s.devices.length > MAX_DEVICES) {
      throw new CiphervisorError("INVALID_INPUT", `spec.devices must be a list of at most ${MAX_DEVICES}`, {
        details: { field: "spec.devices" },
      });
    }
    s.devices.forEach((d, i) => {
      oneOf(d.kind, DEVICE_KINDS, `spec.devices.${i}.kind`);
      if (d.detail !== undefined) validName(d.detail, `spec.devices.${i}.detail`);
    });
  }
  return canonicalJson(s);
}

function validLabels(labels: Readonly<Record<string, string>>): string {
  for (const [k, v] of Object.entries(labels)) {
    validName(k, "labels key");
    if (typeof v !== "string" || v.length > 255) {
      throw new CiphervisorError("INVALID_INPUT", `label values must be strings of at most 255 characters`, {
        details: { field: `labels.${k}` },
      });
    }
  }
  return canonicalJson(labels);
}

/** Column values for the fields present in `p`, validated. */
export function vmColumns(p: VmPatch): Partial<VmTable> {
  const c: Partial<VmTable> = {};
  if (p.name !== undefined) c.name = validName(p.name, "name");
  if (p.clusterId !== undefined) c.cluster_id = p.clusterId;
  if (p.hostId !== undefined) c.host_id = p.hostId;
  if (p.spec !== undefined) {
    c.spec = validSpec(p.spec);
    c.guest_os = p.spec.guestOs;
  }
  if (p.powerState !== undefined) c.power_state = oneOf(p.powerState, POWER_STATES, "powerState");
  if (p.securityMode !== undefined) c.security_mode = oneOf(p.securityMode, SECURITY_MODES, "securityMode");
  if (p.policy !== undefined) c.policy = intInRange(p.policy, 0, 0xffffffff, "policy");
  if (p.attestationState !== undefined) {
    c.attestation_state = oneOf(p.attestationState, ATTESTATION_STATES, "attestationState");
  }
  if (p.labels !== undefined) c.labels = validLabels(p.labels);
  return c;
}

/** A full row for a new VM, with defaults (off, ordinary, unplaced). */
export function newVmRow(vm: NewVm, id: string, now: string): VmTable {
  const c = vmColumns(vm);
  return {
    id,
    name: c.name ?? validName(vm.name, "name"),
    cluster_id: c.cluster_id ?? null,
    host_id: c.host_id ?? null,
    spec: c.spec ?? validSpec(vm.spec),
    guest_os: c.guest_os ?? vm.spec.guestOs,
    power_state: c.power_state ?? "off",
    security_mode: c.security_mode ?? "none",
    policy: c.policy ?? 0,
    attestation_state: c.attestation_state ?? "none",
    labels: c.labels ?? "{}",
    created_at: now,
    updated_at: now,
    version: 1,
  };
}

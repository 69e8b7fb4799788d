/**
 * The one error type of ciphervisor, and the one table of its stable codes. Every failure a user can cause carries
 * a `code` from `ERROR_CODES`; the code's class decides the HTTP status the API answers (`api/problem.ts`) and the
 * exit code the CLI ends with (`cli/exit-codes.ts`), so no layer keeps its own list. The message is one line a
 * person can act on and never contains key material or tokens.
 *
 * Refusals are codes of their own: the operation table's (LIVE_MIGRATION_UNSUPPORTED, …), the requirement and
 * compatibility checks' (GUEST_OS_UNSUPPORTED, POWER_STATE, …) and placement's (NO_VALID_HOST) are thrown, stored
 * in operation results, answered and printed as they are — nobody unwraps a generic code to find the real one.
 *
 * @example
 * ```ts
 * throw new CiphervisorError("INVALID_INPUT", "--policy must be a 32-bit number, got 'x'");
 * ```
 */

/**
 * What kind of failure a code is, for the callers that map codes to numbers:
 * - `usage`, `invalid`: the request itself is wrong (HTTP 400, exit 2);
 * - `bad-data`: a file or blob could not be parsed (400, exit 1);
 * - `unauthenticated`, `forbidden` (401 / 403, exit 5); `not-found` (404, exit 4);
 * - `conflict`: the object's state does not allow it now (409, exit 6);
 * - `refused`: a rule refuses it — the operation table, a requirement, placement, capacity (409, exit 6);
 * - `check-failed`: a certificate, chain, measurement or report did not verify (409, exit 1);
 * - `host-failure`: the firmware, the machine or the guest failed (409, exit 1);
 * - `rate-limited`: too many failed authentications from one address (429 with Retry-After, exit 5: the client's
 *   credentials are what fails, and a script that retried at once would only extend the wait);
 * - `unavailable` (503, exit 1); `interrupted` (503, exit 130); `internal` (500, exit 1).
 */
export type ErrorClass =
  | "usage"
  | "invalid"
  | "bad-data"
  | "unauthenticated"
  | "forbidden"
  | "not-found"
  | "conflict"
  | "refused"
  | "check-failed"
  | "host-failure"
  | "rate-limited"
  | "unavailable"
  | "interrupted"
  | "internal";

interface CodeInfo {
  readonly class: ErrorClass;
  /** One line for the docs: when the code is used. */
  readonly summary: string;
}

/** Every stable code. Add new codes here, with their class; the README's exit-code table follows the classes. */
export const ERROR_CODES = {
  // Requests and usage
  USAGE: { class: "usage", summary: "a malformed command line" },
  CONFIRMATION_REQUIRED: { class: "usage", summary: "a command that needs --yes was not confirmed" },
  INVALID_INPUT: {
    class: "invalid",
    summary: "a request field or flag value is invalid (the field is named)",
  },
  NOT_FOUND: { class: "not-found", summary: "the VM, host, operation or token does not exist" },
  CONFLICT: { class: "conflict", summary: "the object's current state does not allow the request" },
  UNAUTHENTICATED: { class: "unauthenticated", summary: "no valid API token" },
  FORBIDDEN: { class: "forbidden", summary: "the token's roles lack a permission (named)" },
  RATE_LIMITED: {
    class: "rate-limited",
    summary: "too many failed authentications from this address; retry after the Retry-After seconds",
  },
  INTERRUPTED: { class: "interrupted", summary: "interrupted (Ctrl-C, or a node shutting down)" },
  IO: { class: "unavailable", summary: "a file, database or host could not be reached" },
  // A damaged inventory: /readyz names it, and the API refuses every write while it lasts
  STORE_CORRUPT: {
    class: "unavailable",
    summary: "the inventory database is corrupt or truncated (integrity check failed); writes are refused",
  },
  STORE_READ_ONLY: {
    class: "unavailable",
    summary: "the inventory database cannot be written (read-only file, directory or server)",
  },
  STORE_UNREACHABLE: { class: "unavailable", summary: "the PostgreSQL inventory does not answer" },
  INTERNAL: { class: "internal", summary: "an unexpected failure (never with internals in the message)" },
  // Binary formats
  MALFORMED: { class: "bad-data", summary: "a structure does not parse (wrong size, magic or field)" },
  TRUNCATED: { class: "bad-data", summary: "a structure ends early" },
  // Certificates, chains, attestation
  CERT_INVALID: { class: "check-failed", summary: "a certificate is invalid" },
  CHAIN_INVALID: {
    class: "check-failed",
    summary: "a certificate chain does not verify (the link is named)",
  },
  SIGNATURE_INVALID: { class: "check-failed", summary: "a signature does not verify" },
  MEASUREMENT_MISMATCH: { class: "check-failed", summary: "a launch measurement is not the expected one" },
  REPORT_INVALID: { class: "check-failed", summary: "an SEV-SNP attestation report does not verify" },
  AUDIT_CHAIN_BROKEN: { class: "check-failed", summary: "the audit log's hash chain does not hold" },
  // The Secure Processor, the machine, the guest
  SEV_FIRMWARE: { class: "host-failure", summary: "the firmware refused a command (status name and number)" },
  VMRUN_FAILED: { class: "host-failure", summary: "VMRUN refused the VM's state" },
  GUEST_FAULT: { class: "host-failure", summary: "the guest faulted or crashed while booting" },
  RMP_VIOLATION: {
    class: "host-failure",
    summary: "a hypervisor write hit a page the RMP assigns to a guest or to the Secure Processor (#PF)",
  },
  // Requirement checks (the hypervisor's, also run by the control plane)
  REQUIREMENT_FAILED: { class: "refused", summary: "one or more requirement checks failed (each listed)" },
  CPU_GENERATION: {
    class: "refused",
    summary: "the host's CPU generation lacks the mode (SEV-ES needs Rome)",
  },
  SEV_ES_POOL_EMPTY: { class: "refused", summary: "the BIOS split leaves the host no SEV-ES key slots" },
  ASID_POOL_EXHAUSTED: { class: "refused", summary: "every key slot of the pool the VM needs is taken" },
  GUEST_OS_UNSUPPORTED: { class: "refused", summary: "the guest OS does not support the mode" },
  EFI_REQUIRED: { class: "refused", summary: "encrypted VMs boot UEFI firmware" },
  HARDWARE_VERSION: { class: "refused", summary: "the virtual hardware version is too old for the mode" },
  DEVICE_UNSUPPORTED: { class: "refused", summary: "a device cannot work with encrypted memory" },
  SEV_NOT_INITIALIZED: { class: "refused", summary: "the host's SEV platform is not initialized" },
  SEV_UNSUPPORTED: {
    class: "refused",
    summary: "the host reports no SEV (CPU generation unknown): it runs ordinary VMs only",
  },
  // Compatibility checks only the control plane makes
  POWER_STATE: { class: "refused", summary: "a security-mode change needs the VM powered off" },
  HOST_MODE: { class: "refused", summary: "the host's ES pool serves SEV-SNP guests" },
  MAINTENANCE: { class: "refused", summary: "the host is in (or entering) maintenance mode" },
  HOST_DISCONNECTED: { class: "refused", summary: "the host is disconnected" },
  SECURE_BOOT: { class: "refused", summary: "SEV does not work with Secure Boot" },
  SAME_HOST: { class: "refused", summary: "a migration needs another host" },
  NO_VALID_HOST: { class: "refused", summary: "placement found no host (a reason per host)" },
  // The operation table (hypervisor/operation-rules.ts)
  LIVE_MIGRATION_UNSUPPORTED: { class: "refused", summary: "live migration of an SEV or SEV-ES VM" },
  MEMORY_SNAPSHOT_UNSUPPORTED: { class: "refused", summary: "a memory snapshot of an SEV or SEV-ES VM" },
  SUSPEND_UNSUPPORTED: { class: "refused", summary: "suspend or resume of an SEV or SEV-ES VM" },
  HOT_ADD_UNSUPPORTED: {
    class: "refused",
    summary: "hot-adding a device, vCPU or memory to an encrypted VM",
  },
  FAULT_TOLERANCE_UNSUPPORTED: { class: "refused", summary: "Fault Tolerance for an encrypted VM" },
  HOT_CLONE_UNSUPPORTED: { class: "refused", summary: "cloning a running encrypted VM" },
  MEMORY_DUMP_UNSUPPORTED: { class: "refused", summary: "a memory dump of a VM whose policy forbids debug" },
  // Host drivers and long operations
  LIBVIRT_UNSUPPORTED: {
    class: "refused",
    summary: "the libvirt host (or its connection driver) cannot do it",
  },
  MAINTENANCE_INCOMPLETE: { class: "refused", summary: "a drain left VMs that could not move" },
  // The image catalog (control/images)
  IMAGE_TOO_LARGE: { class: "invalid", summary: "an uploaded image is larger than the catalog's limit" },
  IMAGE_KIND: {
    class: "invalid",
    summary: "a VM names an image of the wrong kind (a kernel as firmware, …)",
  },
  IMAGE_IN_USE: {
    class: "conflict",
    summary: "an image some VM boots cannot be deleted (the VMs are named)",
  },
  SEV_ES_RESET_BLOCK_MISSING: {
    class: "refused",
    summary: "the firmware image has no SEV-ES AP reset block, so it cannot boot an SEV-ES VM",
  },
  KERNEL_HASHES_UNSUPPORTED: {
    class: "refused",
    summary: "the firmware image declares no kernel-hashes area, so it cannot measure a direct kernel boot",
  },
  SEV_METADATA_MISSING: {
    class: "refused",
    summary: 'the firmware image has no SEV metadata ("ASEV" block), so it cannot launch an SEV-SNP VM',
  },
} as const satisfies Record<string, CodeInfo>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** True when `code` is one of ciphervisor's stable codes. */
export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_CODES, code);
}

/** The class of a code. */
export function errorClass(code: ErrorCode): ErrorClass {
  return ERROR_CODES[code].class;
}

export interface ErrorOptions {
  cause?: unknown;
  /** Structured, non-secret facts that help a caller act (field names, pool sizes, …). */
  details?: Record<string, unknown>;
}

export class CiphervisorError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "CiphervisorError";
    this.code = code;
    this.details = options.details;
  }
}

/** True when `e` is a CiphervisorError, optionally with the given code. */
export function isCiphervisorError(e: unknown, code?: ErrorCode): e is CiphervisorError {
  return e instanceof CiphervisorError && (code === undefined || e.code === code);
}

/**
 * True for the failures a plan reports as "refused" rather than answering as an error: the object's state or a rule
 * stands in the way (`conflict`, `refused`), as opposed to a malformed request, a missing object or a permission.
 */
export function isRefusal(e: unknown): e is CiphervisorError {
  if (!(e instanceof CiphervisorError)) return false;
  const c = errorClass(e.code);
  return c === "conflict" || c === "refused";
}

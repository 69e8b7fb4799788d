/**
 * virsh's error lines as ciphervisor errors. virsh prints `error: …` lines (usually a summary, then libvirt's own
 * message); each becomes ONE line with a stable code, so the API and CLI can act on a libvirt host's answers the
 * way they act on an emulated host's.
 */
import { CiphervisorError } from "../../../errors.ts";

/** The code of an operation a libvirt host (or its connection driver) does not implement. */
export const LIBVIRT_UNSUPPORTED = "LIBVIRT_UNSUPPORTED" as const;

/** True when virsh's message says the connection driver lacks the API (the test driver, an old libvirt). */
export function isUnsupportedMessage(message: string): boolean {
  return /not supported by the connection driver|unsupported flags|this function is not supported|unsupported configuration|Operation not supported/i.test(
    message,
  );
}

/** LIBVIRT_UNSUPPORTED for something this libvirt host cannot do; `what` names it in words. */
export function unsupported(uri: string, what: string, cause?: string): CiphervisorError {
  return new CiphervisorError(
    LIBVIRT_UNSUPPORTED,
    `${what} is not supported by this libvirt host (${uri})${cause ? `: ${cause}` : ""}`,
    { details: { uri } },
  );
}

/**
 * Maps virsh's error text (the `error:` lines joined) to a CiphervisorError. Order matters: libvirt's "domain not
 * found" also contains "failed", and "is not running" is a state conflict, not an I/O failure.
 */
export function virshError(uri: string, command: string, message: string): CiphervisorError {
  const verb = command.split(" ")[0] ?? command;
  const text = message.replace(/\s+/g, " ").trim() || "virsh reported an error without a message";
  const details = { uri, command: verb };
  if (/failed to get domain|Domain not found|no domain with matching/i.test(text)) {
    return new CiphervisorError("NOT_FOUND", `libvirt host ${uri}: ${text}`, { details });
  }
  if (isUnsupportedMessage(text)) return unsupported(uri, `virsh ${verb}`, text);
  if (
    /already exists|already defined|already active|already running|is not running|domain is not running|not valid: domain|is active|Requested operation is not valid/i.test(
      text,
    )
  ) {
    return new CiphervisorError("CONFLICT", `libvirt host ${uri}: ${text}`, { details });
  }
  if (/XML error|XML document failed|invalid argument|unsupported configuration|expected/i.test(text)) {
    return new CiphervisorError("INVALID_INPUT", `libvirt host ${uri} rejected ${verb}: ${text}`, {
      details,
    });
  }
  return new CiphervisorError("IO", `libvirt host ${uri}: ${verb} failed: ${text}`, { details });
}

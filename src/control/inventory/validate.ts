/**
 * Input checks the inventory applies to every write, whatever the caller (API, CLI, operations). The API validates
 * earlier with its schemas; these keep a bad value from reaching the database from anywhere else.
 */
import { CiphervisorError } from "../../errors.ts";

/** `value` if it is one of `allowed`, else INVALID_INPUT naming the field. */
export function oneOf<T extends string>(value: string, allowed: readonly T[], field: string): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new CiphervisorError("INVALID_INPUT", `${field} must be one of ${allowed.join(", ")}`, {
    details: { field },
  });
}

/** A non-empty name without control characters, at most 255 characters. */
export function validName(value: string, field: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  if (value.length === 0 || value.length > 255 || /[\u0000-\u001f\u007f]/.test(value)) {
    throw new CiphervisorError("INVALID_INPUT", `${field} must be 1–255 printable characters`, {
      details: { field },
    });
  }
  return value;
}

/** An integer in [min, max]. */
export function intInRange(value: number, min: number, max: number, field: string): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new CiphervisorError("INVALID_INPUT", `${field} must be an integer from ${min} to ${max}`, {
      details: { field },
    });
  }
  return value;
}

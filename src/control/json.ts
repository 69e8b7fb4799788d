/**
 * JSON values as the control plane stores them (VM specs, operation parameters, audit details), and the canonical
 * encoding that audit hashes are computed over.
 */
import { CiphervisorError } from "../errors.ts";

/** A JSON value. */
export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
/**
 * A JSON object. Members may be `undefined` (absent), so typed records with optional fields are JSON objects too;
 * `canonicalJson` drops them as `JSON.stringify` does.
 */
export type JsonObject = { [key: string]: JsonValue | undefined };

/**
 * Canonical JSON: object keys sorted by UTF-16 code units, no whitespace, numbers in ECMAScript's shortest
 * round-trip form (the same rules as RFC 8785 JCS for the values we allow). Two equal values always encode to the
 * same string, and `JSON.parse` of the result gives the value back, so a hash over this string survives a store
 * round trip. Non-finite numbers and non-JSON values are rejected rather than silently turned into `null`.
 *
 * @example
 * ```ts
 * canonicalJson({ b: 1, a: [true, null] }); // '{"a":[true,null],"b":1}'
 * ```
 */
export function canonicalJson(value: JsonValue): string {
  // The audit chain and the item results encode two small objects per VM of a bulk operation, built by our own
  // code with their keys already in order: for those JSON.stringify (native) writes exactly the canonical text,
  // at about a third of the cost of encoding them member by member.
  return inCanonicalOrder(value) ? JSON.stringify(value) : sortedJson(value);
}

/**
 * Whether `JSON.stringify(value)` is already canonical: every object a plain one whose keys enumerate in sorted
 * order (JSON.stringify writes them in that order; integer-like keys enumerate first, so `{"10":…,"9":…}` is not),
 * every number finite, no array element undefined and nothing that is not JSON (a function, a Date's toJSON).
 */
function inCanonicalOrder(value: unknown): boolean {
  switch (typeof value) {
    case "string":
    case "boolean":
      return true;
    case "number":
      return Number.isFinite(value);
    case "object": {
      if (value === null) return true;
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) if (!inCanonicalOrder(value[i])) return false;
        return true;
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) return false;
      const o = value as Record<string, unknown>;
      let prev: string | undefined;
      for (const k in o) {
        if (!Object.hasOwn(o, k)) return false;
        if (prev !== undefined && !(prev < k)) return false;
        prev = k;
        const v = o[k];
        if (v !== undefined && !inCanonicalOrder(v)) return false;
      }
      return true;
    }
    default:
      return false;
  }
}

/** Canonical JSON written member by member, sorting each object's keys; rejects what is not JSON. */
function sortedJson(value: JsonValue): string {
  // String concatenation rather than map/join: the intermediate arrays were most of the cost.
  switch (typeof value) {
    case "string":
    case "boolean":
      return JSON.stringify(value);
    case "number":
      if (!Number.isFinite(value)) throw new CiphervisorError("INVALID_INPUT", "JSON numbers must be finite");
      return JSON.stringify(value);
    case "object": {
      if (value === null) return "null";
      if (Array.isArray(value)) {
        let out = "[";
        for (let i = 0; i < value.length; i++)
          out += (i === 0 ? "" : ",") + sortedJson(value[i] as JsonValue);
        return `${out}]`;
      }
      // The default sort compares UTF-16 code units, which is the order canonical JSON asks for.
      const keys = Object.keys(value).sort();
      let out = "{";
      for (const k of keys) {
        const v = value[k];
        // Like JSON.stringify, an undefined member is absent; this keeps optional fields easy to pass through.
        if (v === undefined) continue;
        out += `${out.length === 1 ? "" : ","}${JSON.stringify(k)}:${sortedJson(v)}`;
      }
      return `${out}}`;
    }
    default:
      throw new CiphervisorError("INVALID_INPUT", `not a JSON value: ${typeof value}`);
  }
}

/** Parses JSON text read back from the store; corrupt text is an internal error, not user input. */
export function parseStoredJson<T extends JsonValue>(text: string, what: string): T {
  try {
    return JSON.parse(text) as T;
  } catch (cause) {
    throw new CiphervisorError("INTERNAL", `stored ${what} is not valid JSON`, { cause });
  }
}

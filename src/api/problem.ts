/**
 * Errors as RFC 9457 problem details (`application/problem+json`): a `type` URI per stable code, the HTTP status,
 * a one-line `detail` a person can act on, the stable `code`, and — for validation errors — every failed field as
 * a JSON Pointer into the request part it came from. Nothing else of an error leaves the server: no stack, no
 * cause, no request echo (so a token or key in a request can never come back in an error).
 */
import type { FastifyError } from "fastify";
import { type ErrorClass, errorClass, isCiphervisorError, isErrorCode } from "../errors.ts";
import { pathWithoutSecrets } from "./redact.ts";
import { TEXT_PATTERN } from "./schemas/common.ts";

export const PROBLEM_CONTENT_TYPE = "application/problem+json";

/** One failed field of a request. */
export interface FieldError {
  /** The request part: body, querystring, params or headers. */
  readonly in: string;
  /** JSON Pointer to the field within that part, e.g. `/spec/vcpus`. */
  readonly path: string;
  readonly message: string;
}

export interface Problem {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly detail: string;
  readonly code: string;
  readonly instance?: string;
  readonly errors?: FieldError[];
  /** Further members (operationId, findings, candidates, …): facts, never secrets. */
  readonly [extension: string]: unknown;
}

/** HTTP status per class of code (`errors.ts` classes every code). */
const STATUS: Readonly<Record<ErrorClass, number>> = {
  usage: 400,
  invalid: 400,
  "bad-data": 400,
  unauthenticated: 401,
  forbidden: 403,
  "not-found": 404,
  conflict: 409,
  refused: 409,
  "check-failed": 409,
  "host-failure": 409,
  "rate-limited": 429,
  unavailable: 503,
  interrupted: 503,
  internal: 500,
};

const TITLES: Readonly<Record<number, string>> = {
  400: "Invalid request",
  401: "Authentication required",
  403: "Permission denied",
  404: "Not found",
  405: "Method not allowed",
  409: "Conflict",
  413: "Request too large",
  414: "URI too long",
  415: "Unsupported media type",
  429: "Too many requests",
  431: "Request headers too large",
  500: "Internal error",
  503: "Service unavailable",
};

/**
 * The HTTP status of a stable code. Codes outside the table are the firmware's status names (BAD_MEASUREMENT, …),
 * which a refused firmware command answers with: conflicts.
 */
export function statusForCode(code: string): number {
  if (isErrorCode(code)) return STATUS[errorClass(code)];
  if (/^[A-Z][A-Z0-9_]*$/.test(code)) return 409;
  return 500;
}

/** The problem `type` URI of a code (stable, documented in /docs). */
export function problemType(code: string): string {
  return `urn:ciphervisor:problem:${code}`;
}

export function problem(
  status: number,
  code: string,
  detail: string,
  extensions: Record<string, unknown> = {},
): Problem {
  return {
    type: problemType(code),
    title: TITLES[status] ?? (status >= 500 ? "Internal error" : "Request failed"),
    status,
    detail,
    code,
    ...extensions,
  };
}

/** `spec.vcpus` → `/spec/vcpus` (the store and services name fields with dots). */
export function dottedToPointer(field: string): string {
  return `/${field
    .split(".")
    .map((p) => p.replace(/~/g, "~0").replace(/\//g, "~1"))
    .join("/")}`;
}

interface AjvError {
  instancePath?: string;
  keyword?: string;
  message?: string;
  params?: Record<string, unknown>;
  /** Set on the errors of a `propertyNames` check: the key that failed it. */
  propertyName?: string;
}

/** What a failed `TEXT_PATTERN` means, in words (the pattern itself tells a person little). */
const NO_CONTROL_CHARACTERS =
  "must not contain control characters (C0, DEL or C1, such as ESC, BEL or a newline)";

/** `/labels/a~1b`: one more JSON Pointer segment. */
function pointerAppend(path: string, key: string): string {
  return `${path}/${key.replace(/~/g, "~0").replace(/\//g, "~1")}`;
}

/**
 * Field errors from a fastify (Ajv) validation failure. A bad key (of labels) is reported at its object, not under
 * the key itself, so the key's characters never come back in the answer.
 */
function fieldErrors(e: FastifyError): FieldError[] {
  const part = e.validationContext ?? "body";
  const all = (e.validation ?? []) as AjvError[];
  const badKeys = new Set(
    all.filter((v) => v.propertyName !== undefined).map((v) => `${v.instancePath ?? ""}\0${v.propertyName}`),
  );
  const out: FieldError[] = [];
  for (const v of all) {
    let path = v.instancePath ?? "";
    const p = v.params ?? {};
    // Ajv follows a key's own errors with a summary ("property name must be valid"); those say it better.
    if (v.keyword === "propertyNames") continue;
    if (v.keyword === "required" && typeof p.missingProperty === "string") {
      path = pointerAppend(path, p.missingProperty);
    }
    if (v.keyword === "additionalProperties" && typeof p.additionalProperty === "string") {
      if (badKeys.has(`${path}\0${p.additionalProperty}`)) continue;
      if (TEXT_RE.test(p.additionalProperty)) {
        out.push({
          in: part,
          path: pointerAppend(path, p.additionalProperty),
          message: "is not a known field",
        });
      } else
        out.push({
          in: part,
          path: path === "" ? "/" : path,
          message: `has a key that ${NO_CONTROL_CHARACTERS}`,
        });
      continue;
    }
    let message = v.message ?? "is invalid";
    if (v.keyword === "enum" && Array.isArray(p.allowedValues)) {
      message = `must be one of ${p.allowedValues.map(String).join(", ")}`;
    }
    if (v.keyword === "pattern" && p.pattern === TEXT_PATTERN) message = NO_CONTROL_CHARACTERS;
    if (v.propertyName !== undefined) message = `has a key that ${message}`;
    out.push({ in: part, path: path === "" ? "/" : path, message });
  }
  return out;
}

const TEXT_RE = new RegExp(TEXT_PATTERN, "u");

/** Longest request path a problem repeats (`instance`, a 404's detail): a long URL is cut, never echoed whole. */
const MAX_ECHOED_PATH = 200;

/**
 * Field errors a problem lists. Ajv reports every failed field (`allErrors`), and an unknown key's error names the
 * key: a body of a thousand long unknown keys would come back whole, 100 KiB of the client's own input. The first
 * ones are listed, each pointer cut like a path, and the detail says how many more there were.
 */
export const MAX_FIELD_ERRORS = 8;

/** A field error's pointer as a problem shows it: cut to `MAX_ECHOED_PATH` characters. */
function shownField(e: FieldError): FieldError {
  return e.path.length > MAX_ECHOED_PATH ? { ...e, path: `${e.path.slice(0, MAX_ECHOED_PATH)}…` } : e;
}

/**
 * The request path as a problem may show it: without the query, a segment holding a token-shaped secret blanked
 * (`redact.ts`), cut to `MAX_ECHOED_PATH` characters, control characters dropped (they cannot arrive raw in a URL,
 * but a proxy or a test might hand one over).
 */
export function shownPath(url: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: dropping control characters is the point.
  const path = pathWithoutSecrets(url.split("?")[0] ?? "").replace(/[\x00-\x1f\x7f-\x9f]/g, "");
  return path.length > MAX_ECHOED_PATH ? `${path.slice(0, MAX_ECHOED_PATH)}…` : path;
}

/** Pulls safe extension members out of an error's details. */
function extensionsOf(details: Record<string, unknown> | undefined): Record<string, unknown> {
  if (!details) return {};
  const out: Record<string, unknown> = {};
  for (const key of [
    "findings",
    "candidates",
    "operationId",
    "permission",
    "permissions",
    "vm",
    "powerState",
    "mode",
    "operation",
    "retryable",
    "retryAfter",
  ]) {
    if (details[key] !== undefined) out[key] = details[key];
  }
  return out;
}

/** Details for fastify's own errors (`FST_ERR_*`), which never quote the request. */
const FRAMEWORK_DETAILS: Readonly<Record<string, string>> = {
  FST_ERR_CTP_INVALID_JSON_BODY: "the request body is not valid JSON",
  FST_ERR_CTP_EMPTY_JSON_BODY: "the request body is not valid JSON",
  FST_ERR_CTP_BODY_TOO_LARGE: "the request body is too large",
  FST_ERR_CTP_INVALID_MEDIA_TYPE: "unsupported content type: send application/json",
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: "the Content-Length does not match the body",
  FST_ERR_CTP_INVALID_TYPE: "the Content-Type header is malformed",
  FST_ERR_BAD_URL: "the URL is not valid (a malformed percent-encoding)",
  FST_ERR_MAX_PARAM_LENGTH: "a URL path segment is too long",
  FST_ERR_ASYNC_CONSTRAINT: "the request does not match any route's constraints",
};

/**
 * The problem for any error thrown while handling a request. Unknown errors become a generic 500 whose detail
 * says nothing about the internals.
 */
export function toProblem(e: unknown, instance?: string): Problem {
  const at = instance === undefined ? {} : { instance };
  if (isCiphervisorError(e)) {
    const ext = extensionsOf(e.details);
    const status = statusForCode(e.code);
    const field = e.details?.field;
    const errors =
      e.code === "INVALID_INPUT" && typeof field === "string"
        ? { errors: [{ in: "body", path: dottedToPointer(field), message: e.message }] }
        : {};
    const detail = status >= 500 && e.code === "INTERNAL" ? "internal error" : e.message;
    return problem(status, e.code, detail, { ...ext, ...errors, ...at });
  }
  const fe = e as Partial<FastifyError> | undefined;
  if (fe && Array.isArray(fe.validation)) {
    const all = fieldErrors(fe as FastifyError);
    const errors = all.slice(0, MAX_FIELD_ERRORS).map(shownField);
    const first = errors[0];
    const more = all.length > errors.length ? ` (and ${all.length - errors.length} more)` : "";
    const detail = first
      ? `${first.in}${first.path === "/" ? "" : first.path} ${first.message}${more}`
      : "invalid request";
    return problem(400, "INVALID_INPUT", `invalid request: ${detail}`, { errors, ...at });
  }
  const sc = typeof fe?.statusCode === "number" ? fe.statusCode : 500;
  if (sc >= 400 && sc < 500) {
    // fastify's own client errors (bad JSON or URL, wrong content type, too large). Their messages may quote the
    // request (the URL, the content type), so the detail is ours, by fastify's code; unknown ones get a generic line.
    const code =
      sc === 404 ? "NOT_FOUND" : sc === 401 ? "UNAUTHENTICATED" : sc === 403 ? "FORBIDDEN" : "INVALID_INPUT";
    const detail =
      (fe?.code === undefined ? undefined : FRAMEWORK_DETAILS[fe.code]) ?? TITLES[sc] ?? "bad request";
    return problem(sc, code, detail, at);
  }
  return problem(500, "INTERNAL", "internal error", at);
}

/**
 * A ready problem to answer with, e.g. the failed result of an operation the request waited for. It was audited
 * where it happened (with the operation), so the error handler does not audit it again.
 */
export class ProblemError extends Error {
  readonly problem: Problem;

  constructor(p: Problem) {
    super(p.detail);
    this.name = "ProblemError";
    this.problem = p;
  }
}

/**
 * Fuzzing the REST API (src/api): every route the app registers (`app.routeEntries`, every method and path), driven
 * through fastify's `inject` (no sockets) on one real app per file — a SQLite inventory in a temp directory, an
 * emulated host and VM, and tokens for admin, viewer and every role together (so validation is reached, not only
 * authorization).
 *
 * Requests: arbitrary JSON values and arbitrary bytes as bodies under right and wrong content types, objects with
 * hundreds of long keys, arbitrary query strings (unknown and repeated keys, huge values, malformed percent-encoding,
 * encoded control characters and lone surrogates) and arbitrary path parameters; then, per mutating route, a valid
 * body with one field damaged (wrong type, null, huge or non-finite numbers, -0, NaN-like strings, deep nesting,
 * extra fields, a removed field), sent as a dry run.
 *
 * Properties: never a 5xx; every 4xx is `application/problem+json` with a `code` from ERROR_CODES (or a firmware
 * status name, which src/api/problem.ts answers as its own code), a `status` equal to the HTTP status and a body of
 * bounded size whatever the input's size; no answer contains a token secret; a refused mutating request changed
 * nothing in the inventory and wrote at most one audit record, never an `ok` one; a damaged dry run changed nothing.
 * Budget and seed: test/fuzz/support.ts.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import type { LightMyRequestResponse } from "fastify";
import { type ApiFixture, withApi } from "../../src/api/testing/api-fixture.ts";
import { seededRandom } from "../../src/crypto/random.ts";
import { ERROR_CODES } from "../../src/errors.ts";
import { createLaunchSession } from "../../src/owner/session.ts";
import { SevStatus } from "../../src/sev/status.ts";
import { params } from "./support.ts";

/** The largest problem body an answer may have, whatever was sent: 4 KiB of echo and the problem's own members. */
const MAX_PROBLEM_BYTES = 4096 + 1024;
/** The codes a problem may carry: the project's, and the firmware status names a refused command answers with. */
const KNOWN_CODES = new Set([...Object.keys(ERROR_CODES), ...Object.keys(SevStatus)]);
const MUTATING = new Set(["POST", "PUT", "PATCH", "DELETE"]);
const AS = ["admin", "viewer", "all"] as const;
type As = (typeof AS)[number];

let a: ApiFixture;
let vmId = "";
let sevEsVmId = "";
/** A real launch session for the SEV-ES VM, made for its host's PDH (so only the damage makes it invalid). */
let session = { godhCert: "", session: "" };
let release: () => void = () => {};
let finished: Promise<void> = Promise.resolve();

before(async () => {
  await new Promise<void>((ready, fail) => {
    finished = withApi(
      async (api) => {
        a = api;
        const rome = await api.host("rome-1", "rome");
        vmId = (await api.vm("vm-1", "none", { hostId: rome })).id;
        const es = await api.vm("vm-2", "sev-es", { hostId: rome });
        sevEsVmId = es.id;
        const info = JSON.parse((await api.call("all", "GET", `/v1/hosts/${rome}/sev-info`)).body) as {
          pdh: string;
        };
        const made = createLaunchSession(
          Buffer.from(info.pdh, "base64"),
          es.policy,
          seededRandom("fuzz-api"),
        );
        session = {
          godhCert: Buffer.from(made.godhCert).toString("base64"),
          session: Buffer.from(made.session).toString("base64"),
        };
        ready();
        await new Promise<void>((r) => {
          release = r;
        });
      },
      { syncWaitMs: 50, api: { authFailures: { max: 1_000_000, windowMs: 60_000 } } },
    ).catch(fail);
  });
});
after(async () => {
  release();
  await finished;
});

interface Req {
  readonly method: string;
  readonly url: string;
  readonly as: As;
  readonly contentType?: string;
  readonly payload?: string | Buffer;
}

function describeReq(r: Req): string {
  const body = r.payload === undefined ? "" : ` body ${JSON.stringify(String(r.payload).slice(0, 120))}`;
  return `${r.method} ${r.url.slice(0, 200)} as ${r.as} (${r.contentType ?? "no content type"})${body}`;
}

function send(r: Req): Promise<LightMyRequestResponse> {
  return a.app.inject({
    method: r.method as "GET",
    url: r.url,
    headers: {
      authorization: `Bearer ${a.tokens[r.as]}`,
      ...(r.contentType === undefined ? {} : { "content-type": r.contentType }),
    },
    ...(r.payload === undefined ? {} : { payload: r.payload }),
  });
}

/** What a mutating request that got through would change (the audit log is checked on its own). */
async function snapshot(): Promise<string> {
  const inv = a.inventory;
  return JSON.stringify({
    vms: (await inv.vms.list({}, { limit: 5000 })).items.map((v) => [v.id, v.version]),
    hosts: (await inv.hosts.list({}, { limit: 5000 })).items.map((h) => [h.id, h.version]),
    tokens: (await inv.tokens.list({ limit: 5000 })).items.map((t) => [t.id, t.revokedAt]),
    images: (await inv.images.list({ limit: 5000 })).items.map((i) => i.name),
    operations: (await inv.operations.list({}, { limit: 5000 })).items.length,
  });
}

/** Audit records a refused request wrote: seq numbers, checked to be denied/failed at the end of each test. */
const refusedSeqs: number[] = [];

async function assertRefusedRecordsOnly(): Promise<void> {
  const page = await a.inventory.audit.list({}, { limit: 5000 });
  const bySeq = new Map(page.items.map((r) => [r.seq, r]));
  for (const seq of refusedSeqs) {
    const r = bySeq.get(seq);
    if (r === undefined) continue; // beyond the page: the seq count was checked per request
    assert.notEqual(r.outcome, "ok", `a refused request wrote an ok audit record: ${JSON.stringify(r)}`);
  }
  refusedSeqs.length = 0;
}

/**
 * Sends `r` and checks the properties every answer must have. `dryRun`: the request asked for a dry run, so it must
 * change nothing even when it is accepted.
 */
async function check(r: Req, dryRun = false): Promise<LightMyRequestResponse> {
  const mutating = MUTATING.has(r.method);
  const before = mutating ? await snapshot() : "";
  const headBefore = mutating ? await a.inventory.audit.head() : undefined;
  const res = await send(r);
  const what = `${describeReq(r)} → ${res.statusCode} ${res.body.slice(0, 300)}`;
  assert.ok(res.statusCode < 500, `5xx: ${what}`);
  for (const secret of Object.values(a.tokens))
    assert.ok(!res.body.includes(secret), `token echoed: ${what}`);
  if (res.statusCode >= 400) {
    assert.match(String(res.headers["content-type"]), /^application\/problem\+json/, what);
    assert.ok(Buffer.byteLength(res.body) <= MAX_PROBLEM_BYTES, `${res.body.length}-byte problem: ${what}`);
    const p = JSON.parse(res.body) as { code?: unknown; status?: unknown };
    assert.equal(typeof p.code, "string", what);
    assert.ok(KNOWN_CODES.has(p.code as string), `unknown code: ${what}`);
    assert.equal(p.status, res.statusCode, what);
  }
  if (mutating && (res.statusCode >= 400 || dryRun)) {
    assert.equal(await snapshot(), before, `a refused or dry-run request changed the inventory: ${what}`);
    const headAfter = await a.inventory.audit.head();
    const added = headAfter.seq - (headBefore?.seq ?? 0);
    assert.ok(added <= 1, `${added} audit records for one request: ${what}`);
    if (added === 1 && res.statusCode >= 400) refusedSeqs.push(headAfter.seq);
  }
  return res;
}

// ---- generators ------------------------------------------------------------------------------------------------

/** Percent-encodes every byte of `s`'s UTF-8 but the unreserved ones (a lone surrogate becomes U+FFFD's bytes). */
function encode(s: string): string {
  let out = "";
  for (const b of new TextEncoder().encode(s)) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9._~-]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** Query keys the routes know, and some they do not. */
const QUERY_KEYS = [
  "dryRun",
  "limit",
  "cursor",
  "hostId",
  "clusterId",
  "powerState",
  "securityMode",
  "namePrefix",
  "labels",
  "sort",
  "status",
  "kind",
  "action",
  "target",
  "actorId",
  "outcome",
  "full",
  "name",
  "mode",
  "exits",
  "token",
  "__proto__",
  "constructor",
];

/** Values that are already on the wire: invalid escapes, encoded control characters and surrogates, huge ones. */
const RAW_VALUE = fc.oneof(
  fc.constantFrom(
    "%",
    "%zz",
    "%e0%80",
    "%ED%A0%80",
    "%C0%AF",
    "%00",
    "%1B%5B2J",
    "%07",
    "%0A",
    "%7F",
    "%C2%9B",
    "true",
    "false",
    "1",
    "0",
    "-1",
    "-0",
    "1e999",
    "NaN",
    "0x10",
    "5001",
    "id",
    "-name",
    "none",
    "",
  ),
  fc.string({ unit: "binary-ascii", maxLength: 40 }).map(encode),
  fc.string({ unit: "binary", maxLength: 20 }).map(encode),
  fc.integer({ min: 1000, max: 20000 }).map((n) => "x".repeat(n)),
);

const QUERY = fc
  .array(
    fc.tuple(fc.oneof(fc.constantFrom(...QUERY_KEYS), fc.string({ maxLength: 12 }).map(encode)), RAW_VALUE),
    { maxLength: 8 },
  )
  .chain((pairs) =>
    // Repeat some pairs: a repeated key is an array after the querystring parser.
    fc.nat(pairs.length).map((n) => [...pairs, ...pairs.slice(0, n)]),
  )
  .map((pairs) => pairs.map(([k, v]) => (v === "" && k.length % 2 === 0 ? k : `${k}=${v}`)).join("&"));

/** Who sends: mostly the token holding every role, so most requests get past authorization to validation. */
const WHO: fc.Arbitrary<As> = fc.oneof(
  { weight: 4, arbitrary: fc.constant("all" as const) },
  { weight: 1, arbitrary: fc.constant("admin" as const) },
  { weight: 1, arbitrary: fc.constant("viewer" as const) },
);

/** A path parameter, on the wire already: mostly a well-formed id (so the body and query are reached), or junk. */
const PARAM = fc.oneof(
  { weight: 4, arbitrary: fc.stringMatching(/^[A-Za-z0-9_-]{1,20}$/) },
  fc.constantFrom(
    "x",
    "%",
    "%zz",
    "%ED%A0%80",
    "%00",
    "%1B%5B2J",
    "..",
    "%2F",
    "%2e%2e",
    "a:b",
    "0",
    "-",
    "_",
    "rome",
    "milan",
    "latest",
  ),
  fc.string({ unit: "binary-ascii", maxLength: 80 }).map(encode),
  fc.string({ unit: "binary", maxLength: 30 }).map(encode),
  fc.integer({ min: 200, max: 3000 }).map((n) => "a".repeat(n)),
);

/** A concrete URL for a route pattern: every `:param` and `*` replaced, `::` a literal colon. */
function urlFor(pattern: string, values: readonly string[]): string {
  let i = 0;
  const next = () => values[i++ % Math.max(values.length, 1)] ?? "x";
  return pattern
    .replaceAll("::", "\u0000")
    .replace(/:[A-Za-z]+/g, () => next())
    .replace(/\*$/, () => next())
    .replaceAll("\u0000", ":");
}

const CONTENT_TYPES = [
  "application/json",
  "application/json; charset=utf-8",
  "application/json; charset=utf-16",
  "application/problem+json",
  "text/plain",
  "text/html",
  "application/octet-stream",
  "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=x",
  "application/json, text/plain",
  "*/*",
  ";",
  "application/",
  "json",
];

/** An object of many long keys: a body whose field errors, one per key, must not all be echoed. */
const MANY_KEYS = fc
  .tuple(fc.integer({ min: 50, max: 400 }), fc.integer({ min: 20, max: 60 }), fc.nat(1000))
  .map(([n, len, salt]) => {
    const o: Record<string, number> = {};
    for (let k = 0; k < n; k++) o[`k${salt}_${k}_`.padEnd(len, "x")] = k;
    return JSON.stringify(n % 2 === 0 ? o : { selector: o, set: o, spec: o, name: o });
  });

const BODY: fc.Arbitrary<{ contentType?: string; payload?: string | Buffer }> = fc.oneof(
  fc.record({
    contentType: fc.constant("application/json"),
    payload: fc.jsonValue().map((v) => JSON.stringify(v)),
  }),
  fc.record({
    contentType: fc.constantFrom(...CONTENT_TYPES),
    payload: fc.uint8Array({ maxLength: 2048 }).map((b) => Buffer.from(b)),
  }),
  fc.record({
    contentType: fc.constantFrom(...CONTENT_TYPES),
    payload: fc.jsonValue().map((v) => JSON.stringify(v)),
  }),
  fc.record({ contentType: fc.constant("application/json"), payload: MANY_KEYS }),
  fc.record({
    contentType: fc.constant("application/json"),
    payload: fc.integer({ min: 5000, max: 50_000 }).map((n) =>
      JSON.stringify({
        ["k".repeat(n)]: 1,
        spec: { ["q".repeat(n)]: 2 },
        selector: { ["s".repeat(n)]: 3 },
      }),
    ),
  }),
  fc.record({
    contentType: fc.constant("application/json"),
    payload: fc.constantFrom("", "{", "[]", "null", "-0", "1e999", '{"__proto__":{"x":1}}', '{"a":1,"a":2}'),
  }),
  fc.constant({}),
);

// ---- the properties --------------------------------------------------------------------------------------------

function routes(): { method: string; url: string }[] {
  return a.app.routeEntries.map((r) => ({ method: r.method, url: r.url }));
}

describe("fuzz: every API route (api/routes/*.ts)", () => {
  it("has routes to fuzz: the app's own list, mutating and not", () => {
    const all = routes();
    assert.ok(all.length >= 60, `${all.length} routes`);
    assert.ok(all.some((r) => MUTATING.has(r.method)) && all.some((r) => r.method === "GET"));
  });

  it("arbitrary bodies and content types: never 5xx, 4xx are bounded problems with known codes", async () => {
    const all = routes();
    await fc.assert(
      fc.asyncProperty(
        fc.nat(all.length - 1),
        WHO,
        fc.array(PARAM, { minLength: 1, maxLength: 3 }),
        BODY,
        fc.boolean(),
        async (i, as, values, body, dry) => {
          const route = all[i] as { method: string; url: string };
          const url = urlFor(route.url, values) + (dry ? "?dryRun=true" : "");
          await check({ method: route.method, url, as, ...body }, dry);
        },
      ),
      params(600),
    );
    await assertRefusedRecordsOnly();
  });

  it("arbitrary query strings and path parameters on every route: the same properties", async () => {
    const all = routes();
    await fc.assert(
      fc.asyncProperty(
        fc.nat(all.length - 1),
        WHO,
        fc.array(PARAM, { minLength: 1, maxLength: 3 }),
        QUERY,
        async (i, as, values, query) => {
          const route = all[i] as { method: string; url: string };
          const url = `${urlFor(route.url, values)}?${query}`;
          const body = MUTATING.has(route.method) ? { contentType: "application/json", payload: "{}" } : {};
          await check({ method: route.method, url, as, ...body });
        },
      ),
      params(600),
    );
    await assertRefusedRecordsOnly();
  });

  it("query strings on the real ids of list and read routes: the same properties", async () => {
    const reads = [
      "/v1/vms",
      `/v1/vms/${vmId}`,
      `/v1/vms/${vmId}/hypervisor-view`,
      `/v1/vms/${vmId}/console`,
      "/v1/hosts",
      "/v1/operations",
      "/v1/audit",
      "/v1/images",
      "/v1/tokens",
      "/v1/system/store-check",
      "/metrics",
      "/readyz",
    ];
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...reads), WHO, QUERY, async (path, as, query) => {
        await check({ method: "GET", url: `${path}?${query}`, as });
      }),
      params(300),
    );
  });
});

// ---- structure-aware bodies ------------------------------------------------------------------------------------

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

const SPEC = { vcpus: 1, memoryMiB: 32, guestOs: "linux-5.19", firmware: "efi", hardwareVersion: 19 };
const b64 = (n: number) => Buffer.alloc(n, 7).toString("base64");

/** A valid body for each mutating route that takes one (`:id` is the seeded VM). */
function validBodies(): { route: string; path: string; body: Json }[] {
  return [
    {
      route: "POST /v1/vms",
      path: "/v1/vms",
      body: { name: "fz-new", spec: { ...SPEC, devices: [{ kind: "virtio-net" }] }, labels: { app: "web" } },
    },
    { route: "POST /v1/vms/:id/migrate", path: `/v1/vms/${vmId}/migrate`, body: { mode: "cold" } },
    {
      route: "POST /v1/vms/:id/snapshots",
      path: `/v1/vms/${vmId}/snapshots`,
      body: { name: "s1", memory: false },
    },
    { route: "POST /v1/vms/:id/clone", path: `/v1/vms/${vmId}/clone`, body: { name: "fz-clone" } },
    {
      route: "POST /v1/vms::bulk-update",
      path: "/v1/vms:bulk-update",
      body: {
        selector: { all: true, labels: { a: "b" } },
        set: { securityMode: "sev-es" },
        restart: false,
        parallel: 2,
      },
    },
    {
      route: "POST /v1/vms::bulk-power",
      path: "/v1/vms:bulk-power",
      body: { selector: { ids: [vmId], hostId: null }, action: "power-on", parallel: 2 },
    },
    {
      route: "PUT /v1/vms/:id/launch-session",
      path: `/v1/vms/${sevEsVmId}/launch-session`,
      body: { ...session },
    },
    {
      route: "POST /v1/vms/:id/launch-secret",
      path: `/v1/vms/${sevEsVmId}/launch-secret`,
      body: { header: b64(0x34), secret: b64(32) },
    },
    {
      route: "POST /v1/vms/:id/attestation-report",
      path: `/v1/vms/${sevEsVmId}/attestation-report`,
      body: { reportData: "ab".repeat(64) },
    },
    {
      route: "POST /v1/hosts",
      path: "/v1/hosts",
      body: { name: "fz-host", emulated: { generation: "milan", seed: 3, minSevAsid: 100 } },
    },
    { route: "POST /v1/tokens", path: "/v1/tokens", body: { name: "fz-token", roles: ["viewer"] } },
  ];
}

/** Every path into a JSON value: [] is the whole body. */
function pathsOf(v: Json, at: (string | number)[] = []): (string | number)[][] {
  const out = [at];
  if (Array.isArray(v)) {
    for (const [i, x] of v.entries()) out.push(...pathsOf(x, [...at, i]));
  } else if (v !== null && typeof v === "object")
    for (const [k, x] of Object.entries(v)) out.push(...pathsOf(x, [...at, k]));
  return out;
}

/** Placeholders for number tokens JSON.stringify cannot write; replaced in the text. */
const RAW_NUMBERS: Readonly<Record<string, string>> = {
  "\u0000neg0": "-0",
  "\u0000inf": "1e999",
  "\u0000big": "123456789012345678901234567890",
  "\u0000frac": "1.0000000000000002",
};

const REPLACEMENT: fc.Arbitrary<Json | undefined> = fc.oneof(
  fc.constantFrom<Json | undefined>(
    null,
    undefined,
    "x",
    "",
    "NaN",
    "Infinity",
    "-Infinity",
    "-0",
    "1e999",
    "0x10",
    true,
    false,
    0,
    -1,
    1.5,
    2 ** 53 + 1,
    -(2 ** 31),
    2 ** 32,
    1e308,
    Number.MIN_VALUE,
    [],
    {},
    [null],
    { nested: { deeper: [1, { x: "y" }] } },
    ...Object.keys(RAW_NUMBERS),
  ),
  fc.integer({ min: 1, max: 60 }).map((d) => {
    let v: Json = "deep";
    for (let k = 0; k < d; k++) v = k % 2 === 0 ? { a: v } : [v];
    return v;
  }),
  fc.integer({ min: 100, max: 50_000 }).map((n) => "y".repeat(n)),
  fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<Json>,
);

/** One damage to a valid body: a field replaced (undefined: removed), or an extra field added to an object. */
function damaged(
  body: Json,
  path: (string | number)[],
  value: Json | undefined,
  extraKey: string | null,
): string {
  const copy = structuredClone(body) as Json;
  if (path.length === 0) {
    if (extraKey !== null && copy !== null && typeof copy === "object" && !Array.isArray(copy)) {
      copy[extraKey] = value ?? null;
      return serialize(copy);
    }
    return value === undefined ? "" : serialize(value);
  }
  let parent = copy as Record<string | number, Json>;
  for (const k of path.slice(0, -1)) parent = parent[k] as Record<string | number, Json>;
  const last = path[path.length - 1] as string | number;
  const target = parent[last];
  if (extraKey !== null && target !== null && typeof target === "object" && !Array.isArray(target)) {
    target[extraKey] = value ?? null;
  } else if (value === undefined) {
    if (Array.isArray(parent)) parent.splice(last as number, 1);
    else delete parent[last];
  } else parent[last] = value;
  return serialize(copy);
}

function serialize(v: Json): string {
  let text = JSON.stringify(v);
  for (const [placeholder, raw] of Object.entries(RAW_NUMBERS))
    text = text.replaceAll(JSON.stringify(placeholder), raw);
  return text;
}

describe("fuzz: valid bodies of every mutating route, one field damaged", () => {
  it("covers every route whose OpenAPI description takes a JSON body", async () => {
    const doc = JSON.parse((await a.app.inject({ method: "GET", url: "/docs/json" })).body) as {
      paths: Record<string, Record<string, { requestBody?: { content?: Record<string, unknown> } }>>;
    };
    const withBody: string[] = [];
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        if (op.requestBody?.content?.["application/json"] === undefined) continue;
        withBody.push(
          `${method.toUpperCase()} ${path.replace(/\{([A-Za-z]+)\}/g, ":$1").replace(/:(bulk-)/, "::$1")}`,
        );
      }
    }
    const covered = new Set(validBodies().map((b) => b.route));
    assert.ok(withBody.length >= 8, withBody.join(", "));
    assert.deepEqual(
      withBody.filter((k) => !covered.has(k)),
      [],
      "a route that takes a JSON body has no valid body here",
    );
  });

  it("the valid bodies themselves are accepted as dry runs (the damage below is the only fault)", async () => {
    for (const v of validBodies()) {
      const res = await check(
        {
          method: v.route.split(" ")[0] ?? "POST",
          url: `${v.path}?dryRun=true`,
          as: "all",
          contentType: "application/json",
          payload: JSON.stringify(v.body),
        },
        true,
      );
      // A secret for a VM not paused for attestation, or a report of a VM that is not SEV-SNP, is refused by the
      // plan (409), after validation.
      assert.ok(
        res.statusCode === 200 ||
          (res.statusCode === 409 &&
            (v.route.endsWith("launch-secret") || v.route.endsWith("attestation-report"))),
        `${v.route}: ${res.statusCode} ${res.body.slice(0, 300)}`,
      );
    }
  });

  it("one damaged field: 2xx or a 4xx problem naming a code, never 5xx, nothing changed", async () => {
    const bodies = validBodies();
    const cases = fc.nat(bodies.length - 1).chain((i) => {
      const v = bodies[i] as (typeof bodies)[number];
      const paths = pathsOf(v.body);
      return fc.record({
        v: fc.constant(v),
        path: fc.constantFrom(...paths),
        value: REPLACEMENT,
        extraKey: fc.option(
          fc.oneof(fc.constantFrom("__proto__", "constructor", "extra", ""), fc.string({ maxLength: 10 })),
          {
            freq: 3,
          },
        ),
        as: WHO,
      });
    });
    await fc.assert(
      fc.asyncProperty(cases, async ({ v, path, value, extraKey, as }) => {
        const payload = damaged(v.body, path, value, extraKey);
        await check(
          {
            method: v.route.split(" ")[0] ?? "POST",
            url: `${v.path}?dryRun=true`,
            as,
            contentType: "application/json",
            payload,
          },
          true,
        );
      }),
      params(500),
    );
    await assertRefusedRecordsOnly();
  });
});

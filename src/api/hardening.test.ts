/**
 * Hardening of the API's input (issue 13): control characters refused in every free-text field, JSON bodies
 * validated without type coercion (so `{"hostId": null}` means unplaced VMs, not `""`), querystrings still
 * coerced, fastify's own errors as problems that never echo a long URL, and the Bearer scheme case-insensitive.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TEXT_PATTERN } from "./schemas/common.ts";
import { type ApiFixture, json, withApi } from "./testing/api-fixture.ts";

const spec = { vcpus: 1, memoryMiB: 32, guestOs: "linux-5.19", firmware: "efi", hardwareVersion: 19 };

/** The strings every free-text field must refuse: ESC (a CSI sequence), BEL, a newline, DEL, C1's CSI. */
const CONTROL_SAMPLES = ["a\x1b[31mb", "a\x07b", "a\nb", "a\x7fb", "a\u009b2Jb"];

interface FieldError {
  in: string;
  path: string;
  message: string;
}

/** Asserts a 400 INVALID_INPUT problem and returns its field errors. */
function invalid(r: { statusCode: number; headers: Record<string, unknown>; body: string }): FieldError[] {
  assert.equal(r.statusCode, 400, r.body);
  assert.match(String(r.headers["content-type"]), /^application\/problem\+json/);
  const p = JSON.parse(r.body) as { code: string; errors?: FieldError[] };
  assert.equal(p.code, "INVALID_INPUT", r.body);
  assert.ok(
    new RegExp(TEXT_PATTERN, "u").test(r.body),
    `raw control characters in ${JSON.stringify(r.body)}`,
  );
  return p.errors ?? [];
}

function at(errors: FieldError[]): string[] {
  return errors.map((e) => `${e.in}:${e.path}`).sort();
}

describe("API hardening: control characters", () => {
  it("refuses them in label values and keys, naming the field, and stores nothing", () =>
    withApi(async (a) => {
      for (const bad of CONTROL_SAMPLES) {
        const value = invalid(
          await a.call("all", "POST", "/v1/vms", { name: "v1", spec, labels: { env: bad } }),
        );
        assert.deepEqual(at(value), ["body:/labels/env"], JSON.stringify(bad));
        assert.match(value[0]?.message ?? "", /must not contain control characters/);
        const key = invalid(
          await a.call("all", "POST", "/v1/vms", { name: "v1", spec, labels: { [bad]: "x" } }),
        );
        assert.deepEqual(at(key), ["body:/labels"], JSON.stringify(bad));
        assert.match(key[0]?.message ?? "", /key .*must not contain control characters/);
      }
      // Plain Unicode is free text too.
      const ok = await a.call("all", "POST", "/v1/vms", {
        name: "v2",
        spec,
        labels: { owner: "Zoë — ops ✓" },
      });
      assert.equal(ok.statusCode, 201, ok.body);
      assert.deepEqual(
        [...(await a.inventory.vms.list({}, { limit: 100 })).items].map((v) => v.name),
        ["v2"],
      );
    }));

  it("refuses them in every other free-text field of bodies and querystrings", () =>
    withApi(async (a) => {
      const esc = "x\x1b]0;owned\x07";
      const cases: [string, string, unknown, string][] = [
        [
          "POST",
          "/v1/vms",
          { name: "v1", spec: { ...spec, devices: [{ kind: "virtio-net", detail: esc }] } },
          "body:/spec/devices/0/detail",
        ],
        ["POST", "/v1/vms", { name: "v1", spec, clusterId: esc }, "body:/clusterId"],
        ["POST", "/v1/vms", { name: "v1", spec, hostId: esc }, "body:/hostId"],
        ["POST", "/v1/vms", { name: `v1${esc}`, spec }, "body:/name"],
        ["POST", "/v1/hosts", { name: "h1", address: esc }, "body:/address"],
        [
          "POST",
          "/v1/tokens",
          { name: "t", roles: ["viewer"], expiresAt: `2030-01-01${esc}` },
          "body:/expiresAt",
        ],
        [
          "POST",
          "/v1/vms:bulk-update",
          { selector: { namePrefix: esc }, set: { securityMode: "sev" } },
          "body:/selector/namePrefix",
        ],
        [
          "POST",
          "/v1/vms:bulk-update",
          { selector: { ids: [esc] }, set: { securityMode: "sev" } },
          "body:/selector/ids/0",
        ],
        [
          "POST",
          "/v1/vms:bulk-update",
          { selector: { labels: { a: esc } }, set: { securityMode: "sev" } },
          "body:/selector/labels/a",
        ],
        ["GET", `/v1/vms?namePrefix=${encodeURIComponent(esc)}`, undefined, "querystring:/namePrefix"],
        ["GET", `/v1/vms?labels=${encodeURIComponent(`a=${esc}`)}`, undefined, "querystring:/labels"],
        ["GET", `/v1/audit?target=${encodeURIComponent(esc)}`, undefined, "querystring:/target"],
        ["GET", `/v1/operations?kind=${encodeURIComponent(esc)}`, undefined, "querystring:/kind"],
      ];
      for (const [method, url, body, where] of cases) {
        assert.deepEqual(at(invalid(await a.call("all", method, url, body))), [where], `${method} ${url}`);
      }
    }));

  it("leaves no request string of /v1 able to carry one (every route as registered, from its OpenAPI)", () =>
    withApi(async (a) => {
      const doc = json(await a.call(null, "GET", "/docs/json")) as {
        paths: Record<string, Record<string, Operation>>;
        components?: { schemas?: Record<string, Schema> };
      };
      const checked = { strings: 0, keys: 0 };
      const problems: string[] = [];
      const refuses = (s: Schema, where: string) => {
        if (s.enum !== undefined || s.const !== undefined) return;
        if (typeof s.pattern !== "string") {
          problems.push(`${where}: a string without a pattern`);
          return;
        }
        const re = new RegExp(s.pattern, "u");
        for (const bad of CONTROL_SAMPLES) {
          if (re.test(bad)) problems.push(`${where}: accepts ${JSON.stringify(bad)}`);
        }
      };
      const seen = new Set<Schema>();
      const walk = (s: Schema | undefined, where: string): void => {
        if (s === undefined || typeof s !== "object") return;
        if (typeof s.$ref === "string") {
          const name = s.$ref.split("/").at(-1) ?? "";
          const target = doc.components?.schemas?.[name];
          assert.ok(target, `${where}: unresolved ${s.$ref}`);
          if (!seen.has(target)) {
            seen.add(target);
            walk(target, `${where}→${name}`);
          }
          return;
        }
        const types = Array.isArray(s.type) ? s.type : [s.type];
        if (types.includes("string")) {
          checked.strings++;
          refuses(s, where);
        }
        for (const [k, p] of Object.entries(s.properties ?? {})) walk(p, `${where}/${k}`);
        const values = [
          ...Object.values(s.patternProperties ?? {}),
          ...(typeof s.additionalProperties === "object" ? [s.additionalProperties] : []),
        ];
        if (values.length > 0) {
          checked.keys++;
          if (s.propertyNames === undefined) problems.push(`${where}: a record without propertyNames`);
          else refuses(s.propertyNames, `${where} (keys)`);
          if (typeof s.additionalProperties === "object" && s.patternProperties !== undefined) {
            problems.push(`${where}: keys outside patternProperties`);
          }
        }
        for (const v of values) walk(v, `${where}/*`);
        if (s.items !== undefined) walk(s.items, `${where}/[]`);
        for (const sub of [...(s.anyOf ?? []), ...(s.oneOf ?? []), ...(s.allOf ?? [])]) walk(sub, where);
      };
      // The control plane's API: what it takes in is stored, audited and shown to people.
      for (const [path, methods] of Object.entries(doc.paths).filter(([p]) => p.startsWith("/v1/"))) {
        for (const [method, op] of Object.entries(methods)) {
          for (const p of op.parameters ?? []) walk(p.schema, `${method} ${path} ${p.in}:${p.name}`);
          walk(op.requestBody?.content?.["application/json"]?.schema, `${method} ${path} body`);
        }
      }
      assert.deepEqual(problems, []);
      assert.ok(checked.strings >= 40, `checked ${checked.strings} strings`);
      assert.ok(checked.keys >= 2, `checked ${checked.keys} records`);
      assert.ok(JSON.stringify(doc).includes(JSON.stringify(TEXT_PATTERN)));
    }));
});

interface Schema {
  $ref?: string;
  type?: string | string[];
  pattern?: string;
  enum?: unknown[];
  const?: unknown;
  properties?: Record<string, Schema>;
  patternProperties?: Record<string, Schema>;
  additionalProperties?: boolean | Schema;
  propertyNames?: Schema;
  items?: Schema;
  anyOf?: Schema[];
  oneOf?: Schema[];
  allOf?: Schema[];
}

interface Operation {
  parameters?: { in: string; name: string; schema?: Schema }[];
  requestBody?: { content?: Record<string, { schema?: Schema }> };
}

describe("API hardening: types as sent", () => {
  it("validates JSON bodies without coercion, naming the field", () =>
    withApi(async (a) => {
      await a.host("rome-1", "rome");
      const create = (body: Record<string, unknown>) =>
        a.call("all", "POST", "/v1/vms", { name: "v1", spec, ...body });
      const cases: [Record<string, unknown>, string][] = [
        [{ name: 123 }, "body:/name"],
        [{ name: ["v1"] }, "body:/name"],
        [{ spec: { ...spec, vcpus: true } }, "body:/spec/vcpus"],
        [{ spec: { ...spec, vcpus: "2" } }, "body:/spec/vcpus"],
        [{ spec: { ...spec, vcpus: [1] } }, "body:/spec/vcpus"],
        [{ spec: { ...spec, secureBoot: "false" } }, "body:/spec/secureBoot"],
        [{ securityMode: "sev", policy: "0x1" }, "body:/policy"],
        [{ securityMode: "sev", policy: "3" }, "body:/policy"],
        [{ labels: { env: 1 } }, "body:/labels/env"],
        [{ hostId: null }, "body:/hostId"],
      ];
      for (const [body, where] of cases) {
        assert.deepEqual(at(invalid(await create(body))), [where], JSON.stringify(body));
      }
      const bulk = (body: Record<string, unknown>) =>
        a.call("all", "POST", "/v1/vms:bulk-update?dryRun=true", {
          selector: { all: true },
          set: { policy: 3 },
          ...body,
        });
      assert.deepEqual(at(invalid(await bulk({ set: { policy: "0x1" } }))), ["body:/set/policy"]);
      assert.deepEqual(at(invalid(await bulk({ parallel: "2" }))), ["body:/parallel"]);
      assert.deepEqual(at(invalid(await bulk({ restart: "true" }))), ["body:/restart"]);
      assert.deepEqual(at(invalid(await bulk({ selector: { all: 1 } }))), ["body:/selector/all"]);
      const host = await a.call("all", "POST", "/v1/hosts", {
        name: "m1",
        emulated: { generation: "milan", seed: 7, minSevAsid: "100" },
      });
      assert.deepEqual(at(invalid(host)), ["body:/emulated/minSevAsid"]);
      // Nothing of the above was created.
      assert.equal((await a.inventory.vms.list({}, { limit: 10 })).items.length, 0);
      // The right types still work, an integer seed included (coercion made it the string "7").
      assert.equal((await create({ spec: { ...spec, vcpus: 2 } })).statusCode, 201);
      const m1 = await a.call("all", "POST", "/v1/hosts", {
        name: "m1",
        emulated: { generation: "milan", seed: 7 },
      });
      assert.equal(m1.statusCode, 201, m1.body);
    }));

  it("still coerces querystrings, which are strings on the wire", () =>
    withApi(async (a) => {
      for (let i = 0; i < 12; i++) await a.vm(`q-${String(i).padStart(2, "0")}`);
      const page = await a.call("viewer", "GET", "/v1/vms?limit=10");
      assert.equal(page.statusCode, 200, page.body);
      assert.equal((json(page).items as unknown[]).length, 10);
      assert.deepEqual(at(invalid(await a.call("viewer", "GET", "/v1/vms?limit=ten"))), [
        "querystring:/limit",
      ]);
      const plan = await a.call("all", "POST", "/v1/vms:bulk-update?dryRun=true", {
        selector: { namePrefix: "q-" },
        set: { securityMode: "sev" },
      });
      assert.equal(plan.statusCode, 200, plan.body);
      assert.equal(json(plan).dryRun, true);
    }));

  it("matches exactly the unplaced VMs with the selector hostId: null, in the plan and in the operation", () =>
    withApi(async (a) => {
      const rome = await a.host("rome-1", "rome");
      const placed = await a.vm("placed-1", "none", { hostId: rome });
      await a.vm("placed-2", "none", { hostId: rome });
      const loose = [(await a.vm("loose-1")).id, (await a.vm("loose-2")).id].sort();
      const body = { selector: { hostId: null }, set: { securityMode: "sev" } };
      const plan = await a.call("all", "POST", "/v1/vms:bulk-update?dryRun=true", body);
      assert.equal(plan.statusCode, 200, plan.body);
      const p = json(plan) as { total: number; items: { target: string }[] };
      assert.equal(p.total, 2, plan.body);
      assert.deepEqual(p.items.map((i) => i.target).sort(), loose);
      // The same selector by host id still means that host.
      const byHost = json(
        await a.call("all", "POST", "/v1/vms:bulk-update?dryRun=true", {
          ...body,
          selector: { hostId: rome },
        }),
      ) as { items: { target: string }[] };
      assert.ok(byHost.items.some((i) => i.target === placed.id));
      assert.equal(byHost.items.length, 2);

      const real = await a.call("all", "POST", "/v1/vms:bulk-update", body);
      assert.ok(real.statusCode === 200 || real.statusCode === 202, real.body);
      const opId = (json(real).operation as { id: string }).id;
      const op = await a.cp.engine.waitFor(opId, 30_000);
      assert.equal(op.total, 2);
      const items = (await a.inventory.operations.items(opId, { limit: 100 })).items;
      assert.deepEqual(items.map((i) => i.target).sort(), loose);
      assert.equal((await a.inventory.vms.get(placed.id))?.securityMode, "none");
    }));
});

describe("API hardening: fastify's own errors", () => {
  async function tooLong(a: ApiFixture, url: string, status: number, code: string): Promise<void> {
    const r = await a.call("viewer", "GET", url);
    assert.equal(r.statusCode, status, `${url.slice(0, 40)}…: ${r.body.slice(0, 300)}`);
    assert.match(String(r.headers["content-type"]), /^application\/problem\+json/);
    const p = json(r);
    assert.equal(p.code, code);
    assert.equal(p.type, `urn:ciphervisor:problem:${code}`);
    assert.ok(r.body.length < 1000, `a ${r.body.length}-byte answer to a ${url.length}-byte URL`);
    assert.ok(!r.body.includes("x".repeat(250)), "the URL is echoed");
  }

  it("answers a bad or 10 KB URL with a short problem, never echoing it", () =>
    withApi(async (a) => {
      const long = "x".repeat(10_000);
      await tooLong(a, `/v1/vms/${long}`, 414, "INVALID_INPUT");
      await tooLong(a, `/v1/${long}`, 404, "NOT_FOUND");
      await tooLong(a, `/v1/vms/${long}/power-on`, 414, "INVALID_INPUT");
      await tooLong(a, `/v1/vms?namePrefix=${long}`, 400, "INVALID_INPUT");
      await tooLong(a, `/v1/vms/%zz${long}`, 400, "INVALID_INPUT");
      // A content type fastify cannot parse: its message would quote the header.
      const media = await a.call("all", "POST", "/v1/vms", "{}", { "content-type": `application/x-${long}` });
      assert.equal(media.statusCode, 415, media.body.slice(0, 300));
      assert.equal(json(media).code, "INVALID_INPUT");
      assert.ok(
        media.body.length < 1000 && !media.body.includes("x".repeat(250)),
        "the content type is echoed",
      );
      const bad = json(await a.call("viewer", "GET", "/v1/vms/%zz"));
      assert.equal(bad.code, "INVALID_INPUT");
      assert.match(String(bad.detail), /URL is not valid/);

      // Over a socket, past Node's 16 KiB header limit: the HTTP parser's error is a problem too.
      await a.app.listen({ host: "127.0.0.1", port: 0 });
      const addr = a.app.server.address();
      const port = typeof addr === "object" && addr !== null ? addr.port : 0;
      const r = await fetch(`http://127.0.0.1:${port}/v1/vms/${"x".repeat(20_000)}`, {
        headers: { authorization: `Bearer ${a.tokens.viewer}` },
      });
      assert.equal(r.status, 431);
      assert.match(String(r.headers.get("content-type")), /^application\/problem\+json/);
      const text = await r.text();
      assert.equal((JSON.parse(text) as { code: string }).code, "INVALID_INPUT");
      assert.ok(!text.includes("xxxx"));
    }));
});

describe("API hardening: the Bearer scheme", () => {
  it("is case-insensitive (RFC 9110 §11.1); other schemes and malformed headers stay 401", () =>
    withApi(async (a) => {
      const get = (authorization: string) => a.call(null, "GET", "/v1/vms", undefined, { authorization });
      const t = a.tokens.viewer;
      for (const h of [`Bearer ${t}`, `bearer ${t}`, `BEARER ${t}`, `bEaReR ${t}`, `Bearer  ${t}`]) {
        assert.equal((await get(h)).statusCode, 200, h.replace(t, "<token>"));
      }
      for (const h of [`Basic ${t}`, `Bearer${t}`, `Bearer ${t} extra`, `Token ${t}`, "Bearer "]) {
        const r = await get(h);
        assert.equal(r.statusCode, 401, h.replace(t, "<token>"));
        assert.equal(json(r).code, "UNAUTHENTICATED");
      }
    }));
});

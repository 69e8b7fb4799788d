import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { withApi } from "./testing/api-fixture.ts";

const base = {
  vcpus: 2,
  memoryMiB: 64,
  guestOs: "linux-5.19",
  firmware: "efi" as const,
  hardwareVersion: 19,
};

describe("GET /v1/vms written from stored rows", () => {
  it("answers exactly what GET /v1/vms/:id answers for each VM, page by page, undeclared spec fields dropped", async () => {
    await withApi(async (a) => {
      const hostId = await a.host("rome-1", "rome");
      const inv = a.inventory;
      await inv.vms.create({ name: "plain", spec: base, hostId, labels: { app: "web", "a-b": 'quo"te' } });
      await inv.vms.create({
        name: "es",
        spec: {
          ...base,
          secureBoot: true,
          attestation: true,
          devices: [{ kind: "virtio-net", detail: "e1000" }],
        },
        securityMode: "sev-es",
        policy: 0x7,
        hostId,
      });
      await inv.vms.create({
        name: "sev",
        spec: { ...base, machine: "q35" },
        securityMode: "sev",
        policy: 3,
      });
      // A stored launch session is not part of the VmSpec schema: the response must not carry it.
      await inv.vms.create({
        name: "session",
        spec: {
          ...base,
          launchSession: {
            godhCert: Buffer.alloc(0x824, 1).toString("base64"),
            session: Buffer.alloc(0x80, 2).toString("base64"),
          },
        },
        securityMode: "sev-es",
        policy: 0x7,
      });
      const seen: unknown[] = [];
      let cursor: string | null = null;
      do {
        const res = await a.call(
          "operator",
          "GET",
          `/v1/vms?limit=3${cursor === null ? "" : `&cursor=${encodeURIComponent(cursor)}`}`,
        );
        assert.equal(res.statusCode, 200);
        assert.match(String(res.headers["content-type"]), /^application\/json/);
        const page = JSON.parse(res.body) as { items: { id: string }[]; nextCursor: string | null };
        for (const item of page.items) {
          const one = await a.call("operator", "GET", `/v1/vms/${item.id}`);
          assert.equal(JSON.stringify(item), one.body, `VM ${item.id}`);
          seen.push(item);
        }
        cursor = page.nextCursor;
      } while (cursor !== null);
      assert.equal(seen.length, 4);
      assert.ok(!JSON.stringify(seen).includes("launchSession"));
    });
  });

  it("keeps filters and an empty page", async () => {
    await withApi(async (a) => {
      await a.inventory.vms.create({ name: "one", spec: base });
      const res = await a.call("operator", "GET", "/v1/vms?securityMode=sev-es");
      assert.equal(res.statusCode, 200);
      assert.deepEqual(JSON.parse(res.body), { items: [], nextCursor: null });
    });
  });
});

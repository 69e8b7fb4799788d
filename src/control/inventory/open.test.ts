import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isCiphervisorError } from "../../errors.ts";
import { parseInventoryUrl } from "./open.ts";

describe("parseInventoryUrl", () => {
  it("chooses SQLite for paths and sqlite: URLs", () => {
    assert.deepEqual(parseInventoryUrl("/var/lib/cv/inventory.db"), {
      dialect: "sqlite",
      path: "/var/lib/cv/inventory.db",
    });
    assert.deepEqual(parseInventoryUrl("data/inv.db"), { dialect: "sqlite", path: "data/inv.db" });
    assert.deepEqual(parseInventoryUrl("sqlite:/tmp/x.db"), { dialect: "sqlite", path: "/tmp/x.db" });
    assert.deepEqual(parseInventoryUrl("sqlite:///tmp/x.db"), { dialect: "sqlite", path: "/tmp/x.db" });
    assert.deepEqual(parseInventoryUrl("sqlite::memory:"), { dialect: "sqlite", path: ":memory:" });
  });

  it("chooses PostgreSQL for postgres:// URLs and takes the schema parameter out", () => {
    const loc = parseInventoryUrl("postgresql://u:p@db:5432/cv?schema=site_a&sslmode=disable");
    assert.equal(loc.dialect, "postgres");
    assert.ok(loc.dialect === "postgres");
    assert.equal(loc.schema, "site_a");
    assert.equal(loc.connectionString, "postgresql://u:p@db:5432/cv?sslmode=disable");
    const plain = parseInventoryUrl("postgres://db/cv");
    assert.ok(plain.dialect === "postgres" && plain.schema === undefined);
  });

  it("rejects other schemes and empty input without echoing credentials", () => {
    assert.throws(
      () => parseInventoryUrl("mysql://u:secret@db/cv"),
      (e) => isCiphervisorError(e, "INVALID_INPUT"),
    );
    assert.throws(
      () => parseInventoryUrl(""),
      (e) => isCiphervisorError(e, "INVALID_INPUT"),
    );
    assert.throws(
      () => parseInventoryUrl("sqlite:"),
      (e) => isCiphervisorError(e, "INVALID_INPUT"),
    );
    assert.throws(
      () => parseInventoryUrl("postgres://u:hunter2@[bad/cv"),
      (e) => isCiphervisorError(e, "INVALID_INPUT") && !e.message.includes("hunter2"),
    );
  });
});

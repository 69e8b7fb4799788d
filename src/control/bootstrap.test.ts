/**
 * A restart of the control plane is a reboot of its emulated hosts: `restoreEmulatedHosts` rebuilds them from the
 * inventory with the same generation, ASID split and VMM profile, so an SEV-ES launch after the restart measures
 * the same VMSAs as before it (docs/sev-interface.md §8.5).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { restoreEmulatedHosts } from "./bootstrap.ts";
import { DriverRegistry } from "./drivers/driver.ts";
import { emulatedDriver } from "./drivers/emulated-hosts.ts";
import { registerHost } from "./services/hosts.ts";
import { fixtureOn, sqliteDatabase, TEST_ACTOR } from "./testing/control-fixture.ts";

describe("restoring emulated hosts after a restart", () => {
  it("keeps each host's generation, ASID split and VMM profile", async () => {
    const db = sqliteDatabase();
    const inventory = await db.open();
    const f = fixtureOn(inventory);
    try {
      await registerHost(f.cp.context, TEST_ACTOR, {
        name: "rome-init2",
        emulated: { generation: "rome", minSevAsid: 5, vmmProfile: "qemu" },
      });
      await registerHost(f.cp.context, TEST_ACTOR, {
        name: "milan-legacy",
        emulated: { generation: "milan" },
      });
      const before = await Promise.all(
        ["rome-init2", "milan-legacy"].map(async (h) => (await f.driver.connect(h)).capabilities()),
      );

      // A new process: a fresh driver with no machines, rebuilt from the inventory.
      const driver = emulatedDriver();
      await restoreEmulatedHosts(inventory, new DriverRegistry([driver]));
      const after = await Promise.all(
        ["rome-init2", "milan-legacy"].map(async (h) => (await driver.connect(h)).capabilities()),
      );
      assert.deepEqual(
        after.map((c) => [c.name, c.generation, c.minSevAsid, c.vmmProfile]),
        [
          ["rome-init2", "rome", 5, "qemu"],
          ["milan-legacy", "milan", 100, "qemu-legacy"],
        ],
      );
      assert.deepEqual(
        after.map((c) => c.vmmProfile),
        before.map((c) => c.vmmProfile),
      );
    } finally {
      await f.cp.stop();
      await inventory.close();
      await db.dispose();
    }
  });
});

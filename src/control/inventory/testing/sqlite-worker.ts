/**
 * A second process for `sqlite.test.ts`: opens the inventory file given on the command line, claims operations
 * until none is left (appending two audit records per claim in one transaction with the finish) and appends
 * twenty more records in separate transactions, interleaving with its sibling process. Prints claimed ids.
 */
import { openInventory } from "../open.ts";

const [file, name] = process.argv.slice(2);
if (file === undefined || name === undefined) throw new Error("usage: sqlite-worker FILE NAME");
const inv = await openInventory(file, { migrate: false });
const actor = { id: null, name };
let extra = 0;
for (;;) {
  const op = await inv.operations.claimNext({ worker: name, leaseMs: 60_000 });
  if (op) {
    await inv.transaction(async (tx) => {
      await tx.operations.recordItems(op.id, [{ target: "vm_1", outcome: "ok" }]);
      await tx.operations.finish(op.id, { worker: name });
      await tx.audit.append([
        { actor, action: "operation.run", target: op.id, outcome: "ok" },
        { actor, action: "operation.finish", target: op.id, outcome: "ok" },
      ]);
    });
    process.stdout.write(`${op.id}\n`);
  }
  if (extra < 20) {
    await inv.audit.append({ actor, action: "worker.tick", target: name, outcome: "ok", details: { extra } });
    extra++;
  }
  if (!op && extra >= 20) break;
}
await inv.close();

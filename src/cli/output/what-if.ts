/**
 * The `--what-if` report, the same for every mutating command: per VM what would happen (or why it would be
 * refused, with the stable code the real run would give), the capacity impact per host and ASID pool, and the
 * reminder that nothing was changed. `--json` prints it as one document with `"whatIf": true`.
 */
import type { CliIo } from "../io.ts";
import { plural } from "../selectors.ts";
import { json, type OutputMode } from "./format.ts";
import { table } from "./table.ts";

export interface WhatIfItem {
  readonly vm: string;
  readonly outcome: "change" | "unchanged" | "refused";
  /** What would be done ("start", "sev-es 0x5", "restart + sev-es 0x5", …). */
  readonly action?: string;
  readonly host?: string | null;
  readonly code?: string;
  readonly reason?: string;
}

export interface WhatIfCapacity {
  readonly host: string;
  readonly pool: "sev" | "sev-es";
  readonly size: number;
  /** Slots taken now and after the plan. */
  readonly used: number;
  readonly usedAfter: number;
  /** VMs of the pool's mode registered on the host, before and after (the demand if all were on). */
  readonly vms?: number;
  readonly vmsAfter?: number;
}

export interface WhatIfReport {
  readonly command: string;
  readonly items: readonly WhatIfItem[];
  readonly capacity: readonly WhatIfCapacity[];
}

export function summarise(items: readonly WhatIfItem[]): {
  change: number;
  unchanged: number;
  refused: number;
} {
  let change = 0;
  let unchanged = 0;
  let refused = 0;
  for (const i of items) {
    if (i.outcome === "change") change++;
    else if (i.outcome === "unchanged") unchanged++;
    else refused++;
  }
  return { change, unchanged, refused };
}

export function printWhatIf(io: CliIo, mode: OutputMode, r: WhatIfReport): void {
  const s = summarise(r.items);
  if (mode === "json") {
    io.out(
      json({
        whatIf: true,
        command: r.command,
        ...s,
        total: r.items.length,
        items: r.items,
        capacity: r.capacity,
      }),
    );
    return;
  }
  if (mode === "name") {
    // The VMs that would change, one a line: pipe them into the real command.
    for (const i of r.items) if (i.outcome === "change") io.out(`${i.vm}\n`);
    return;
  }
  io.out(
    `what-if: ${r.command} — ${plural(r.items.length, "VM")}: ${s.change.toLocaleString("en-US")} would change, ${s.unchanged.toLocaleString("en-US")} already as asked, ${s.refused.toLocaleString("en-US")} refused. Nothing was changed.\n`,
  );
  if (r.items.length > 0) {
    io.out(
      table(
        [
          { header: "VM", value: (i: WhatIfItem) => i.vm },
          {
            header: "WOULD",
            value: (i: WhatIfItem) => (i.outcome === "change" ? (i.action ?? "change") : i.outcome),
          },
          { header: "HOST", value: (i: WhatIfItem) => i.host ?? "-" },
          { header: "CODE", value: (i: WhatIfItem) => i.code ?? "" },
          { header: "REASON", value: (i: WhatIfItem) => i.reason ?? "" },
        ],
        r.items,
      ),
    );
  }
  if (r.capacity.length > 0) {
    io.out("capacity impact (key slots per host and pool):\n");
    io.out(
      table(
        [
          { header: "HOST", value: (c: WhatIfCapacity) => c.host },
          { header: "POOL", value: (c: WhatIfCapacity) => c.pool },
          { header: "SIZE", value: (c: WhatIfCapacity) => c.size, right: true },
          { header: "IN-USE", value: (c: WhatIfCapacity) => c.used, right: true },
          { header: "AFTER", value: (c: WhatIfCapacity) => c.usedAfter, right: true },
          { header: "VMS", value: (c: WhatIfCapacity) => (c.vms === undefined ? "" : c.vms), right: true },
          {
            header: "VMS-AFTER",
            value: (c: WhatIfCapacity) => (c.vmsAfter === undefined ? "" : c.vmsAfter),
            right: true,
          },
          {
            header: "NOTE",
            value: (c: WhatIfCapacity) =>
              c.vmsAfter !== undefined && c.vmsAfter > c.size
                ? `only ${c.size} of ${c.vmsAfter} can run at once`
                : "",
          },
        ],
        r.capacity,
      ),
    );
  }
}

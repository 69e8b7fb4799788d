/**
 * `GET /v1/operations/{id}/events` over a real socket: a multi-batch bulk update streams one progress event per
 * committed batch, not just the first and the final state. Watchers here are woken only by the engine's own
 * progress signal (polling is set to ten minutes), so the events prove the stream is pushed, not polled.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { NewVm } from "../control/inventory/types.ts";
import { submitOperation } from "../control/operations/submit.ts";
import { bulkParams } from "../control/services/bulk-update.ts";
import { linuxSpec, TEST_ACTOR } from "../control/testing/control-fixture.ts";
import { withApi } from "./testing/api-fixture.ts";

const VMS = 60;
const BATCH = 10;

interface Frame {
  readonly event: string;
  readonly status: string;
  readonly done: number;
  readonly total: number;
}

function parseFrame(text: string): Frame {
  const event = /^event: (.+)$/m.exec(text)?.[1] ?? "";
  const data = JSON.parse(/^data: (.+)$/m.exec(text)?.[1] ?? "{}") as {
    status: string;
    progress: { done: number; total: number };
  };
  return { event, status: data.status, done: data.progress.done, total: data.progress.total };
}

describe("API: operation event stream", () => {
  it("streams per-batch progress of a multi-batch bulk update over a real socket", () =>
    withApi(
      async (a) => {
        await a.inventory.vms.createMany(
          Array.from(
            { length: VMS },
            (_, i): NewVm => ({ name: `p-${String(i).padStart(2, "0")}`, spec: linuxSpec }),
          ),
        );
        // Queued without waking the engine (which polls only every ten minutes): the stream opens first.
        const { operation } = await submitOperation(a.inventory, {
          kind: "vm.bulk-update",
          actor: TEST_ACTOR,
          params: bulkParams({ namePrefix: "p-" }, { securityMode: "sev-es" }, ["security-admin"]),
          target: "*",
        });
        const url = await a.app.listen({ host: "127.0.0.1", port: 0 });
        const res = await fetch(`${url}/v1/operations/${operation.id}/events`, {
          headers: { authorization: `Bearer ${a.tokens.viewer}` },
        });
        assert.equal(res.status, 200);
        assert.ok(res.body);
        const frames: Frame[] = [];
        // The stored status when the first in-between frame reached this client: "running" proves frames are
        // delivered while the run goes on, not produced on time and then flushed together at its end.
        let statusOnArrival: string | undefined;
        let buffer = "";
        const decoder = new TextDecoder();
        for await (const chunk of res.body) {
          buffer += decoder.decode(chunk, { stream: true });
          let end = buffer.indexOf("\n\n");
          while (end >= 0) {
            const frame = parseFrame(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
            end = buffer.indexOf("\n\n");
            frames.push(frame);
            if (statusOnArrival === undefined && frame.done > 0 && frame.done < frame.total)
              statusOnArrival = (await a.inventory.operations.get(operation.id))?.status;
            // The first frame is the queued state; only now may the run start.
            if (frames.length === 1) a.cp.engine.kick();
          }
          if (frames.at(-1)?.event === "done") break;
        }
        assert.deepEqual(
          [frames[0]?.event, frames[0]?.status, frames[0]?.done],
          ["progress", "pending", 0],
          "the stream saw the operation before it ran",
        );
        const last = frames.at(-1);
        assert.deepEqual(
          [last?.event, last?.status, last?.done, last?.total],
          ["done", "succeeded", VMS, VMS],
        );
        const dones = frames.map((f) => f.done);
        for (let i = 1; i < dones.length; i++) {
          assert.ok((dones[i] ?? 0) >= (dones[i - 1] ?? 0), `done never goes back: ${dones.join(",")}`);
        }
        const between = frames.filter((f) => f.event === "progress" && f.done > 0 && f.done < f.total);
        const steps = between.map((f) => f.done);
        assert.ok(steps.length >= 3, `intermediate progress events: ${dones.join(",")}`);
        for (let i = 1; i < steps.length; i++) {
          assert.ok((steps[i] ?? 0) > (steps[i - 1] ?? 0), `done strictly increases: ${steps.join(",")}`);
        }
        assert.equal(statusOnArrival, "running", "progress reached the client while the operation ran");
      },
      { control: { batchSize: BATCH, pollMs: 600_000 } },
    ));
});

/**
 * An operation's live progress from its event stream, then its per-item results (failed items with code and
 * reason). Reconnects by reading the operation once more if the stream ends early.
 */
import { useEffect, useState } from "preact/hooks";
import { asProblem } from "../lib/api.ts";
import { isFinalStatus, watchOperation } from "../lib/sse.ts";
import type { Operation, OperationItem, Page, Problem } from "../lib/types.ts";
import { useSession } from "../session.tsx";
import { ProblemBox } from "./problem.tsx";

function detailsText(d: OperationItem["details"]): string {
  if (!d) return "";
  return Object.entries(d)
    .filter(([, v]) => v !== null && typeof v !== "object")
    .map(([k, v]) => `${k}: ${String(v)}`)
    .join(", ");
}

export function OperationProgress(props: {
  opId: string;
  initial?: Operation;
  names?: ReadonlyMap<string, string>;
  onDone?: (op: Operation) => void;
}) {
  const { client } = useSession();
  const [op, setOp] = useState<Operation | undefined>(props.initial);
  const [items, setItems] = useState<readonly OperationItem[] | null>(null);
  const [problem, setProblem] = useState<Problem | null>(null);

  useEffect(() => {
    const abort = new AbortController();
    (async () => {
      try {
        let last = await watchOperation(client, props.opId, setOp, abort.signal);
        if (!last || !isFinalStatus(last.status)) {
          last = await client.json<Operation>(`/v1/operations/${encodeURIComponent(props.opId)}`);
          setOp(last);
        }
        const page = await client.json<Page<OperationItem>>(
          `/v1/operations/${encodeURIComponent(props.opId)}/items?limit=500`,
        );
        setItems(page.items);
        props.onDone?.(last);
      } catch (e) {
        if (!abort.signal.aborted) setProblem(asProblem(e));
      }
    })();
    return () => abort.abort();
  }, [props.opId]);

  const p = op?.progress;
  const final = op !== undefined && isFinalStatus(op.status);
  return (
    <section class="panel progress" aria-label="Operation progress" data-status={op?.status ?? "pending"}>
      <h3>
        Operation <code>{props.opId}</code>{" "}
        {op ? <span class={`status status-${op.status}`}>{op.status}</span> : null}
      </h3>
      <progress max={p?.total || 1} value={p?.done ?? 0} aria-label="items done" />
      <p aria-live="polite">
        {p ? `${p.done} of ${p.total} done: ${p.ok} ok, ${p.failed} failed` : "waiting for the first event…"}
        {op?.error ? ` — ${op.error.code}: ${op.error.message}` : ""}
      </p>
      <ProblemBox problem={problem} />
      {final && items ? (
        <div class="scroll">
          <table class="results">
            <caption>Results</caption>
            <thead>
              <tr>
                <th scope="col">Target</th>
                <th scope="col">Outcome</th>
                <th scope="col">Code and reason</th>
                <th scope="col">Details</th>
              </tr>
            </thead>
            <tbody>
              {items.map((i) => (
                <tr
                  key={i.target}
                  class={`outcome-${i.outcome}`}
                  data-result={props.names?.get(i.target) ?? i.target}
                >
                  <td>{props.names?.get(i.target) ?? i.target}</td>
                  <td>{i.outcome}</td>
                  <td>
                    {i.code ? <code class="code">{i.code}</code> : null} {i.reason ?? ""}
                  </td>
                  <td>{detailsText(i.details)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
    </section>
  );
}

/** Operations: every operation with its progress; one opened shows live progress and its per-item results. */
import { useEffect, useState } from "preact/hooks";
import { OperationProgress } from "../components/operation-progress.tsx";
import { ProblemBox } from "../components/problem.tsx";
import { asProblem } from "../lib/api.ts";
import type { Operation, Page, Problem } from "../lib/types.ts";
import { useSession } from "../session.tsx";

export function OperationsPage({ id }: { id?: string }) {
  const { client, navigate } = useSession();
  const [ops, setOps] = useState<readonly Operation[]>([]);
  const [problem, setProblem] = useState<Problem | null>(null);

  useEffect(() => {
    // Oldest first from the API; the newest are what people look for, so the last 500 are shown newest first.
    (async () => {
      const all: Operation[] = [];
      let cursor: string | null = null;
      do {
        const q: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : "";
        const page: Page<Operation> = await client.json<Page<Operation>>(`/v1/operations?limit=500${q}`);
        all.push(...page.items);
        if (all.length > 500) all.splice(0, all.length - 500);
        cursor = page.nextCursor;
      } while (cursor);
      setOps(all.reverse());
    })().catch((e) => setProblem(asProblem(e)));
  }, [id]);

  return (
    <main id="main" class="page">
      <h2>Operations</h2>
      <ProblemBox problem={problem} />
      {id ? <OperationProgress key={id} opId={id} /> : null}
      <div class="scroll">
        <table>
          <caption>Newest first</caption>
          <thead>
            <tr>
              <th scope="col">Operation</th>
              <th scope="col">Kind</th>
              <th scope="col">Status</th>
              <th scope="col">Progress</th>
              <th scope="col">By</th>
              <th scope="col">Created</th>
            </tr>
          </thead>
          <tbody>
            {ops.map((o) => (
              <tr key={o.id}>
                <td>
                  <button
                    type="button"
                    class="link"
                    onClick={() => navigate({ page: "operations", id: o.id })}
                  >
                    {o.id}
                  </button>
                </td>
                <td>{o.kind}</td>
                <td>
                  <span class={`status status-${o.status}`}>{o.status}</span>
                </td>
                <td>
                  <progress
                    max={o.progress.total || 1}
                    value={o.progress.done}
                    aria-label={`${o.id} progress`}
                  />{" "}
                  {o.progress.ok} ok, {o.progress.failed} failed of {o.progress.total}
                </td>
                <td>{o.actor.name}</td>
                <td>{new Date(o.createdAt).toLocaleString()}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </main>
  );
}

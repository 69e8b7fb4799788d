/** The server's dry-run plan, grouped (refused first, with code and reason), and the key-slot pools before → after. */
import { capacityRows, itemChange, planGroups, planHeadline, planRunnable } from "../lib/plan.ts";
import type { DryRunPlan } from "../lib/types.ts";

export function PlanView(props: {
  plan: DryRunPlan;
  title: string;
  onRun?: () => void;
  onCancel: () => void;
  running?: boolean;
  runLabel?: string;
}) {
  const { plan } = props;
  const capacity = capacityRows(plan.capacity);
  return (
    <section class="panel plan" aria-label="Plan">
      <h3>
        Plan: {props.title} <small>(computed by the server; nothing has changed yet)</small>
      </h3>
      <p class="headline">{planHeadline(plan)}</p>
      {planGroups(plan).map((g) => (
        <details key={g.outcome} open={g.outcome !== "unchanged"} class={`group outcome-${g.outcome}`}>
          <summary>
            {g.title} ({g.items.length})
          </summary>
          <div class="scroll">
            <table>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Host afterwards</th>
                  <th scope="col">What</th>
                  {g.outcome === "refused" ? <th scope="col">Code and reason</th> : null}
                </tr>
              </thead>
              <tbody>
                {g.items.map((i) => (
                  <tr key={i.target} data-plan-item={i.name}>
                    <td>{i.name}</td>
                    <td>{i.host ?? "—"}</td>
                    <td>
                      {itemChange(i)}
                      {i.restart ? <span class="badge restart">restart</span> : null}
                    </td>
                    {g.outcome === "refused" ? (
                      <td>
                        <code class="code">{i.code}</code> {i.reason}
                      </td>
                    ) : null}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </details>
      ))}
      {capacity.length ? (
        <table class="capacity">
          <caption>Key slots</caption>
          <thead>
            <tr>
              <th scope="col">Pool</th>
              <th scope="col">Now</th>
              <th scope="col">Afterwards</th>
            </tr>
          </thead>
          <tbody>
            {capacity.map((c) => (
              <tr key={c.label} class={c.full ? "full" : ""}>
                <td>{c.label}</td>
                <td>{c.before}</td>
                <td>{c.after}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      <div class="buttons">
        {props.onRun ? (
          <button
            type="button"
            class="primary"
            disabled={!planRunnable(plan) || props.running === true}
            onClick={props.onRun}
          >
            {props.runLabel ?? "Run"}
          </button>
        ) : null}
        <button type="button" class="secondary" onClick={props.onCancel}>
          Close
        </button>
      </div>
    </section>
  );
}

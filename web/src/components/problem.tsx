/** An API problem as the dashboard shows every failure: its title and code, then its detail. */
import type { Problem } from "../lib/types.ts";

export function ProblemBox({ problem }: { problem: Problem | null | undefined }) {
  if (!problem) return null;
  return (
    <div class="problem" role="alert">
      <strong>{problem.title}</strong> <code class="code">{problem.code}</code>
      {problem.detail ? <div>{problem.detail}</div> : null}
      {problem.errors?.length ? (
        <ul>
          {problem.errors.map((e) => (
            <li key={e.path}>
              {e.in} {e.path}: {e.message}
            </li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}

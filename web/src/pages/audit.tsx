/** Audit: the hash chain's verification (and the first bad record, if any), and the newest records. */
import { useEffect, useState } from "preact/hooks";
import { ProblemBox } from "../components/problem.tsx";
import { asProblem } from "../lib/api.ts";
import { availability } from "../lib/permissions.ts";
import type { AuditRecord, AuditVerification, Page, Problem } from "../lib/types.ts";
import { useSession } from "../session.tsx";

export function AuditPage() {
  const { client, me } = useSession();
  const [verify, setVerify] = useState<AuditVerification | null>(null);
  const [records, setRecords] = useState<readonly AuditRecord[]>([]);
  const [problem, setProblem] = useState<Problem | null>(null);
  const allowed = availability(me.permissions, "audit.read");

  useEffect(() => {
    if (!allowed.allowed) return;
    (async () => {
      setVerify(await client.json<AuditVerification>("/v1/audit/verify"));
      const all: AuditRecord[] = [];
      let cursor: string | null = null;
      do {
        const q: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : "";
        const page: Page<AuditRecord> = await client.json<Page<AuditRecord>>(`/v1/audit?limit=1000${q}`);
        all.push(...page.items);
        if (all.length > 200) all.splice(0, all.length - 200);
        cursor = page.nextCursor;
      } while (cursor);
      setRecords(all.reverse());
    })().catch((e) => setProblem(asProblem(e)));
  }, []);

  return (
    <main id="main" class="page">
      <h2>Audit</h2>
      {allowed.allowed ? null : <p class="needs">The audit log {allowed.reason}.</p>}
      <ProblemBox problem={problem} />
      {verify ? (
        <section
          class={`panel verify ${verify.ok ? "ok" : "bad"}`}
          aria-label="Chain verification"
          role="status"
        >
          {verify.ok ? (
            <p>
              <strong>Chain verified:</strong> {verify.verified} records, up to #{verify.lastSeq}.
            </p>
          ) : (
            <p>
              <strong>Chain broken</strong> at record #{verify.firstBad?.seq}: {verify.firstBad?.problem} —{" "}
              {verify.firstBad?.message}
            </p>
          )}
        </section>
      ) : null}
      <div class="scroll">
        <table>
          <caption>Newest 200 records</caption>
          <thead>
            <tr>
              <th scope="col">#</th>
              <th scope="col">Time</th>
              <th scope="col">Actor</th>
              <th scope="col">Action</th>
              <th scope="col">Target</th>
              <th scope="col">Outcome</th>
            </tr>
          </thead>
          <tbody>
            {records.map((r) => (
              <tr key={r.seq} class={r.seq === verify?.firstBad?.seq ? "bad" : ""}>
                <td>{r.seq}</td>
                <td>{new Date(r.time).toLocaleString()}</td>
                <td>{r.actor.name}</td>
                <td>{r.action}</td>
                <td>{r.target}</td>
                <td>{r.outcome}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </main>
  );
}

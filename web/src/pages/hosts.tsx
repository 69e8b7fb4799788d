/**
 * Hosts: CPU generation, SEV state, firmware version (from the host record, so every role that reads hosts sees it,
 * not only `attestation.read`), key-slot gauges per pool with their ASID ranges (the BIOS split between SEV-ES and
 * SEV), connection and maintenance; entering and leaving maintenance shows the server's plan first (which VMs
 * live-migrate, restart elsewhere, or cannot move).
 */
import { useEffect, useState } from "preact/hooks";
import { ActionButton } from "../components/action-button.tsx";
import { OperationProgress } from "../components/operation-progress.tsx";
import { PlanView } from "../components/plan-view.tsx";
import { ProblemBox } from "../components/problem.tsx";
import { asProblem } from "../lib/api.ts";
import { gauge } from "../lib/format.ts";
import type { DryRunPlan, Host, OperationAnswer, Page, Pool, Problem, Vm } from "../lib/types.ts";
import { useSession } from "../session.tsx";

function Gauge({ label, pool }: { label: string; pool: Pool }) {
  const g = gauge(pool.used, pool.size);
  return (
    <div class="gauge">
      <div class="gauge-label">
        {label} <small>ASIDs {pool.size ? `${pool.first}–${pool.last}` : "none"}</small>
      </div>
      <meter min={0} max={Math.max(pool.size, 1)} value={pool.used} aria-label={`${label} key slots used`} />
      <div class="gauge-text">{g.text}</div>
    </div>
  );
}

export function HostsPage() {
  const { client } = useSession();
  const [hosts, setHosts] = useState<readonly Host[]>([]);
  const [problem, setProblem] = useState<Problem | null>(null);
  const [pending, setPending] = useState<{ host: Host; verb: string; plan: DryRunPlan } | null>(null);
  const [op, setOp] = useState<string | null>(null);
  const [names, setNames] = useState<ReadonlyMap<string, string>>(new Map());
  const [reload, setReload] = useState(0);

  useEffect(() => {
    client
      .json<Page<Host>>("/v1/hosts?limit=500")
      .then((p) => setHosts(p.items))
      .catch((e) => setProblem(asProblem(e)));
  }, [reload]);

  async function review(host: Host, verb: "enter-maintenance" | "exit-maintenance") {
    setProblem(null);
    try {
      const plan = await client.json<DryRunPlan>(
        `/v1/hosts/${encodeURIComponent(host.id)}/${verb}?dryRun=true`,
        { method: "POST" },
      );
      const vms = await client.json<Page<Vm>>(`/v1/vms?limit=5000&hostId=${encodeURIComponent(host.id)}`);
      setNames(new Map([...vms.items.map((v) => [v.id, v.name] as const), [host.id, host.name]]));
      setOp(null);
      setPending({ host, verb, plan });
    } catch (e) {
      setProblem(asProblem(e));
    }
  }

  async function run() {
    if (!pending) return;
    try {
      const a = await client.json<OperationAnswer>(
        `/v1/hosts/${encodeURIComponent(pending.host.id)}/${pending.verb}`,
        { method: "POST", headers: { prefer: "respond-async" } },
      );
      setPending(null);
      setOp(a.operation.id);
    } catch (e) {
      setProblem(asProblem(e));
    }
  }

  return (
    <main id="main" class="page">
      <h2>Hosts</h2>
      <ProblemBox problem={problem} />
      {pending ? (
        <PlanView
          plan={pending.plan}
          title={`${pending.verb === "enter-maintenance" ? "Enter" : "Exit"} maintenance on ${pending.host.name}`}
          onRun={run}
          onCancel={() => setPending(null)}
          runLabel="Run it"
        />
      ) : null}
      {op ? <OperationProgress opId={op} names={names} onDone={() => setReload((n) => n + 1)} /> : null}
      <div class="cards">
        {hosts.map((h) => {
          const fw = h.firmware;
          return (
            <article class="card" key={h.id} data-host={h.name} aria-label={`host ${h.name}`}>
              <h3>{h.name}</h3>
              <dl class="facts">
                <dt>CPU</dt>
                <dd>{h.cpuGeneration}</dd>
                <dt>SEV</dt>
                <dd>
                  {h.sevState}, ES {h.esMode}
                </dd>
                <dt>Firmware</dt>
                <dd>{fw ? `API ${fw.apiMajor}.${fw.apiMinor}, build ${fw.build}` : "—"}</dd>
                <dt>VMM</dt>
                <dd>{h.vmmProfile}</dd>
                <dt>Connection</dt>
                <dd>{h.connection}</dd>
                <dt>Maintenance</dt>
                <dd class={`maint-${h.maintenance}`}>{h.maintenance}</dd>
                <dt>Running VMs</dt>
                <dd>{h.activeVms}</dd>
              </dl>
              <Gauge label="SEV" pool={h.pools.sev} />
              <Gauge label="SEV-ES" pool={h.pools.sevEs} />
              {h.pools.snp.size > 0 ? <Gauge label="SEV-SNP" pool={h.pools.snp} /> : null}
              <div class="buttons">
                {h.maintenance === "none" ? (
                  <ActionButton action="host.maintenance" onClick={() => review(h, "enter-maintenance")}>
                    Enter maintenance…
                  </ActionButton>
                ) : (
                  <ActionButton action="host.maintenance" onClick={() => review(h, "exit-maintenance")}>
                    Exit maintenance…
                  </ActionButton>
                )}
              </div>
            </article>
          );
        })}
      </div>
    </main>
  );
}

/**
 * VMs: the server filters, sorts (every column, over the whole list) and pages (`GET /v1/vms`); a selection — rows, or every VM matching the filter — goes to
 * `POST /v1/vms:bulk-update` as a selector: first with `?dryRun=true` to show the server's plan, then for real, with
 * live progress from the operation's event stream.
 */
import { useEffect, useMemo, useState } from "preact/hooks";
import { ActionButton } from "../components/action-button.tsx";
import { ModeBadge } from "../components/mode-badge.tsx";
import { OperationProgress } from "../components/operation-progress.tsx";
import { PlanView } from "../components/plan-view.tsx";
import { ProblemBox } from "../components/problem.tsx";
import { asProblem } from "../lib/api.ts";
import { describePolicy, parsePolicy } from "../lib/format.ts";
import type { DashboardAction } from "../lib/permissions.ts";
import type { DryRunPlan, Host, OperationAnswer, Page, Problem, Vm } from "../lib/types.ts";
import {
  nextSort,
  PAGE_SIZES,
  type Selection,
  type Sort,
  type SortKey,
  selectorFor,
  serverOrder,
  type VmFilter,
  vmListQuery,
} from "../lib/vm-query.ts";
import { useSession } from "../session.tsx";

type BulkKind = "enable-sev-es" | "disable" | "change-policy";

const BULK: Record<BulkKind, { label: string; action: DashboardAction }> = {
  "enable-sev-es": { label: "Enable SEV-ES", action: "vm.enable-sev-es" },
  disable: { label: "Disable", action: "vm.disable" },
  "change-policy": { label: "Change policy", action: "vm.change-policy" },
};

const COLUMNS: readonly { key: SortKey; label: string }[] = [
  { key: "name", label: "Name" },
  { key: "host", label: "Host" },
  { key: "powerState", label: "Power" },
  { key: "guestOs", label: "Guest OS" },
  { key: "securityMode", label: "Mode" },
  { key: "policy", label: "Policy" },
];

interface Pending {
  readonly title: string;
  readonly path: string;
  readonly body: unknown;
  readonly plan: DryRunPlan;
}

export function VmsPage() {
  const { client, navigate } = useSession();
  const [draft, setDraft] = useState<VmFilter>({});
  const [filter, setFilter] = useState<VmFilter>({});
  const [limit, setLimit] = useState<number>(50);
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const [page, setPage] = useState<Page<Vm> | null>(null);
  const [hosts, setHosts] = useState<readonly Host[]>([]);
  const [sort, setSort] = useState<Sort | undefined>(undefined);
  const [selected, setSelected] = useState<ReadonlySet<string>>(new Set());
  const [allMatching, setAllMatching] = useState(false);
  const [policyText, setPolicyText] = useState("0x0005");
  const [restart, setRestart] = useState(false);
  const [pending, setPending] = useState<Pending | null>(null);
  const [opId, setOpId] = useState<string | null>(null);
  const [detail, setDetail] = useState<Vm | null>(null);
  const [problem, setProblem] = useState<Problem | null>(null);
  const [loading, setLoading] = useState(false);
  const [reload, setReload] = useState(0);

  const cursor = cursors[cursors.length - 1] ?? null;
  // Every column sorts the whole list on the server; the page shows the server's order as it comes.
  const order = serverOrder(sort);
  const hostName = useMemo(() => {
    const m = new Map(hosts.map((h) => [h.id, h.name]));
    return (id: string | null) => (id === null ? "—" : (m.get(id) ?? id));
  }, [hosts]);

  useEffect(() => {
    client
      .json<Page<Host>>("/v1/hosts?limit=500")
      .then((p) => setHosts(p.items))
      .catch((e) => setProblem(asProblem(e)));
  }, []);

  useEffect(() => {
    const abort = new AbortController();
    setLoading(true);
    client
      .json<Page<Vm>>(`/v1/vms?${vmListQuery(filter, { limit, cursor, sort: order })}`, {
        signal: abort.signal,
      })
      .then((p) => {
        setPage(p);
        setProblem(null);
      })
      .catch((e) => abort.signal.aborted || setProblem(asProblem(e)))
      .finally(() => setLoading(false));
    return () => abort.abort();
  }, [filter, limit, cursor, order, reload]);

  const rows = useMemo(() => page?.items ?? [], [page]);
  /** A new sort; a change of the server's order starts again at its first page (a cursor holds one order). */
  function sortBy(key: SortKey) {
    const next = nextSort(sort, key);
    if (serverOrder(next) !== order) setCursors([null]);
    setSort(next);
  }
  const names = useMemo(() => new Map(rows.map((v) => [v.id, v.name])), [rows]);
  const selection: Selection = allMatching ? { kind: "filter" } : { kind: "ids", ids: [...selected] };
  const selectionCount = allMatching ? "all matching the filter" : `${selected.size} selected`;
  const nothingSelected = !allMatching && selected.size === 0;

  function apply(e: Event) {
    e.preventDefault();
    setFilter(draft);
    setCursors([null]);
    setSelected(new Set());
    setAllMatching(false);
  }

  function toggle(id: string) {
    const s = new Set(selected);
    if (s.has(id)) s.delete(id);
    else s.add(id);
    setSelected(s);
    setAllMatching(false);
  }

  function togglePage() {
    const allOn = rows.length > 0 && rows.every((r) => selected.has(r.id));
    const s = new Set(selected);
    for (const r of rows) {
      if (allOn) s.delete(r.id);
      else s.add(r.id);
    }
    setSelected(s);
    setAllMatching(false);
  }

  async function review(kind: BulkKind) {
    setProblem(null);
    let set: Record<string, unknown>;
    if (kind === "enable-sev-es") set = { securityMode: "sev-es" };
    else if (kind === "disable") set = { securityMode: "none" };
    else {
      const policy = parsePolicy(policyText);
      if (policy === undefined) {
        setProblem({
          title: "Invalid policy",
          status: 400,
          code: "INVALID_INPUT",
          detail: "a policy is a 32-bit number (hex 0x… or decimal)",
        });
        return;
      }
      set = { policy };
    }
    const body = { selector: selectorFor(selection, filter), set, ...(restart ? { restart: true } : {}) };
    try {
      const plan = await client.json<DryRunPlan>("/v1/vms:bulk-update?dryRun=true", { method: "POST", body });
      setOpId(null);
      setPending({
        title: `${BULK[kind].label} (${selectionCount})`,
        path: "/v1/vms:bulk-update",
        body,
        plan,
      });
    } catch (e) {
      setProblem(asProblem(e));
    }
  }

  async function reviewMigrate(vm: Vm) {
    setProblem(null);
    const body = { mode: "live" };
    const path = `/v1/vms/${encodeURIComponent(vm.id)}/migrate`;
    try {
      const plan = await client.json<DryRunPlan>(`${path}?dryRun=true`, { method: "POST", body });
      setOpId(null);
      setPending({ title: `Live-migrate ${vm.name}`, path, body, plan });
    } catch (e) {
      setProblem(asProblem(e));
    }
  }

  async function run() {
    if (!pending) return;
    try {
      const answer = await client.json<OperationAnswer>(pending.path, {
        method: "POST",
        body: pending.body,
        headers: { prefer: "respond-async" },
      });
      setPending(null);
      setOpId(answer.operation.id);
    } catch (e) {
      setProblem(asProblem(e));
    }
  }

  return (
    <main id="main" class="page">
      <h2>Virtual machines</h2>
      <form class="filters" onSubmit={apply} aria-label="Filter VMs">
        <label>
          Name starts with
          <input
            name="namePrefix"
            value={draft.namePrefix ?? ""}
            onInput={(e) => setDraft({ ...draft, namePrefix: e.currentTarget.value })}
          />
        </label>
        <label>
          Host
          <select
            name="hostId"
            value={draft.hostId ?? ""}
            onChange={(e) => setDraft({ ...draft, hostId: e.currentTarget.value })}
          >
            <option value="">any</option>
            <option value="none">not placed</option>
            {hosts.map((h) => (
              <option key={h.id} value={h.id}>
                {h.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          Power
          <select
            name="powerState"
            value={draft.powerState ?? ""}
            onChange={(e) => setDraft({ ...draft, powerState: e.currentTarget.value })}
          >
            <option value="">any</option>
            {["running", "off", "paused", "suspended"].map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label>
          Mode
          <select
            name="securityMode"
            value={draft.securityMode ?? ""}
            onChange={(e) =>
              setDraft({ ...draft, securityMode: e.currentTarget.value as VmFilter["securityMode"] })
            }
          >
            <option value="">any</option>
            <option value="none">none</option>
            <option value="sev">SEV</option>
            <option value="sev-es">SEV-ES</option>
            <option value="sev-snp">SEV-SNP</option>
          </select>
        </label>
        <label>
          Labels
          <input
            name="labels"
            placeholder="app=web,env=prod"
            value={draft.labels ?? ""}
            onInput={(e) => setDraft({ ...draft, labels: e.currentTarget.value })}
          />
        </label>
        <button type="submit" class="primary">
          Filter
        </button>
      </form>

      <fieldset class="bulk" aria-label="Change the selected VMs">
        <span class="count" aria-live="polite">
          {selectionCount}
        </span>
        <button
          type="button"
          class="link"
          aria-pressed={allMatching}
          onClick={() => {
            setAllMatching(!allMatching);
            setSelected(new Set());
          }}
        >
          {allMatching ? "Select rows instead" : "Select all matching the filter"}
        </button>
        <ActionButton
          action="vm.enable-sev-es"
          disabled={nothingSelected}
          onClick={() => review("enable-sev-es")}
        >
          Enable SEV-ES
        </ActionButton>
        <ActionButton action="vm.disable" disabled={nothingSelected} onClick={() => review("disable")}>
          Disable
        </ActionButton>
        <label class="inline">
          Policy
          <input
            class="short"
            name="policy"
            value={policyText}
            onInput={(e) => setPolicyText(e.currentTarget.value)}
          />
        </label>
        <ActionButton
          action="vm.change-policy"
          disabled={nothingSelected}
          onClick={() => review("change-policy")}
        >
          Change policy
        </ActionButton>
        <label class="inline">
          <input type="checkbox" checked={restart} onChange={(e) => setRestart(e.currentTarget.checked)} />{" "}
          restart running VMs
        </label>
      </fieldset>

      <ProblemBox problem={problem} />
      {pending ? (
        <PlanView
          plan={pending.plan}
          title={pending.title}
          onRun={run}
          onCancel={() => setPending(null)}
          runLabel="Run it"
        />
      ) : null}
      {opId ? <OperationProgress opId={opId} names={names} onDone={() => setReload((n) => n + 1)} /> : null}

      {detail ? (
        <section class="panel" aria-label={`VM ${detail.name}`}>
          <h3>
            {detail.name} <ModeBadge mode={detail.securityMode} />
          </h3>
          <dl class="facts">
            <dt>Host</dt>
            <dd>{hostName(detail.hostId)}</dd>
            <dt>Power</dt>
            <dd>{detail.powerState}</dd>
            <dt>Attestation</dt>
            <dd>{detail.attestationState}</dd>
            <dt>Live migration</dt>
            <dd>
              {detail.liveMigratable.status ? "allowed" : `refused: ${detail.liveMigratable.reason ?? ""}`}
            </dd>
          </dl>
          <div class="buttons">
            <ActionButton action="vm.migrate" onClick={() => reviewMigrate(detail)}>
              Live migrate…
            </ActionButton>
            <button
              type="button"
              class="secondary"
              onClick={() => navigate({ page: "hypervisor-view", id: detail.id })}
            >
              Hypervisor view
            </button>
            <ActionButton
              action="attestation.read"
              onClick={() => navigate({ page: "attestation", id: detail.id })}
            >
              Attestation
            </ActionButton>
            <button type="button" class="secondary" onClick={() => setDetail(null)}>
              Close
            </button>
          </div>
        </section>
      ) : null}

      <div class="scroll">
        <table class="vms" aria-busy={loading}>
          <caption>
            VMs {loading ? "(loading…)" : ""} — filters, pages and every column's order come from the server
            (Host orders by host id, VMs without a host last)
          </caption>
          <thead>
            <tr>
              <th scope="col">
                <input
                  type="checkbox"
                  aria-label="Select every VM on this page"
                  checked={rows.length > 0 && rows.every((r) => selected.has(r.id))}
                  onChange={togglePage}
                />
              </th>
              {COLUMNS.map((c) => (
                <th
                  key={c.key}
                  scope="col"
                  aria-sort={sort?.key === c.key ? (sort.dir === "asc" ? "ascending" : "descending") : "none"}
                >
                  <button type="button" class="sort" onClick={() => sortBy(c.key)}>
                    {c.label}
                    {sort?.key === c.key ? (sort.dir === "asc" ? " ▲" : " ▼") : ""}
                  </button>
                </th>
              ))}
              <th scope="col">Attestation</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((vm) => (
              <tr key={vm.id} data-vm={vm.name}>
                <td>
                  <input
                    type="checkbox"
                    aria-label={`Select ${vm.name}`}
                    checked={allMatching || selected.has(vm.id)}
                    disabled={allMatching}
                    onChange={() => toggle(vm.id)}
                  />
                </td>
                <td>
                  <button type="button" class="link" onClick={() => setDetail(vm)}>
                    {vm.name}
                  </button>
                </td>
                <td>{hostName(vm.hostId)}</td>
                <td>{vm.powerState}</td>
                <td>{vm.spec.guestOs}</td>
                <td>
                  <ModeBadge mode={vm.securityMode} />
                </td>
                <td>
                  <code>{describePolicy(vm.securityMode, vm.policy)}</code>
                </td>
                <td>{vm.attestationState}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <nav class="pager" aria-label="Pages">
        <button
          type="button"
          class="secondary"
          disabled={cursors.length <= 1}
          onClick={() => setCursors(cursors.slice(0, -1))}
        >
          Previous page
        </button>
        <span>page {cursors.length}</span>
        <button
          type="button"
          class="secondary"
          disabled={!page?.nextCursor}
          onClick={() => page?.nextCursor && setCursors([...cursors, page.nextCursor])}
        >
          Next page
        </button>
        <label class="inline">
          Per page
          <select
            value={String(limit)}
            onChange={(e) => {
              setLimit(Number(e.currentTarget.value));
              setCursors([null]);
            }}
          >
            {PAGE_SIZES.map((n) => (
              <option key={n} value={String(n)}>
                {n}
              </option>
            ))}
          </select>
        </label>
      </nav>
    </main>
  );
}

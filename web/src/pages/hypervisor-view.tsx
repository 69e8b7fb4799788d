/**
 * The hypervisor view: per exit, each register as the guest holds it beside what the hypervisor reads at its slot,
 * and the VM's private page as the guest holds it beside DRAM as stored. The page only lays out the server's answer
 * (`GET /v1/vms/{id}/hypervisor-view`); a mode switch asks the same VM booted in another mode, to compare. An SEV-SNP
 * answer adds the hypervisor's refused write to the page (`hostWrite`).
 */
import { useEffect, useState } from "preact/hooks";
import { ModeBadge } from "../components/mode-badge.tsx";
import { ProblemBox } from "../components/problem.tsx";
import { asProblem } from "../lib/api.ts";
import { groupHex } from "../lib/format.ts";
import type { HypervisorViewAnswer, Problem, SecurityMode } from "../lib/types.ts";
import { useSession } from "../session.tsx";

export function HypervisorViewPage({ id }: { id: string }) {
  const { client } = useSession();
  const [mode, setMode] = useState<SecurityMode | "">("");
  const [view, setView] = useState<HypervisorViewAnswer | null>(null);
  const [problem, setProblem] = useState<Problem | null>(null);

  useEffect(() => {
    setView(null);
    setProblem(null);
    const q = mode ? `?mode=${mode}` : "";
    client
      .json<HypervisorViewAnswer>(`/v1/vms/${encodeURIComponent(id)}/hypervisor-view${q}`)
      .then(setView)
      .catch((e) => setProblem(asProblem(e)));
  }, [id, mode]);

  return (
    <main id="main" class="page">
      <h2>
        Hypervisor view{" "}
        {view ? (
          <>
            of {view.vm} <ModeBadge mode={view.mode} />
          </>
        ) : null}
      </h2>
      <label class="inline">
        Compare as
        <select value={mode} onChange={(e) => setMode(e.currentTarget.value as SecurityMode | "")}>
          <option value="">the VM's own mode</option>
          <option value="none">none</option>
          <option value="sev">SEV</option>
          <option value="sev-es">SEV-ES</option>
          <option value="sev-snp">SEV-SNP</option>
        </select>
      </label>
      <ProblemBox problem={problem} />
      {view ? (
        <>
          <p class="verdict" role="status">
            {view.verdict}
          </p>
          <p>
            <small>
              {view.lab}; guest OS {view.guestOs}. The hypervisor reads the {view.saveArea.label} at each
              exit.
            </small>
          </p>
          <div class="columns">
            <section class="column guest" aria-labelledby="col-guest">
              <h3 id="col-guest">What the guest holds</h3>
              <p>{view.columns.guest}</p>
            </section>
            <section class="column hypervisor" aria-labelledby="col-hv">
              <h3 id="col-hv">What the hypervisor reads</h3>
              <p>{view.columns.hypervisor}</p>
            </section>
          </div>
          {view.exits.map((ex) => (
            <div class="scroll" key={ex.vmexit}>
              <table class="regs">
                <caption>
                  Exit: {ex.kind} (#VMEXIT {ex.vmexit})
                </caption>
                <thead>
                  <tr>
                    <th scope="col">Register</th>
                    <th scope="col" class="guest">
                      Guest holds
                    </th>
                    <th scope="col" class="hypervisor">
                      Hypervisor reads ({view.saveArea.label})
                    </th>
                    <th scope="col">Found by the hypervisor</th>
                  </tr>
                </thead>
                <tbody>
                  {ex.registers.map((r) => (
                    <tr key={r.reg} class={r.foundAt ? "leak" : "hidden"}>
                      <th scope="row">{r.reg}</th>
                      <td class="guest">
                        <code data-guest-value={r.guest}>{r.guest}</code>
                      </td>
                      <td class="hypervisor">
                        <code data-hypervisor-value={r.hypervisor}>{r.hypervisor}</code>
                      </td>
                      <td>
                        {r.foundAt === null
                          ? "no"
                          : r.exposedByGuest
                            ? `${r.foundAt}: the guest put it there (GHCB valid bit set)`
                            : r.foundAt}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          ))}
          <section class="panel" aria-label="GHCB">
            <h3>GHCB: fields the guest marked valid</h3>
            {view.mode === "sev-es" || view.mode === "sev-snp" ? (
              view.ghcb.exposed.length ? (
                <p>
                  The guest copied {view.ghcb.exposed.length} register values into the shared GHCB with their
                  valid bits (what the exit needs, e.g. CPUID's sub-leaf, WRMSR's value):{" "}
                  {view.ghcb.exposed.slice(0, 8).map((v) => (
                    <code key={v} class="ghcb-value">
                      {v}{" "}
                    </code>
                  ))}
                </p>
              ) : (
                <p>The guest exposed no register in the GHCB.</p>
              )
            ) : (
              <p>No GHCB: without SEV-ES the hypervisor needs none — it reads the registers directly.</p>
            )}
          </section>
          <h3>A private memory page (guest-physical 0x{view.memory.gpa.toString(16)})</h3>
          <div class="columns">
            <section class="column guest" aria-label="Page as the guest holds it">
              <h4>Guest holds</h4>
              <pre class="hex">{groupHex(view.memory.guest).join("\n")}</pre>
            </section>
            <section class="column hypervisor" aria-label="Page as stored in DRAM">
              <h4>Hypervisor reads (DRAM frame 0x{view.memory.hpa.toString(16)})</h4>
              <pre class="hex">{groupHex(view.memory.hypervisor).join("\n")}</pre>
            </section>
          </div>
          <ul>
            {view.memory.canaries.map((c) => (
              <li key={c.value}>
                <code>{c.value}</code>:{" "}
                {c.visible ? "found in DRAM (plaintext)" : "not found in DRAM (ciphertext)"}
              </li>
            ))}
          </ul>
          {view.hostWrite ? (
            <section class="panel" aria-label="Host write">
              <h3>What SEV-SNP adds: the hypervisor writes the page</h3>
              <p>
                After #VMEXIT {view.hostWrite.vmexit} the hypervisor wrote this page back as it was launched
                (a replay, which SEV-ES lets through):{" "}
                {view.hostWrite.refused ? (
                  <>
                    refused by the Reverse Map Table — <code>{view.hostWrite.fault?.message}</code> (
                    {view.hostWrite.fault?.code}); the page is{" "}
                    {view.hostWrite.unchanged ? "unchanged" : "changed"}.
                  </>
                ) : (
                  "the write went through."
                )}
              </p>
            </section>
          ) : null}
          <p class="summary">
            Over all {view.summary.registersHeld} register values held at exits, the hypervisor could find{" "}
            {view.summary.registersVisible} ({view.summary.visibleNotExposed} that the guest had not exposed
            itself); of {view.summary.memoryCanaries} memory values, {view.summary.memoryCanariesVisible} are
            visible in DRAM.
          </p>
        </>
      ) : problem ? null : (
        <p aria-live="polite">Booting the VM's configuration on a lab host…</p>
      )}
    </main>
  );
}

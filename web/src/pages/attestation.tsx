/**
 * Attestation of a VM paused after LAUNCH_MEASURE: the measurement blob and the values a guest owner needs to
 * recompute it, with the `ciphervisor owner measure` line to copy. The owner verifies on their own machine with
 * their own keys; the dashboard holds none.
 */
import { useEffect, useState } from "preact/hooks";
import { ProblemBox } from "../components/problem.tsx";
import { asProblem } from "../lib/api.ts";
import { ownerMeasureLine } from "../lib/attestation.ts";
import { policyHex } from "../lib/format.ts";
import type { LaunchMeasurement, Problem } from "../lib/types.ts";
import { useSession } from "../session.tsx";

export function AttestationPage({ id }: { id: string }) {
  const { client } = useSession();
  const [m, setM] = useState<LaunchMeasurement | null>(null);
  const [problem, setProblem] = useState<Problem | null>(null);
  const [copied, setCopied] = useState(false);
  // The report names the VM by id; people know it by name.
  const [name, setName] = useState<string | null>(null);

  useEffect(() => {
    client
      .json<LaunchMeasurement>(`/v1/vms/${encodeURIComponent(id)}/launch-measurement`)
      .then(setM)
      .catch((e) => setProblem(asProblem(e)));
    client
      .json<{ name: string }>(`/v1/vms/${encodeURIComponent(id)}`)
      .then((vm) => setName(vm.name))
      .catch(() => setName(null));
  }, [id]);

  const line = m ? ownerMeasureLine(m) : "";
  return (
    <main id="main" class="page">
      <h2>Attestation {m ? `of ${name ?? m.vm}` : ""}</h2>
      <ProblemBox problem={problem} />
      {m ? (
        <>
          <dl class="facts">
            <dt>State</dt>
            <dd>{m.attestationState}</dd>
            <dt>Host</dt>
            <dd>{m.host}</dd>
            <dt>Measurement (MEASURE ‖ MNONCE, base64)</dt>
            <dd>
              <code class="wrap">{m.measurement}</code>
            </dd>
            <dt>Platform</dt>
            <dd>
              API {m.apiMajor}.{m.apiMinor}, build {m.build}
            </dd>
            <dt>Policy</dt>
            <dd>{policyHex(m.policy)}</dd>
            <dt>Mode, VMM, vCPUs</dt>
            <dd>
              {m.securityMode}, {m.vmmProfile}, {m.vcpus}
              {m.vcpuType ? ` (${m.vcpuType})` : ""}
            </dd>
            <dt>Firmware image (SHA-256)</dt>
            <dd>
              <code class="wrap">{m.images?.firmware?.sha256 ?? m.loaderSha256}</code>
            </dd>
            {(["kernel", "initrd", "cmdline"] as const).map((k) =>
              m.images?.[k] ? (
                <>
                  <dt>{k} (SHA-256)</dt>
                  <dd>
                    <code class="wrap">{m.images[k]?.sha256}</code>
                  </dd>
                </>
              ) : null,
            )}
          </dl>
          <label for="owner-line">
            Recompute it on the guest owner's machine (your own image files for the placeholders)
          </label>
          <div class="copy">
            <input id="owner-line" readOnly value={line} onFocus={(e) => e.currentTarget.select()} />
            <button
              type="button"
              class="secondary"
              onClick={() => navigator.clipboard?.writeText(line).then(() => setCopied(true))}
            >
              {copied ? "Copied" : "Copy"}
            </button>
          </div>
        </>
      ) : null}
    </main>
  );
}

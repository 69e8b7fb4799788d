/** Sign-in with an API token: checked with GET /v1/me, then kept in this tab's sessionStorage only. */
import { useState } from "preact/hooks";
import { ProblemBox } from "../components/problem.tsx";
import { apiClient, asProblem } from "../lib/api.ts";
import type { Me, Problem } from "../lib/types.ts";

export function SignIn({ onSignedIn }: { onSignedIn: (token: string, me: Me) => void }) {
  const [token, setToken] = useState("");
  const [problem, setProblem] = useState<Problem | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setProblem(null);
    try {
      const t = token.trim();
      const me = await apiClient(t).json<Me>("/v1/me");
      onSignedIn(t, me);
    } catch (err) {
      setProblem(asProblem(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <main id="main" class="signin">
      <h1>ciphervisor</h1>
      <p>Confidential VMs on AMD SEV and SEV-ES.</p>
      <form onSubmit={submit} aria-label="Sign in">
        <label for="token">API token</label>
        <input
          id="token"
          name="token"
          type="password"
          autocomplete="off"
          spellcheck={false}
          required
          value={token}
          onInput={(e) => setToken(e.currentTarget.value)}
          placeholder="cvt_…"
        />
        <small>
          Kept in this tab only (session storage) and sent as an Authorization header. `serve --demo` writes
          one per role under its data directory's demo-tokens/.
        </small>
        <button type="submit" class="primary" disabled={busy}>
          Sign in
        </button>
      </form>
      <ProblemBox problem={problem} />
    </main>
  );
}

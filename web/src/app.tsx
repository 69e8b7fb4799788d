/** The dashboard's shell: sign-in, the signed-in roles, navigation between pages by path. */
import { useEffect, useMemo, useState } from "preact/hooks";
import { apiClient } from "./lib/api.ts";
import { parseRoute, type Route, routePath } from "./lib/route.ts";
import { clearToken, loadToken, saveToken } from "./lib/session.ts";
import type { Me } from "./lib/types.ts";
import { AttestationPage } from "./pages/attestation.tsx";
import { AuditPage } from "./pages/audit.tsx";
import { HostsPage } from "./pages/hosts.tsx";
import { HypervisorViewPage } from "./pages/hypervisor-view.tsx";
import { OperationsPage } from "./pages/operations.tsx";
import { SignIn } from "./pages/sign-in.tsx";
import { VmsPage } from "./pages/vms.tsx";
import { type Session, SessionContext } from "./session.tsx";

const NAV: readonly { page: "vms" | "hosts" | "operations" | "audit"; label: string }[] = [
  { page: "vms", label: "VMs" },
  { page: "hosts", label: "Hosts" },
  { page: "operations", label: "Operations" },
  { page: "audit", label: "Audit" },
];

function Page({ route }: { route: Route }) {
  switch (route.page) {
    case "vms":
      return <VmsPage />;
    case "hosts":
      return <HostsPage />;
    case "operations":
      return <OperationsPage {...(route.id ? { id: route.id } : {})} />;
    case "audit":
      return <AuditPage />;
    case "hypervisor-view":
      return <HypervisorViewPage id={route.id} />;
    case "attestation":
      return <AttestationPage id={route.id} />;
  }
}

export function App() {
  const [token, setToken] = useState<string | null>(() => loadToken(sessionStorage));
  const [me, setMe] = useState<Me | null>(null);
  const [route, setRoute] = useState<Route>(() => parseRoute(location.pathname));

  const signOut = () => {
    clearToken(sessionStorage);
    setToken(null);
    setMe(null);
  };

  useEffect(() => {
    const onPop = () => setRoute(parseRoute(location.pathname));
    addEventListener("popstate", onPop);
    return () => removeEventListener("popstate", onPop);
  }, []);

  useEffect(() => {
    if (token && !me) apiClient(token, signOut).json<Me>("/v1/me").then(setMe).catch(signOut);
  }, [token]);

  const session = useMemo<Session | null>(
    () =>
      token && me
        ? {
            client: apiClient(token, signOut),
            me,
            navigate: (r) => {
              history.pushState(null, "", routePath(r));
              setRoute(r);
              scrollTo(0, 0);
            },
          }
        : null,
    [token, me],
  );

  if (!token) {
    return (
      <SignIn
        onSignedIn={(t, m) => {
          saveToken(sessionStorage, t);
          setToken(t);
          setMe(m);
        }}
      />
    );
  }
  if (!session) return <p aria-live="polite">Signing in…</p>;
  return (
    <SessionContext.Provider value={session}>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <span class="brand">ciphervisor</span>
        <nav aria-label="Pages">
          {NAV.map((n) => (
            <a
              key={n.page}
              href={routePath({ page: n.page })}
              aria-current={route.page === n.page ? "page" : undefined}
              onClick={(e) => {
                e.preventDefault();
                session.navigate({ page: n.page });
              }}
            >
              {n.label}
            </a>
          ))}
        </nav>
        <span class="who" data-roles={session.me.roles.join(",")}>
          {session.me.name} — roles: {session.me.roles.join(", ")}
        </span>
        <button type="button" class="secondary" onClick={signOut}>
          Sign out
        </button>
      </header>
      <Page route={route} />
    </SessionContext.Provider>
  );
}

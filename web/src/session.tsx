/** The signed-in session every page reads: the API client (with the token inside), who is signed in, navigation. */
import { createContext } from "preact";
import { useContext } from "preact/hooks";
import type { ApiClient } from "./lib/api.ts";
import type { Route } from "./lib/route.ts";
import type { Me } from "./lib/types.ts";

export interface Session {
  readonly client: ApiClient;
  readonly me: Me;
  navigate(route: Route): void;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error("useSession outside a signed-in session");
  return s;
}

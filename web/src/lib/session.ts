/**
 * Where the signed-in token lives: sessionStorage of this tab only — gone when the tab closes, never in a URL, a
 * cookie or localStorage, so it is not sent anywhere but in the Authorization header the dashboard adds.
 */
const KEY = "ciphervisor.token";

/** The storage the token is kept in (sessionStorage in the browser; a stand-in in tests). */
export type TokenStore = Pick<Storage, "getItem" | "setItem" | "removeItem">;

export function loadToken(store: TokenStore): string | null {
  const t = store.getItem(KEY);
  return t === null || t.trim() === "" ? null : t;
}

export function saveToken(store: TokenStore, token: string): void {
  store.setItem(KEY, token.trim());
}

export function clearToken(store: TokenStore): void {
  store.removeItem(KEY);
}

/**
 * Serialized list pages, kept while the store has not changed. A dashboard polling the first page, a script paging
 * the fleet, sixteen clients asking for the same view: between two writes the answer is the same bytes, and
 * re-reading and re-serializing 1,000 rows costs milliseconds each time (docs/performance.md). Every entry carries
 * the store's change token (`Inventory.changeToken`) read before its query; any change empties the cache, so a hit
 * is always what a fresh query would answer.
 *
 * Bounded by entries and bytes (oldest first out). Keys are query strings, never tokens or principals: a page is
 * the same for every reader allowed to list (the permission check runs before the cache is consulted).
 */
import { createHash, randomBytes } from "node:crypto";

export interface CachedPage {
  readonly body: string;
  /** A strong validator: this process, this store version, this query. */
  readonly etag: string;
}

export interface PageCacheLimits {
  readonly maxEntries: number;
  readonly maxBytes: number;
}

export const DEFAULT_PAGE_CACHE: PageCacheLimits = { maxEntries: 256, maxBytes: 64 * 1024 * 1024 };

export class PageCache {
  readonly #limits: PageCacheLimits;
  /** Distinguishes this process's ETags from a previous run's, whose change counters started from the same values. */
  readonly #boot = randomBytes(6).toString("hex");
  #token: string | undefined;
  #pages = new Map<string, CachedPage>();
  #bytes = 0;

  constructor(limits: PageCacheLimits = DEFAULT_PAGE_CACHE) {
    this.#limits = limits;
  }

  /** The page cached for `key` under the store version `token`; a new token drops every older page. */
  get(token: string | undefined, key: string): CachedPage | undefined {
    if (token === undefined) return undefined;
    if (token !== this.#token) this.#reset(token);
    return this.#pages.get(key);
  }

  /** Keeps `body` for `key`, computed after reading `token`. Returns its ETag (also when it is not kept). */
  set(token: string | undefined, key: string, body: string): CachedPage {
    const page = { body, etag: this.#etag(token, key) };
    if (token === undefined || body.length > this.#limits.maxBytes) return page;
    if (token !== this.#token) this.#reset(token);
    this.#drop(key);
    this.#pages.set(key, page);
    this.#bytes += body.length;
    for (const [k] of this.#pages) {
      if (this.#pages.size <= this.#limits.maxEntries && this.#bytes <= this.#limits.maxBytes) break;
      this.#drop(k);
    }
    return page;
  }

  get size(): number {
    return this.#pages.size;
  }

  #etag(token: string | undefined, key: string): string {
    const k = createHash("sha256").update(key).digest("base64url").slice(0, 16);
    return `"${this.#boot}-${token ?? randomBytes(6).toString("hex")}-${k}"`;
  }

  #drop(key: string): void {
    const old = this.#pages.get(key);
    if (!old) return;
    this.#pages.delete(key);
    this.#bytes -= old.body.length;
  }

  #reset(token: string): void {
    this.#token = token;
    this.#pages = new Map();
    this.#bytes = 0;
  }
}

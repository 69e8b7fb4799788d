/**
 * What a PostgreSQL suite does when the test server (`PG_URL`: CIPHERVISOR_TEST_PG, or the database
 * `scripts/ci-postgres.sh` creates) cannot be reached: say so loudly, and fail under CI=true (a missing component is
 * never a green run there).
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import type pg from "pg";

/** A PostgreSQL URL fit for a log line: the password masked. */
export function shownPgUrl(url: string): string {
  return url.replace(/\/\/([^:/@]+):[^@]*@/, "//$1:***@");
}

/** undefined when `admin` answers, else why not. */
export async function unreachableReason(admin: pg.Pool): Promise<string | undefined> {
  try {
    await admin.query("select 1");
    return undefined;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

/**
 * Registers what a PostgreSQL suite runs instead when the server is unreachable: under CI=true one failing test;
 * elsewhere a skipped one, after a `!!!` message on stderr naming the suite and how to start a server.
 */
export function postgresUnreachable(suite: string, url: string, reason: string): void {
  const message =
    `!!! PostgreSQL at ${shownPgUrl(url)} is unreachable (${reason}).\n` +
    `!!! The ${suite} did NOT run. Start a server with scripts/ci-postgres.sh (as root)\n` +
    "!!! or point CIPHERVISOR_TEST_PG at one.";
  console.error(message);
  if (process.env.CI === "true") {
    it("PostgreSQL is reachable (required under CI=true)", () => {
      assert.fail(message);
    });
  } else {
    it.skip(`${suite} (server unreachable: ${reason})`);
  }
}

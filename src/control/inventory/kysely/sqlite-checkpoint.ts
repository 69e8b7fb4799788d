/**
 * WAL checkpoints off the write path. SQLite's default runs a checkpoint inside the COMMIT that takes the WAL past
 * 1,000 pages: that commit copies the pages back into the database file and syncs it (the only sync
 * `synchronous=NORMAL` does in WAL mode), so a bulk operation writing a few thousand pages per batch paid a
 * checkpoint every batch or two — about 70 ms of a 10,000-VM SEV-ES change on this project's test machine
 * (docs/performance.md, "Bulk SEV-ES over 10,000 VMs from the CLI").
 *
 * Instead the server's connection checkpoints when it has been idle for `idleMs` after a write (PASSIVE: it never
 * waits for a reader and never blocks another writer), and SQLite's own automatic checkpoint stays on as a bound at
 * `backstopPages` for a writer that is never idle. A checkpoint then copies each page once however many batches
 * rewrote it. The cost: commits since the last checkpoint are synced a little later, which under
 * `synchronous=NORMAL` only matters on power loss (docs/threat-model.md §7); a process crash loses nothing.
 */
import type Database from "better-sqlite3";

/** How long the connection must go without a write before it checkpoints. */
export const CHECKPOINT_IDLE_MS = 200;
/** SQLite's automatic checkpoint, kept as a bound on the WAL: 16,384 pages (64 MiB at 4 KiB pages). */
export const CHECKPOINT_BACKSTOP_PAGES = 16_384;

export class IdleCheckpointer {
  readonly #db: Database.Database;
  readonly #idleMs: number;
  #timer: NodeJS.Timeout | undefined;
  #armed = false;
  #stopped = false;

  constructor(db: Database.Database, options: { idleMs?: number; backstopPages?: number } = {}) {
    this.#db = db;
    this.#idleMs = options.idleMs ?? CHECKPOINT_IDLE_MS;
    db.pragma(`wal_autocheckpoint = ${options.backstopPages ?? CHECKPOINT_BACKSTOP_PAGES}`);
  }

  /** A write was committed: checkpoint once the connection has been idle for a while. */
  wrote(): void {
    if (this.#stopped) return;
    this.#armed = true;
    if (this.#timer) {
      // Re-arms the one timer (also after it fired): cheaper than a new timer per commit.
      this.#timer.refresh();
      return;
    }
    this.#timer = setTimeout(() => this.#idle(), this.#idleMs);
    // Waiting to checkpoint never keeps the process alive; closing the database checkpoints anyway.
    this.#timer.unref();
  }

  #idle(): void {
    if (!this.#armed || !this.#db.open) return;
    // A transaction still open (a long read) puts the checkpoint off to the next idle moment after its writes.
    if (this.#db.inTransaction) {
      this.#timer?.refresh();
      return;
    }
    this.#armed = false;
    try {
      this.#db.pragma("wal_checkpoint(PASSIVE)");
    } catch {
      // A checkpoint another process is running, or a database closing: the next write arms another one, and
      // SQLite's automatic checkpoint still bounds the WAL.
    }
  }

  /** Stops the timer (the database is being closed; SQLite checkpoints on the last close). */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }
}

/**
 * Files the CLI writes that a user must be able to trust: token secrets, the guest owner's transport keys, launch
 * secrets. Each is opened with its final mode from the start (never created 0644 and narrowed later), never
 * through a symlink (O_NOFOLLOW: a planted link cannot redirect a key elsewhere), and never over an existing file
 * unless `--force` says so. Commands that write several files check every target before writing the first, so a
 * refusal leaves nothing half-written.
 */
import { closeSync, constants, fchmodSync, lstatSync, openSync, unlinkSync, writeFileSync } from "node:fs";
import { CiphervisorError } from "../errors.ts";

export interface OutputFileOptions {
  /** Permissions of a created file, and of an overwritten one (e.g. 0o600 for a key). */
  readonly mode: number;
  /** Replace an existing regular file (never a symlink or a folder). */
  readonly force?: boolean;
  /** The flag that named the file, for messages (e.g. `--out`). */
  readonly flag: string;
  /** Said after the reason when the file cannot be opened (e.g. "no token was created"). */
  readonly consequence?: string;
}

function why(code: string | undefined, force: boolean): string {
  switch (code) {
    case "EEXIST":
      return force ? "it exists and is not a regular file" : "the file exists (give --force to replace it)";
    case "ELOOP":
      return "it is a symlink (a key or secret is never written through one)";
    case "ENOENT":
      return "its folder does not exist";
    case "EACCES":
    case "EPERM":
      return "permission denied";
    case "EISDIR":
      return "it is a folder";
    default:
      return code ?? "cannot create it";
  }
}

function refused(
  path: string,
  o: OutputFileOptions,
  code: string | undefined,
  cause?: unknown,
): CiphervisorError {
  const tail = o.consequence === undefined ? "" : `; ${o.consequence}`;
  return new CiphervisorError("IO", `${o.flag} ${path}: ${why(code, o.force === true)}${tail}`, {
    ...(cause === undefined ? {} : { cause }),
  });
}

/**
 * Throws the error `openOutputFile` would, without creating anything: for checking every target of a command first.
 */
export function checkOutputFile(path: string, o: OutputFileOptions): void {
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
    throw refused(path, o, (e as NodeJS.ErrnoException).code, e);
  }
  if (st.isSymbolicLink()) throw refused(path, o, "ELOOP");
  if (st.isDirectory()) throw refused(path, o, "EISDIR");
  if (!o.force || !st.isFile()) throw refused(path, o, "EEXIST");
}

/** Opens `path` for writing as described above; returns the file descriptor. */
export function openOutputFile(path: string, o: OutputFileOptions): number {
  checkOutputFile(path, o);
  const flags =
    constants.O_WRONLY |
    constants.O_CREAT |
    (o.force ? constants.O_TRUNC : constants.O_EXCL) |
    (constants.O_NOFOLLOW ?? 0);
  let fd: number;
  try {
    fd = openSync(path, flags, o.mode);
  } catch (e) {
    throw refused(path, o, (e as NodeJS.ErrnoException).code, e);
  }
  // An overwritten file keeps its old mode unless told: a key must not stay world-readable.
  fchmodSync(fd, o.mode);
  return fd;
}

/** Removes a file `openOutputFile` created, leaving nothing half-written. */
export function discardOutputFile(fd: number, path: string): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
  try {
    unlinkSync(path);
  } catch {
    // gone already
  }
}

/** Writes `data` to `path` as `openOutputFile` opens it. */
export function writeOutputFile(path: string, data: Uint8Array | string, o: OutputFileOptions): void {
  const fd = openOutputFile(path, o);
  try {
    writeFileSync(fd, data);
    closeSync(fd);
  } catch (e) {
    discardOutputFile(fd, path);
    throw new CiphervisorError("IO", `cannot write ${path}: ${(e as Error).message}`, { cause: e });
  }
}

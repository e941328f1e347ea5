// The lock file beside an embedded database directory. PGlite is a single-process database: a
// second process (or a second open in this one) writing the same directory would silently lose
// data, so the lock turns that into a clear `unavailable` error.
import { closeSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { ApiKeyError } from "../lib/errors";

/**
 * A takeover lock is held for a few system calls; one older than this was left by a process that
 * died holding it. The same age marks a lock file that never got its pid written.
 */
const TAKEOVER_STALE_MS = 5_000;
/** How long to keep trying while other processes are busy taking over the same stale lock. */
const LOCK_TIMEOUT_MS = 30_000;

/** Directories this process holds or is locking: a lock naming our own pid is stale unless listed here. */
const held = new Set<string>();

type LockState =
  | { kind: "absent" }
  | { kind: "held"; pid: number }
  /** Left by a process that no longer runs: `content` is what was read, to be replaced only if unchanged. */
  | { kind: "stale"; content: string }
  /** Just created, its pid not written yet. */
  | { kind: "pending" };

/**
 * Locks `directory` through `<directory>.lock`, which holds the owner's pid (mode 0600), and
 * returns the function that releases it. A lock left by a process that no longer runs (a crash)
 * is taken over; several processes that find the same stale lock at once take turns through a
 * short-lived `<directory>.lock.takeover`, so that exactly one of them replaces it.
 */
export async function lockDirectory(directory: string): Promise<() => void> {
  const lockFile = `${directory}.lock`;
  if (held.has(directory)) {
    throw new ApiKeyError(
      "unavailable",
      `The embedded database in ${directory} is already open in this process (pid ${process.pid}). ` +
        "Close the other service first, or share one service.",
    );
  }
  held.add(directory);
  try {
    await acquire(directory, lockFile);
  } catch (error) {
    held.delete(directory);
    if (error instanceof ApiKeyError) throw error;
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new ApiKeyError("unavailable", `Cannot lock the embedded database in ${directory} (${reason} on ${lockFile}).`, { cause: error });
  }
  return () => {
    held.delete(directory);
    if (readContent(lockFile) === String(process.pid)) rmSync(lockFile, { force: true });
  };
}

async function acquire(directory: string, lockFile: string): Promise<void> {
  mkdirSync(path.dirname(lockFile), { recursive: true });
  const deadline = Date.now() + LOCK_TIMEOUT_MS;
  for (;;) {
    if (createExclusive(lockFile)) return;
    const state = readLock(lockFile);
    if (state.kind === "held") {
      throw new ApiKeyError(
        "unavailable",
        `The embedded database in ${directory} is open in another process (pid ${state.pid}). Stop that process first, ` +
          `or use PostgreSQL (DATABASE_URL) to share keys between processes; if no such process uses it, delete ${lockFile}.`,
      );
    }
    if (state.kind === "stale" && takeOver(lockFile, state.content)) return;
    if (Date.now() > deadline) {
      throw new ApiKeyError("unavailable", `Could not lock the embedded database in ${directory}: ${lockFile} kept changing for ${LOCK_TIMEOUT_MS / 1000} s.`);
    }
    // Someone else is creating or replacing the lock: look again when they are done.
    if (state.kind !== "absent") await sleep(5 + Math.random() * 10);
  }
}

/** Creates `file` holding our pid, only if it does not exist (O_EXCL); false when it does. */
function createExclusive(file: string): boolean {
  let fd: number;
  try {
    fd = openSync(file, "wx", 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw error;
  }
  try {
    writeSync(fd, String(process.pid));
  } finally {
    closeSync(fd);
  }
  return true;
}

/** A file's content, or undefined when it does not exist. */
function readContent(file: string): string | undefined {
  try {
    return readFileSync(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

function ageMs(file: string): number {
  try {
    return Date.now() - statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * A pid file's owner still runs. Our own pid counts only where this process holds the lock (the
 * caller checks `held`): otherwise it was left by an earlier process that had the same pid, as
 * happens when a container restarts.
 */
function ownerRuns(pid: number): boolean {
  return pid !== process.pid && isRunning(pid);
}

function readLock(lockFile: string): LockState {
  const content = readContent(lockFile);
  if (content === undefined) return { kind: "absent" };
  const pid = /^\d+$/.test(content) ? Number(content) : 0;
  if (pid > 0) return ownerRuns(pid) ? { kind: "held", pid } : { kind: "stale", content };
  return ageMs(lockFile) > TAKEOVER_STALE_MS ? { kind: "stale", content } : { kind: "pending" };
}

/**
 * Replaces a stale lock, if this process is the one to do it. Removing a stale lock and creating
 * a new one is not enough: two processes that both read the same stale lock could each remove
 * it, and the later removal would delete the other's fresh lock. So the replacement happens only
 * under the takeover lock (created with O_EXCL), after checking that the lock still holds what
 * was found stale, and by an atomic rename, so that there is never an instant without a lock.
 * False means "look again": someone else holds the takeover lock, or the lock changed.
 */
function takeOver(lockFile: string, staleContent: string): boolean {
  const takeoverFile = `${lockFile}.takeover`;
  if (!createExclusive(takeoverFile)) {
    breakIfStale(takeoverFile);
    return false;
  }
  try {
    if (readContent(lockFile) !== staleContent) return false;
    const replacement = `${lockFile}.${process.pid}`;
    rmSync(replacement, { force: true });
    if (!createExclusive(replacement)) return false;
    renameSync(replacement, lockFile);
    return true;
  } finally {
    rmSync(takeoverFile, { force: true });
  }
}

/**
 * Removes a takeover lock left by a process that died holding it. Held for a few system calls, it
 * is stale when its owner is gone, or in any case after TAKEOVER_STALE_MS. (Two processes that
 * break the same stale takeover lock at once could still both go on; that needs a process to die
 * inside those few calls first.)
 */
function breakIfStale(takeoverFile: string): void {
  const content = readContent(takeoverFile);
  if (content === undefined) return;
  const pid = /^\d+$/.test(content) ? Number(content) : 0;
  const ownerGone = pid > 0 && !ownerRuns(pid);
  if (ownerGone || ageMs(takeoverFile) > TAKEOVER_STALE_MS) rmSync(takeoverFile, { force: true });
}

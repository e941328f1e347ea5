// Whether a PostgreSQL streaming replica has applied every change a read must see, told apart
// by WAL positions (LSNs). After every change this instance makes or hears of, and after every
// resync of the invalidation channel, the primary's position is read: the mark. A read may go
// to the replica only once the replica has been seen, before that read, to have replayed up to
// the mark; replay only moves forward, so the read then sees everything up to the mark.
//
// Why a lagging replica can never undo a revocation, however far behind it is: a change is
// announced after it commits, so a mark read after hearing of it lies past its commit, and the
// replica shows the change before it may serve any read again. A change not heard of yet
// committed either before the mark was read (the mark covers it) or after it, while the channel
// was listening (a lookup trusts only a mark read while listening, and every drop of the
// channel is a resync that discards the mark), and then it will be heard. A new instance has no
// mark until it reads one, so its first reads go to the primary, as do all reads while a mark is
// being read again. A lookup's mark is also never older than MAX_MARK_AGE_MS, which bounds what
// a change that is never heard (a deaf, half-open connection) can cost.
import { performance } from "node:perf_hooks";
import type { Knex } from "knex";
import type { Logger } from "../lib/logger";
import type { ReplicaReadKind } from "../lib/replica-reads";
import type { InvalidationListener } from "./cache/invalidation-channel";

/** The oldest mark a lookup is judged by; a newer one is read once it is half as old. */
const MAX_MARK_AGE_MS = 1_000;
/** While the replica is behind the mark, how often it may be asked how far it has got. */
const RECHECK_MS = 50;

/** WAL page headers: the short one on every page, the long one on the first page of a segment. */
const PAGE_HEADER = 24n;
const SEGMENT_HEADER = 40n;

/** A WAL position as PostgreSQL writes it (`16/B374D848`), as a number. */
export function parseLsn(text: string): bigint {
  const match = /^([0-9A-F]{1,8})\/([0-9A-F]{1,8})$/i.exec(text);
  if (!match) throw new Error(`express-api-keys: not a WAL position: ${text}`);
  return (BigInt(`0x${match[1]!}`) << 32n) + BigInt(`0x${match[2]!}`);
}

/**
 * The end of the last WAL record before the insert position `insert`. When the last record
 * filled its page, the insert position stands past the next page's header, where replay never
 * reports: it stops at the page's start. Judged by that, an idle replica that has replayed
 * everything would never be seen to have caught up.
 */
export function lastRecordEnd(insert: bigint, pageSize: bigint, segmentSize: bigint): bigint {
  if (insert % segmentSize === SEGMENT_HEADER) return insert - SEGMENT_HEADER;
  if (insert % pageSize === PAGE_HEADER) return insert - PAGE_HEADER;
  return insert;
}

interface Mark {
  /** The primary's WAL insert position. */
  position: bigint;
  /** The count of changes heard of when it was read: a later change makes it stale. */
  generation: number;
  readAt: number;
  /** Read while every change from then on would be heard: only such a mark may decide a lookup. */
  whileListening: boolean;
}

type LsnRows = { rows: { lsn: string | null }[] };
type InsertRows = { rows: { lsn: string; page: number; segment: string }[] };

/**
 * The insert position rather than the write or flush position: with asynchronous commit, a
 * commit may have returned (and been announced) before its record was written out, but never
 * before it was inserted.
 */
const INSERT_POSITION = `select pg_current_wal_insert_lsn()::text as lsn, current_setting('wal_block_size')::int as page,
  pg_size_bytes(current_setting('wal_segment_size'))::text as segment`;

export class ReplicaFreshness implements InvalidationListener {
  readonly #primary: Knex;
  readonly #replica: Knex;
  readonly #listening: () => boolean;
  readonly #logger: Logger;
  #generation = 0;
  #mark: Mark | undefined;
  #marking = false;
  /** The furthest position the replica has been seen to have replayed. */
  #replayed = -1n;
  #asking: Promise<bigint> | undefined;
  #askedAt = -Infinity;
  #warnedNotReplica = false;

  /** `listening`: whether the invalidation channel hears every change now (see KeyCache.listening). */
  constructor(primary: Knex, replica: Knex, listening: () => boolean, logger: Logger) {
    this.#primary = primary;
    this.#replica = replica;
    this.#listening = listening;
    this.#logger = logger;
  }

  invalidated(): void {
    this.#generation++;
    this.#remark();
  }

  resync(): void {
    this.#generation++;
    this.#remark();
  }

  /**
   * Whether the replica has every change a `kind` read must see. Answers false at once, with no
   * query, when it cannot tell yet; asks the replica (a promise, which rejects when the replica
   * fails) only when the mark is known and the replica was last seen behind it.
   */
  caughtUp(kind: ReplicaReadKind): boolean | Promise<boolean> {
    const listening = this.#listening();
    if (kind === "lookup" && !listening) return false;
    const mark = this.#mark;
    const age = mark ? performance.now() - mark.readAt : Infinity;
    const usable = mark !== undefined && mark.generation === this.#generation && (kind === "list" || (mark.whileListening && age <= MAX_MARK_AGE_MS));
    if (!usable || (kind === "lookup" && age > MAX_MARK_AGE_MS / 2) || (listening && !mark.whileListening)) this.#remark();
    if (!usable) return false;
    if (this.#replayed >= mark.position) return true;
    return this.#replayedNow().then((replayed) => replayed >= mark.position);
  }

  /** Reads the primary's position again, once at a time; a change heard meanwhile asks for another read. */
  #remark(): void {
    if (this.#marking) return;
    this.#marking = true;
    const generation = this.#generation;
    const whileListening = this.#listening();
    const readAt = performance.now();
    void this.#primary
      .raw<InsertRows>(INSERT_POSITION)
      .then(({ rows: [row] }) => {
        const position = lastRecordEnd(parseLsn(row!.lsn), BigInt(row!.page), BigInt(row!.segment));
        this.#mark = { position, generation, readAt, whileListening };
      })
      // The primary is down: there is no new mark, so reads go to the primary, which answers for itself.
      .catch(() => undefined)
      .finally(() => {
        this.#marking = false;
        if (this.#generation !== generation) this.#remark();
      });
  }

  /** How far the replica has replayed, asked at most once per RECHECK_MS and shared by concurrent reads. */
  #replayedNow(): Promise<bigint> {
    if (this.#asking) return this.#asking;
    if (performance.now() - this.#askedAt < RECHECK_MS) return Promise.resolve(this.#replayed);
    this.#askedAt = performance.now();
    this.#asking = this.#replica
      .raw<LsnRows>("select pg_last_wal_replay_lsn()::text as lsn")
      .then(({ rows }) => {
        const lsn = rows[0]?.lsn ?? null;
        if (lsn === null) this.#notAReplica();
        else {
          const position = parseLsn(lsn);
          if (position > this.#replayed) this.#replayed = position;
        }
        return this.#replayed;
      })
      .finally(() => {
        this.#asking = undefined;
      });
    return this.#asking;
  }

  /** A server that replays no WAL (a primary, a logical subscriber) can never be shown to have caught up. */
  #notAReplica(): void {
    if (this.#warnedNotReplica) return;
    this.#warnedNotReplica = true;
    this.#logger.warn(
      "express-api-keys: `readDatabase` is not a PostgreSQL streaming replica (pg_last_wal_replay_lsn() is null); every read goes to `database`",
    );
  }
}

// Verification analytics: every verification counted per key, per hour and per code, in memory,
// and written in batches as last_used_at is: an upsert that adds, so that the counts of every
// instance sum exactly, and never a write on the request path. Tokens that name no key (unknown,
// malformed, forged, of the other type) are counted under `key_id: null`, so that a flood shows.
import { ApiKeyError } from "./errors";
import { asInstant, isPlainObject } from "./filters";
import { FlushTimer } from "./flush-timer";
import type { Logger } from "./logger";
import { VERIFY_CODES, type VerifyCode, type VerifyResult } from "./types";

export const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
/** Rows written per statement. */
const BATCH = 1000;
/** (hour, key) pairs kept while the database is unreachable; past this the oldest hour is dropped. */
const MAX_PENDING = 100_000;
/** How far back `getUsage` looks when it is given no `from`. */
const DEFAULT_RANGE_MS = 30 * DAY_MS;

const CODE_INDEX = Object.fromEntries(VERIFY_CODES.map((code, i) => [code, i])) as Record<VerifyCode, number>;

/** Verifications of one key (null: of no key) with one code in the hour starting at `hour`. */
export interface UsageCount {
  key_id: string | null;
  hour: Date;
  code: VerifyCode;
  count: number;
}

/** Which counts a store reads: hours starting in [from, to], of one key, of one owner's keys, or of all (null included). */
export interface UsageQuery {
  key_id?: string;
  owner_id?: string;
  from: Date;
  to: Date;
}

export type UsageGranularity = "hour" | "day";

/** One bucket of `getUsage`: its start as an ISO string and the count of every code. */
export type UsageRow = { key_id: string | null; time: string } & Record<VerifyCode, number>;

/** What `getUsage` takes. */
export interface UsageFilters {
  key_id?: string;
  owner_id?: string;
  from?: Date | string;
  to?: Date | string;
  granularity?: UsageGranularity;
}

/** What the recorder needs from a store. */
export interface UsageSink {
  recordUsage(counts: UsageCount[]): Promise<void>;
  deleteUsageBefore(hour: Date): Promise<void>;
}

export interface UsageRecorderOptions {
  intervalMs: number;
  /** How long counts are kept; older hours are deleted in the background, at most once an hour. */
  retentionMs: number;
  now: () => Date;
  logger: Logger;
}

export class UsageRecorder {
  /** Hour number (epoch ms / HOUR_MS) -> key id ("" for none) -> counts by code index. */
  readonly #pending = new Map<number, Map<string, number[]>>();
  #pairs = 0;
  readonly #sink: UsageSink;
  readonly #options: UsageRecorderOptions;
  readonly #timer: FlushTimer;
  #flushing: Promise<void> = Promise.resolve();
  #prunedAt = -Infinity;
  #closed = false;

  constructor(sink: UsageSink, options: UsageRecorderOptions) {
    this.#sink = sink;
    this.#options = options;
    this.#timer = new FlushTimer(options.intervalMs, () => this.flush());
  }

  /** (hour, key) pairs whose counts wait for the next flush. */
  get pending(): number {
    return this.#pairs;
  }

  /** Counts one verification's answer, given at `at`; the write happens at the next flush. */
  count(result: VerifyResult, at: Date): void {
    if (this.#closed) return;
    this.#add(Math.floor(at.getTime() / HOUR_MS), result.api_key?.id ?? "", CODE_INDEX[result.code], 1);
    this.#timer.schedule();
  }

  #add(hour: number, key: string, code: number, count: number): void {
    let keys = this.#pending.get(hour);
    if (!keys) this.#pending.set(hour, (keys = new Map<string, number[]>()));
    let counts = keys.get(key);
    if (!counts) {
      keys.set(key, (counts = new Array<number>(VERIFY_CODES.length).fill(0)));
      if (++this.#pairs > MAX_PENDING) this.#dropOldestHour();
    }
    counts[code]! += count;
  }

  #dropOldestHour(): void {
    const oldest = Math.min(...this.#pending.keys());
    this.#pairs -= this.#pending.get(oldest)!.size;
    this.#pending.delete(oldest);
    this.#options.logger.warn("express-api-keys: too many verification counts waiting to be written; the oldest hour was dropped");
  }

  /** Writes every pending count now. A failed batch is kept (added back) for the next flush. */
  flush(): Promise<void> {
    this.#flushing = this.#flushing.then(() => this.#write()).then(() => this.#prune());
    return this.#flushing;
  }

  async #write(): Promise<void> {
    const counts: UsageCount[] = [];
    for (const [hour, keys] of this.#pending) {
      for (const [key, byCode] of keys) {
        byCode.forEach((count, code) => {
          if (count > 0) counts.push({ key_id: key === "" ? null : key, hour: new Date(hour * HOUR_MS), code: VERIFY_CODES[code]!, count });
        });
      }
    }
    this.#pending.clear();
    this.#pairs = 0;
    for (let i = 0; i < counts.length; i += BATCH) {
      const batch = counts.slice(i, i + BATCH);
      try {
        await this.#sink.recordUsage(batch);
      } catch (error) {
        for (const count of batch) this.#add(count.hour.getTime() / HOUR_MS, count.key_id ?? "", CODE_INDEX[count.code], count.count);
        this.#options.logger.warn(`express-api-keys: could not write ${batch.length} verification counts; will retry`, error);
        this.#timer.schedule();
      }
    }
  }

  async #prune(): Promise<void> {
    const now = this.#options.now().getTime();
    if (now - this.#prunedAt < HOUR_MS) return;
    this.#prunedAt = now;
    try {
      await this.#sink.deleteUsageBefore(new Date(Math.floor((now - this.#options.retentionMs) / HOUR_MS) * HOUR_MS));
    } catch (error) {
      this.#options.logger.warn("express-api-keys: could not delete verification counts past their retention; will retry", error);
      this.#prunedAt = -Infinity;
    }
  }

  /** Stops the timer and writes what is pending. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#timer.stop();
    await this.flush();
  }
}

function invalid(message: string): never {
  throw new ApiKeyError("invalid_data", `Invalid usage query: ${message}`);
}

function instant(name: string, raw: unknown): Date | undefined {
  if (raw === undefined) return undefined;
  const date = asInstant(raw);
  if (!date) invalid(`'${name}' must be a Date or an ISO 8601 date string`);
  return date;
}

function id(name: string, raw: unknown): string | undefined {
  if (raw === undefined) return undefined;
  if (typeof raw !== "string" || raw.length === 0 || raw.length > 255) invalid(`'${name}' must be a non-empty string`);
  return raw;
}

/** Checks what `getUsage` was given; without `to`, up to now, and without `from`, the 30 days before `to`. */
export function normalizeUsageQuery(filters: unknown, now: Date): { query: UsageQuery; granularity: UsageGranularity } {
  if (filters !== undefined && !isPlainObject(filters)) invalid("expected an object");
  const { key_id, owner_id, from, to, granularity, ...rest } = filters ?? {};
  const unknown = Object.keys(rest).find((name) => rest[name] !== undefined);
  if (unknown) invalid(`unknown filter '${unknown}' (use key_id, owner_id, from, to, granularity)`);
  if (granularity !== undefined && granularity !== "hour" && granularity !== "day") invalid("'granularity' must be 'hour' or 'day'");
  const end = instant("to", to) ?? now;
  const start = instant("from", from) ?? new Date(end.getTime() - DEFAULT_RANGE_MS);
  if (start > end) invalid("'from' must not be after 'to'");
  const query: UsageQuery = { from: new Date(Math.floor(start.getTime() / HOUR_MS) * HOUR_MS), to: end };
  const keyId = id("key_id", key_id);
  const ownerId = id("owner_id", owner_id);
  if (keyId !== undefined) query.key_id = keyId;
  if (ownerId !== undefined) query.owner_id = ownerId;
  return { query, granularity: granularity ?? "hour" };
}

/** Counts gathered into one row per bucket (hour, or UTC day) and key, every code present, oldest first. */
export function usageRows(counts: readonly UsageCount[], granularity: UsageGranularity): UsageRow[] {
  const size = granularity === "day" ? DAY_MS : HOUR_MS;
  const rows = new Map<string, UsageRow>();
  for (const count of counts) {
    const time = new Date(Math.floor(count.hour.getTime() / size) * size).toISOString();
    const name = `${time} ${count.key_id ?? ""}`;
    let row = rows.get(name);
    if (!row) {
      row = { key_id: count.key_id, time, ...(Object.fromEntries(VERIFY_CODES.map((code) => [code, 0])) as Record<VerifyCode, number>) };
      rows.set(name, row);
    }
    row[count.code] += count.count;
  }
  return [...rows.values()].sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : (a.key_id ?? "") < (b.key_id ?? "") ? -1 : 1));
}

// Rate limit windows. With Redis, every instance counts in the same Redis keys through
// rate-limiter-flexible (RateLimiterRedis, one Lua script per use); without it, each instance
// counts in its own memory (memory-windows.ts). The algorithm is a fixed window per key and
// window: it starts at the key's first use and lasts `duration` seconds, so up to twice `limit`
// uses can fall within `duration` seconds across a window boundary.
//
// While Redis is unreachable (or slower than `timeout`), each instance counts in its memory,
// and admits at most its fair share of each limit: the limit divided by the instances it last
// saw in Redis (each instance says it is alive there every 10 seconds), rounded up. So within
// a window that an outage covers, the instances together admit at most limit + instances - 1;
// a window that spans the outage's start or end may also count, in Redis, up to `limit` uses
// made while Redis was up: at most 2 x limit + instances - 1 in all (it was (instances + 1) x
// limit, each instance starting its own count at 0). The switch and the way back are logged once.
import { randomUUID } from "node:crypto";
import type { Cluster, Redis } from "ioredis";
import { LRUCache } from "lru-cache";
import { RateLimiterRedis, RateLimiterRes } from "rate-limiter-flexible";
import { ApiKeyError } from "../lib/errors";
import type { Logger } from "../lib/logger";
import type { RateLimitState } from "../lib/types";
import { type RateLimitCounter, type RateLimitDecision, type RateLimitWindow, distinctWindows, windowId } from "../lib/usage-limits";
import { FailureRun } from "./cache/failure-run";
import { MemoryWindows } from "./memory-windows";

export interface RateLimitersOptions {
  /** Shared counting across instances (a Cluster too: each count is one key); without it, each instance counts alone. */
  redis?: Redis | Cluster;
  /** Redis keys are `<prefix>rl:<limit>:<duration>:<key id>`. Default: `apikey:`. */
  prefix?: string;
  /** How long a Redis call may take before this use is counted in memory instead. Default: 250 ms. */
  timeout?: number;
  logger: Logger;
  /** Counter time, in epoch ms (see lib/clocks.ts): windows in memory must agree with Redis TTLs. */
  now: () => number;
  /** How often this instance says in Redis that it is alive, in ms; it counts as alive for three times that. Default: 10000. */
  heartbeatInterval?: number;
}


/**
 * The library's Lua script (set the window if new, add, read the TTL), changed in two ways so
 * that a refused use leaves the count as it was: a use that would pass the limit (ARGV[3]) is
 * reported but not added, and a refund (negative points) never creates a window nor takes the
 * count below 0, so a refund that arrives after its window expired gives nothing to the next.
 */
const COUNT_SCRIPT = `
local points = tonumber(ARGV[1])
if points < 0 and redis.call('exists', KEYS[1]) == 0 then return {0, 0} end
redis.call('set', KEYS[1], 0, 'EX', ARGV[2], 'NX')
local current = tonumber(redis.call('get', KEYS[1]))
local consumed = current + points
if consumed < 0 then consumed = 0 end
if points < 0 or consumed <= tonumber(ARGV[3]) then redis.call('incrby', KEYS[1], consumed - current) end
local ttl = redis.call('pttl', KEYS[1])
if ttl == -1 then
  redis.call('expire', KEYS[1], ARGV[2])
  ttl = 1000 * ARGV[2]
end
return {consumed, ttl}
`;

/** What one window did with one use. */
interface Outcome {
  window: RateLimitWindow;
  /** Counted: the use was admitted there, in Redis or in memory. */
  taken: boolean;
  consumed: number;
  msBeforeNext: number;
  /** Whether memory, not Redis, counted it (Redis failed or was too slow). */
  inMemory: boolean;
  /** A failure of memory itself (a bug): the use cannot be decided. */
  error?: unknown;
}

function state(window: RateLimitWindow, msBeforeNext: number, remaining: number): RateLimitState {
  return { name: window.name, limit: window.limit, remaining, reset: Math.max(0, Math.ceil(msBeforeNext / 1000)) };
}

function assertWindow(window: RateLimitWindow): void {
  if (!Number.isSafeInteger(window.limit) || window.limit < 1 || !Number.isSafeInteger(window.duration) || window.duration < 1) {
    throw new ApiKeyError("invalid_data", `Rate limit ${JSON.stringify(window.name)} needs a positive integer limit and duration (seconds)`);
  }
}

/** The name of a window's count for one key, in memory and (after the prefix) in Redis. */
const windowName = (id: string, window: RateLimitWindow) => `${windowId(window)}:${id}`;

/** Rejects after `ms`, so that a slow Redis costs a use no more than that. */
function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`Redis did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export class RateLimiters implements RateLimitCounter {
  readonly #redis: Redis | Cluster | undefined;
  readonly #prefix: string;
  readonly #timeout: number;
  /** The Redis limiters, one per (limit, duration); they hold no counts, so forgetting one loses nothing. */
  readonly #limiters = new LRUCache<string, RateLimiterRedis>({ max: 1000 });
  readonly #memory: MemoryWindows;
  readonly #outage: FailureRun;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #instanceId = randomUUID();
  /** The instances last seen alive in Redis, this one included: what a fair share divides by. */
  #instances = 1;
  #lastHeartbeat = -Infinity;
  readonly #heartbeatInterval: number;

  constructor(options: RateLimitersOptions) {
    this.#redis = options.redis;
    this.#prefix = options.prefix ?? "apikey:";
    this.#timeout = options.timeout ?? 250;
    this.#logger = options.logger;
    this.#now = options.now;
    this.#heartbeatInterval = options.heartbeatInterval ?? 10_000;
    this.#memory = new MemoryWindows(this.#now);
    this.#outage = new FailureRun(options.logger, () => new Date(this.#now()), 0, {
      start: "express-api-keys: Redis is unavailable; counting rate limits per instance, each at its share of the limit, until it is back",
      end: "express-api-keys: Redis is back; counting rate limits across instances again",
    });
  }

  /** How many instances this one last saw alive in Redis. */
  get instances(): number {
    return this.#instances;
  }

  #limiter(window: RateLimitWindow, redis: Redis | Cluster): RateLimiterRedis {
    const { limit, duration } = window;
    const id = windowId(window);
    let limiter = this.#limiters.get(id);
    if (!limiter) {
      // rejectIfRedisNotReady: while ioredis reconnects, count in memory at once rather than queue.
      limiter = new RateLimiterRedis({ storeClient: redis, points: limit, duration, keyPrefix: `${this.#prefix}rl:${id}`, rejectIfRedisNotReady: true, customIncrTtlLuaScript: COUNT_SCRIPT });
      this.#limiters.set(id, limiter);
    }
    return limiter;
  }

  /** Counts a use in memory: the whole limit without Redis, this instance's share of it while Redis is down. */
  #countInMemory(id: string, window: RateLimitWindow, cost: number, share: boolean): Outcome {
    const limit = share ? Math.max(1, Math.ceil(window.limit / this.#instances)) : window.limit;
    const count = this.#memory.consume(windowName(id, window), cost, limit, window.duration * 1000);
    return { window, taken: count.admitted, consumed: count.admitted ? count.consumed : Math.max(count.consumed, window.limit + cost), msBeforeNext: count.msBeforeNext, inMemory: true };
  }

  async #count(id: string, window: RateLimitWindow, cost: number): Promise<Outcome> {
    const redis = this.#redis;
    if (!redis) return this.#countInMemory(id, window, cost, false);
    try {
      const res = await withTimeout(this.#limiter(window, redis).consume(id, cost), this.#timeout);
      return { window, taken: true, consumed: res.consumedPoints, msBeforeNext: res.msBeforeNext, inMemory: false };
    } catch (error) {
      if (error instanceof RateLimiterRes) return { window, taken: false, consumed: error.consumedPoints, msBeforeNext: error.msBeforeNext, inMemory: false };
      return this.#countInMemory(id, window, cost, true);
    }
  }

  /** Gives back `units` of one window's count, where it was counted. */
  async #giveBack(id: string, outcome: Outcome, units: number): Promise<void> {
    if (outcome.inMemory || !this.#redis) {
      this.#memory.refund(windowName(id, outcome.window), units);
      return;
    }
    await this.#limiter(outcome.window, this.#redis)
      .reward(id, units)
      .then(
        () => undefined,
        (error: unknown) => this.#logger.warn("express-api-keys: could not refund a rate limit", error),
      );
  }

  /**
   * Says in Redis that this instance is alive, and learns how many are, at most once per
   * heartbeat interval and never on the request's path (not awaited). A failure changes
   * nothing: the last count stands.
   */
  #heartbeat(): void {
    const redis = this.#redis;
    const now = this.#now();
    if (!redis || now - this.#lastHeartbeat < this.#heartbeatInterval) return;
    this.#lastHeartbeat = now;
    const key = `${this.#prefix}rl:instances`;
    const aliveMs = 3 * this.#heartbeatInterval;
    redis
      .multi()
      .zadd(key, now, this.#instanceId)
      .zremrangebyscore(key, 0, now - aliveMs)
      .pexpire(key, aliveMs)
      .zcard(key)
      .exec()
      .then(
        (replies) => {
          const alive = replies?.[3]?.[1];
          if (typeof alive === "number" && alive >= 1) this.#instances = alive;
        },
        () => undefined,
      );
  }

  async consume(id: string, windows: readonly RateLimitWindow[], cost: number): Promise<RateLimitDecision> {
    for (const window of windows) assertWindow(window);
    const outcomes = await Promise.all(distinctWindows(windows).map((window) => this.#count(id, window, cost)));
    if (this.#redis) {
      if (outcomes.some((outcome) => outcome.inMemory)) this.#outage.failed();
      else {
        this.#outage.succeeded();
        this.#heartbeat();
      }
    }
    const refund = async (units = cost) => {
      await Promise.all(outcomes.filter((outcome) => outcome.taken).map((outcome) => this.#giveBack(id, outcome, units)));
    };
    const refused = outcomes.filter((outcome) => !outcome.taken);
    if (refused.length > 0) {
      await refund();
      // The refusal that lasts longest decides when to retry.
      const decisive = refused.reduce((a, b) => (b.msBeforeNext > a.msBeforeNext ? b : a));
      const left = Math.max(0, decisive.window.limit - (decisive.consumed - cost));
      return { admitted: false, rate_limit: state(decisive.window, decisive.msBeforeNext, left) };
    }
    const remaining = (outcome: Outcome) => Math.max(0, outcome.window.limit - outcome.consumed);
    const tightest = outcomes.reduce((a, b) => (remaining(b) < remaining(a) || (remaining(b) === remaining(a) && b.msBeforeNext > a.msBeforeNext) ? b : a));
    return { admitted: true, rate_limit: state(tightest.window, tightest.msBeforeNext, remaining(tightest)), refund };
  }
}

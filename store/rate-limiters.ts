// Rate limit windows counted by rate-limiter-flexible. With Redis, every instance counts in the
// same Redis keys (RateLimiterRedis, one Lua script per use); without it, each instance counts
// in its own memory (RateLimiterMemory). The algorithm is the library's fixed window per key
// and window: it starts at the key's first use and lasts `duration` seconds, so up to twice
// `limit` uses can fall within `duration` seconds across a window boundary. While Redis is
// unreachable (or slower than `timeout`), an in-memory insurance limiter counts per instance,
// so N instances admit up to N x limit; the switch and the way back are logged once per outage.
import type { Redis } from "ioredis";
import { LRUCache } from "lru-cache";
import { RLWrapperTimeouts, RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from "rate-limiter-flexible";
import { ApiKeyError } from "../lib/errors";
import type { Logger } from "../lib/logger";
import type { RateLimitState } from "../lib/types";
import type { RateLimitCounter, RateLimitDecision, RateLimitWindow } from "../lib/usage-limits";
import { FailureRun } from "./cache/failure-run";

export interface RateLimitersOptions {
  /** Shared counting across instances; without it, each instance counts alone. */
  redis?: Redis;
  /** Redis keys are `<prefix>rl:<limit>:<duration>:<key id>`. Default: `apikey:`. */
  prefix?: string;
  /** How long a Redis call may take before this use is counted in memory instead. Default: 250 ms. */
  timeout?: number;
  /**
   * How many distinct (limit, duration) limiters are kept, least recently used dropped first.
   * Without Redis a dropped limiter forgets its counts. Default: 1000.
   */
  maxLimiters?: number;
  logger: Logger;
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

/** Marks a call's options object when the insurance limiter, not Redis, answered it. */
interface CallMarker {
  insured?: boolean;
}

type Options = Record<string, unknown>;

/** The in-memory limiter rate-limiter-flexible falls back to when a Redis call fails. */
class InsuranceLimiter extends RateLimiterMemory {
  override consume(key: string | number, points?: number, options: Options = {}): Promise<RateLimiterRes> {
    (options as CallMarker).insured = true;
    return super.consume(key, points, options);
  }

  override reward(key: string | number, points?: number, options: Options = {}): Promise<RateLimiterRes> {
    (options as CallMarker).insured = true;
    return super.reward(key, points, options);
  }
}

type Limiter = RateLimiterMemory | RLWrapperTimeouts;

interface Outcome {
  window: RateLimitWindow;
  limiter: Limiter;
  /**
   * The window took the cost: when it admitted, or when memory refused it (RateLimiterMemory
   * counts refused uses too; our Redis script does not).
   */
  taken: boolean;
  res?: RateLimiterRes;
  error?: unknown;
}

function state(window: RateLimitWindow, res: RateLimiterRes, remaining: number): RateLimitState {
  return { name: window.name, limit: window.limit, remaining, reset: Math.max(0, Math.ceil(res.msBeforeNext / 1000)) };
}

function assertWindow(window: RateLimitWindow): void {
  if (!Number.isSafeInteger(window.limit) || window.limit < 1 || !Number.isSafeInteger(window.duration) || window.duration < 1) {
    throw new ApiKeyError("invalid_data", `Rate limit ${JSON.stringify(window.name)} needs a positive integer limit and duration (seconds)`);
  }
}

export class RateLimiters implements RateLimitCounter {
  readonly #redis: Redis | undefined;
  readonly #prefix: string;
  readonly #timeout: number;
  readonly #limiters: LRUCache<string, Limiter>;
  readonly #outage: FailureRun;
  readonly #logger: Logger;

  constructor(options: RateLimitersOptions) {
    this.#redis = options.redis;
    this.#prefix = options.prefix ?? "apikey:";
    this.#timeout = options.timeout ?? 250;
    this.#limiters = new LRUCache({ max: options.maxLimiters ?? 1000 });
    this.#logger = options.logger;
    // Real time, as the library's windows use: the service's clock may be a test's.
    this.#outage = new FailureRun(options.logger, () => new Date(), 0, {
      start: "express-api-keys: Redis is unavailable; counting rate limits per instance until it is back",
      end: "express-api-keys: Redis is back; counting rate limits across instances again",
    });
  }

  /** The limiter of one (limit, duration) pair, shared by every key with that window. */
  #limiter({ limit, duration }: RateLimitWindow): Limiter {
    const id = `${limit}:${duration}`;
    let limiter = this.#limiters.get(id);
    if (limiter) return limiter;
    if (this.#redis) {
      const keyPrefix = `${this.#prefix}rl:${id}`;
      const insuranceLimiter = new InsuranceLimiter({ points: limit, duration, keyPrefix });
      limiter = new RLWrapperTimeouts({
        // rejectIfRedisNotReady: while ioredis reconnects, count in memory at once rather than queue.
        limiter: new RateLimiterRedis({ storeClient: this.#redis, points: limit, duration, keyPrefix, rejectIfRedisNotReady: true, insuranceLimiter, customIncrTtlLuaScript: COUNT_SCRIPT }),
        timeoutMs: this.#timeout,
        insuranceLimiter,
      });
    } else {
      limiter = new RateLimiterMemory({ points: limit, duration });
    }
    this.#limiters.set(id, limiter);
    return limiter;
  }

  async consume(id: string, windows: readonly RateLimitWindow[], cost: number): Promise<RateLimitDecision> {
    for (const window of windows) assertWindow(window);
    // Two windows with the same limit and duration decide alike: count them once.
    const distinct = [...new Map(windows.map((window) => [`${window.limit}:${window.duration}`, window])).values()];
    const markers: CallMarker[] = [];
    const outcomes: Outcome[] = await Promise.all(
      distinct.map((window) => {
        const limiter = this.#limiter(window);
        const marker: CallMarker = {};
        markers.push(marker);
        const inMemory = () => !this.#redis || marker.insured === true;
        return limiter.consume(id, cost, marker as Options).then(
          (res): Outcome => ({ window, limiter, taken: true, res }),
          (error: unknown): Outcome =>
            error instanceof RateLimiterRes ? { window, limiter, taken: inMemory(), res: error } : { window, limiter, taken: false, error },
        );
      }),
    );
    if (markers.some((marker) => marker.insured)) this.#outage.failed();
    else this.#outage.succeeded();

    const refund = async () => {
      await Promise.all(
        outcomes
          .filter((outcome) => outcome.taken)
          .map((outcome) =>
            outcome.limiter.reward(id, cost, {}).catch((error: unknown) => this.#logger.warn("express-api-keys: could not refund a rate limit", error)),
          ),
      );
    };
    const failed = outcomes.find((outcome) => outcome.error !== undefined);
    if (failed) {
      await refund();
      throw new ApiKeyError("unavailable", "Rate limits could not be counted", { cause: failed.error });
    }
    const refused = outcomes.filter((outcome) => outcome.res!.consumedPoints > outcome.window.limit);
    if (refused.length > 0) {
      await refund();
      // The refusal that lasts longest decides when to retry.
      const decisive = refused.reduce((a, b) => (b.res!.msBeforeNext > a.res!.msBeforeNext ? b : a));
      const left = Math.max(0, decisive.window.limit - (decisive.res!.consumedPoints - cost));
      return { admitted: false, rate_limit: state(decisive.window, decisive.res!, left) };
    }
    const tightest = outcomes.reduce((a, b) =>
      b.res!.remainingPoints < a.res!.remainingPoints || (b.res!.remainingPoints === a.res!.remainingPoints && b.res!.msBeforeNext > a.res!.msBeforeNext) ? b : a,
    );
    return { admitted: true, rate_limit: state(tightest.window, tightest.res!, tightest.res!.remainingPoints), refund };
  }
}

// Per-key usage limits, applied once a key has been verified: its rate limits (named windows,
// counted by a RateLimitCounter, in Redis when there is one) and then its usage quota (counted
// in the database, through leases of units: lib/quota-leases.ts). A refused use consumes
// nothing: when the quota refuses, what the rate limits took is given back.
import { ApiKeyError } from "./errors";
import type { EventBatch } from "./events";
import type { Logger } from "./logger";
import { QuotaLeases } from "./quota-leases";
import type { QuotaRefill, RateLimitRule } from "./columns";
import type { ApiKeyStore } from "./store";
import type { RateLimitState } from "./types";

/** One rate limit of a key: at most `limit` uses per `duration` seconds (the `rate_limits` column's items). */
export type RateLimitWindow = RateLimitRule;

/**
 * What identifies a window's count: its limit and duration, not its name. Two rules of one
 * limit and duration count alike, so they share one count (a use pays it once).
 */
export function windowId({ limit, duration }: RateLimitWindow): string {
  return `${limit}:${duration}`;
}

/** The windows with a count of their own: the first of each limit and duration. */
export function distinctWindows(windows: readonly RateLimitWindow[]): readonly RateLimitWindow[] {
  if (windows.length < 2) return windows;
  const byId = new Map<string, RateLimitWindow>();
  for (const window of windows) if (!byId.has(windowId(window))) byId.set(windowId(window), window);
  return byId.size === windows.length ? windows : [...byId.values()];
}


/** What a RateLimitCounter decided for one use. */
export type RateLimitDecision =
  | {
      admitted: true;
      rate_limit: RateLimitState;
      /** Gives back `units` (default: all this use took) to every window it was counted in. */
      refund: (units?: number) => Promise<void>;
    }
  | { admitted: false; rate_limit: RateLimitState };

/**
 * Counts uses per key and window. Takes `cost` from every window only when all of them admit
 * it; a refusal leaves every window as it was. `rate_limit` is the window that decided: the
 * one that refused, or on success the one with the fewest uses left.
 */
export interface RateLimitCounter {
  consume(id: string, windows: readonly RateLimitWindow[], cost: number): Promise<RateLimitDecision>;
  /**
   * Takes `cost` from every window when this process's memory alone can admit it, answering the
   * state `consume` would report; undefined (having counted nothing) when only `consume` can decide.
   */
  consumeLocal?(id: string, windows: readonly RateLimitWindow[], cost: number): RateLimitState | undefined;
}

/** The policy fields of a verified key that limit its use. */
export interface UsageLimitedKey {
  id: string;
  rate_limits?: readonly RateLimitWindow[] | null;
  /** The quota as last read; null or absent: no quota. The database holds the truth. */
  remaining?: number | null;
  refill?: QuotaRefill | null;
  /** When the key last changed: a quota lease is spent only on the key as it was leased. */
  updated_at?: Date;
}

export type UsageDecision =
  | { admitted: true; rate_limit?: RateLimitState; remaining?: number }
  | { admitted: false; code: "rate_limited" | "usage_exceeded"; rate_limit?: RateLimitState; remaining?: number };

export interface UsageLimitsOptions {
  store: ApiKeyStore;
  rateLimits: RateLimitCounter;
  now: () => Date;
  /** Where `api_key.usage_exceeded` and `api_key.refilled` go: the service's event bus. */
  emit: (event: EventBatch) => void;
  logger: Logger;
}

function assertCost(cost: number): void {
  if (!Number.isSafeInteger(cost) || cost < 1) throw new ApiKeyError("invalid_data", "`cost` must be a positive integer");
}

const ADMITTED: UsageDecision = Object.freeze({ admitted: true });

export class UsageLimits {
  readonly #options: UsageLimitsOptions;
  readonly #quotas: QuotaLeases;

  constructor(options: UsageLimitsOptions) {
    this.#options = options;
    this.#quotas = new QuotaLeases(options.store, options.logger);
  }

  /** Gives the quota units this instance leased and did not spend back to their keys. */
  close(): Promise<void> {
    return this.#quotas.close();
  }

  /**
   * `consume` for a use that can be decided at once: a key with no limits, or whose local leases
   * (of its rate limits, of its quota) admit the use. Undefined (nothing consumed) when only
   * `consume` can decide: a lease that cannot pay. `now` is the caller's reading of the clock.
   */
  consumeLocal(key: UsageLimitedKey, cost: number, now: Date): UsageDecision | undefined {
    assertCost(cost);
    const hasQuota = key.remaining !== undefined && key.remaining !== null;
    // Found before the rate limits spend anything, so that a partial answer spends nothing.
    const lease = hasQuota ? this.#quotas.payable(key, cost, now) : undefined;
    if (hasQuota && !lease) return undefined;
    const windows = key.rate_limits ?? [];
    let state: RateLimitState | undefined;
    if (windows.length > 0) {
      // Only an admission is taken from memory: a refusal may be a lease ending, which Redis settles.
      state = this.#options.rateLimits.consumeLocal?.(key.id, windows, cost);
      if (!state) return undefined;
    }
    if (!lease) return state ? { admitted: true, rate_limit: state } : ADMITTED;
    const quota = this.#quotas.spend(lease, cost);
    if (quota.remaining === 0) this.#options.emit({ name: "api_key.usage_exceeded", payload: { id: key.id } });
    return { admitted: true, ...(state ? { rate_limit: state } : {}), remaining: quota.remaining };
  }

  /**
   * Applies a verified key's limits to one use of `cost`: rate limits first, then the quota.
   * A key with neither costs nothing (no Redis, no database). Rejects only when the store
   * cannot be reached for a key with a quota (fail closed); rate limits never reject, they fall
   * back to counting per instance.
   */
  async consume(key: UsageLimitedKey, cost = 1): Promise<UsageDecision> {
    assertCost(cost);
    const windows = key.rate_limits ?? [];
    const hasQuota = key.remaining !== undefined && key.remaining !== null;
    if (windows.length === 0 && !hasQuota) return { admitted: true };

    let rateLimit: Extract<RateLimitDecision, { admitted: true }> | undefined;
    if (windows.length > 0) {
      const decision = await this.#options.rateLimits.consume(key.id, windows, cost);
      if (!decision.admitted) return { admitted: false, code: "rate_limited", rate_limit: decision.rate_limit };
      rateLimit = decision;
    }
    if (!hasQuota) return { admitted: true, rate_limit: rateLimit!.rate_limit };

    const { store } = this.#options;
    if (!store.consumeQuota) {
      await rateLimit?.refund();
      throw new ApiKeyError("unavailable", `Key ${key.id} has a usage quota, but the store has no consumeQuota()`);
    }
    let quota;
    try {
      quota = await this.#quotas.consume(key, cost, this.#options.now());
    } catch (error) {
      await rateLimit?.refund();
      throw error;
    }
    if (quota.refilled && key.refill) this.#options.emit({ name: "api_key.refilled", payload: { id: key.id, remaining: key.refill.amount } });
    const remaining = quota.remaining ?? undefined;
    const withRateLimit = rateLimit ? { rate_limit: rateLimit.rate_limit } : {};
    if (!quota.admitted) {
      await rateLimit?.refund();
      return { admitted: false, code: "usage_exceeded", ...withRateLimit, ...(remaining === undefined ? {} : { remaining }) };
    }
    // Exactly one use takes the quota to 0, so exactly one event per time it is spent.
    if (remaining === 0) this.#options.emit({ name: "api_key.usage_exceeded", payload: { id: key.id } });
    return { admitted: true, ...withRateLimit, ...(remaining === undefined ? {} : { remaining }) };
  }
}

// Usage quotas (`remaining`, with an optional `refill`): the types the store works with and the
// one date rule they share. The truth of a quota is the key's row in the database, never a
// cache or Redis, so that "at most N successful uses" holds across instances and restarts.

import type { QuotaRefill } from "./columns";

export type { QuotaRefill };

/** What one attempt to use a quota did. */
export interface QuotaConsumption {
  /** True when `cost` was taken (or the key has no quota at all). */
  admitted: boolean;
  /** The quota left after this attempt; null when the key has no quota. */
  remaining: number | null;
  /** True when this attempt refilled the quota (at most one attempt per interval does). */
  refilled: boolean;
}

/**
 * The instant the current refill interval began, in UTC: midnight today, or midnight on the
 * first of this month. A quota last refilled (or created) before it is due a refill.
 */
export function refillIntervalStart(now: Date, interval: QuotaRefill["interval"]): Date {
  return interval === "day"
    ? new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()))
    : new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
}

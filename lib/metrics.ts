// What the package reports to a metrics system, as the domain sees it. setup/metrics.ts
// implements it with prom-client when the app turns metrics on; otherwise nothing is made and
// each report is one skipped optional call.
import type { ApiKeyType, VerifyCode } from "./types";

/** The tiers a lookup can be answered by, nearest first. */
export type LookupTier = "memory" | "redis" | "store";

export interface Metrics {
  /** A verification's answer: the key's type (`none` when no key was found) and its code. */
  verified(type: ApiKeyType | "none", code: VerifyCode): void;
  /** The tier that answered a lookup. */
  answered(tier: LookupTier): void;
  /** How long one store lookup or one Redis command took, and whether it succeeded. */
  timed(target: "store" | "redis", seconds: number, ok: boolean): void;
}

/** Seconds since `start` (from `process.hrtime.bigint()`). */
export function secondsSince(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

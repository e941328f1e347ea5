// The RateLimit-Policy, RateLimit and Retry-After headers of a key with rate limits, in the form
// of draft-ietf-httpapi-ratelimit-headers-08 as express-rate-limit's `draft-8` mode sends them:
//   RateLimit-Policy: "per_minute"; q=100; w=60; pk=:<partition key>:
//   RateLimit: "per_minute"; r=42; t=17
// Pure, so every case is tested from a table.
import { createHash } from "node:crypto";
import type { RateLimitRule, RateLimitState } from "./verify-types";

/**
 * The policy name as a structured-field string: printable ASCII only (anything else would be
 * refused by setHeader, or split the header), with `\` and `"` escaped.
 */
function quoted(name: string): string {
  return `"${name.replace(/[^\x20-\x7e]/g, "?").replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** Whole seconds, never negative: the draft's `w` and `t` are non-negative integers. */
function seconds(value: number): number {
  return Number.isFinite(value) ? Math.max(0, Math.ceil(value)) : 0;
}

/**
 * The partition key, computed as express-rate-limit computes it (the base64 of the first 12
 * hex digits of a SHA-256), from the key's id: it tells a client which counter it spends
 * without revealing anything it does not already know.
 */
export function partitionKey(id: string): string {
  return Buffer.from(createHash("sha256").update(id).digest("hex").slice(0, 12)).toString("base64");
}

/** The windows a verification reported, as a list (it may report one window or several). */
export function reportedStates(states: RateLimitState | readonly RateLimitState[] | undefined): readonly RateLimitState[] {
  if (states === undefined) return [];
  return isStateList(states) ? states : [states];
}

// Array.isArray narrows a readonly array to any[]; this guard keeps the element type.
function isStateList(states: RateLimitState | readonly RateLimitState[]): states is readonly RateLimitState[] {
  return Array.isArray(states);
}

/** What the headers say of a key's rules, the same for each response. */
interface Written {
  id: string;
  /** The `RateLimit-Policy` items. */
  policies: readonly string[];
  /** Each rule's name, quoted. */
  names: ReadonlyMap<string, string>;
}

/**
 * What was written for each list of rules. Only frozen rules are remembered (the service hands
 * out each cached key frozen, so a warm key's rules are one array): what they say cannot
 * change, and a warm request pays no SHA-256 for its partition key.
 */
const written = new WeakMap<readonly RateLimitRule[], Written>();

function write(id: string, rules: readonly RateLimitRule[]): Written {
  const known = written.get(rules);
  if (known?.id === id) return known;
  const pk = partitionKey(id);
  const made: Written = {
    id,
    policies: rules.map((rule) => `${quoted(rule.name)}; q=${rule.limit}; w=${seconds(rule.duration)}; pk=:${pk}:`),
    names: new Map(rules.map((rule) => [rule.name, quoted(rule.name)])),
  };
  if (Object.isFrozen(rules) && rules.every((rule) => Object.isFrozen(rule))) written.set(rules, made);
  return made;
}

/**
 * The headers for a response to a request made with key `id`, whose rate limits are `rules`,
 * after a verification that reported `states`. `refused` adds `Retry-After`: the whole seconds
 * until the latest of the refusing windows frees, at least 1 so that a client never retries
 * in a loop. No rules and no states: no headers.
 */
export function rateLimitHeaders(
  id: string,
  rules: readonly RateLimitRule[],
  states: RateLimitState | readonly RateLimitState[] | undefined,
  refused: boolean,
): Record<string, string> {
  const reported = reportedStates(states);
  const headers: Record<string, string> = {};
  const { policies, names } = write(id, rules);
  // A window the verification reported but the key's rules do not list (its rules changed
  // meanwhile): its quota is known, its window is not.
  const unlisted = reported.filter((state) => !names.has(state.name));
  const allPolicies = unlisted.length === 0 ? policies : [...policies, ...unlisted.map((state) => `${quoted(state.name)}; q=${state.limit}; pk=:${partitionKey(id)}:`)];
  if (allPolicies.length > 0) headers["RateLimit-Policy"] = allPolicies.join(", ");
  if (reported.length > 0) {
    headers.RateLimit = reported
      .map((state) => `${names.get(state.name) ?? quoted(state.name)}; r=${Math.max(0, state.remaining)}; t=${seconds(state.reset)}`)
      .join(", ");
  }
  if (refused) {
    const waits = reported.filter((state) => state.remaining <= 0).map((state) => seconds(state.reset));
    const wait = Math.max(1, ...(waits.length > 0 ? waits : reported.map((state) => seconds(state.reset))));
    headers["Retry-After"] = String(wait);
  }
  return headers;
}

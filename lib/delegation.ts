// Who may manage which keys: the rule that nobody gets more through key administration than
// they already hold. Pure: the service applies it to rows it has locked, so what it judges is
// what it changes.
//
// What a key holds: an unrestricted secret key (no scopes, as every key in Medusa) holds `*`;
// a secret key with scopes holds those; a publishable key holds nothing, so any key
// administrator may manage publishable keys.
import { ApiKeyError } from "./errors";
import { within } from "./ip-allow-list";
import { grantsOne } from "./scopes";
import type { ApiKeyRecord } from "./store";
import type { RateLimitRule, UpdateApiKeyDTO } from "./types";

type Holder = Pick<ApiKeyRecord, "type" | "scopes">;

/** What a key holds for delegation. */
export function heldScopes(key: Holder): readonly string[] {
  if (key.type === "publishable") return [];
  return key.scopes.length === 0 ? ["*"] : key.scopes;
}

/**
 * Whether `held` covers every use that `scope` (a key's scope, `*` segments and all) could
 * grant. A `*` on the scope's side is matched only by a `*` on the holder's side, so the same
 * segment rule as for required scopes decides it.
 */
function covers(held: readonly string[], scope: string): boolean {
  return held.some((granted) => grantsOne(granted, scope));
}

/** The scopes among `scopes` that `held` does not cover in full, once each, in the order given. */
export function uncoveredScopes(held: readonly string[], scopes: readonly string[]): string[] {
  return [...new Set(scopes.filter((scope) => !covers(held, scope)))];
}

function forbidden(message: string): ApiKeyError {
  return new ApiKeyError("forbidden", `Forbidden: ${message}`);
}

function scopeList(scopes: readonly string[]): string {
  return `scope${scopes.length === 1 ? "" : "s"} ${scopes.join(", ")}`;
}

/** Refuses giving a key of `type` the scopes `scopes` (none: unrestricted) unless `acting` holds them all. */
export function checkGrant(acting: Holder, type: ApiKeyRecord["type"], scopes: readonly string[] | undefined): void {
  if (type === "publishable") return;
  const held = heldScopes(acting);
  if (scopes === undefined || scopes.length === 0) {
    if (!covers(held, "*")) throw forbidden("a key with scopes cannot create or make an unrestricted key (one without scopes holds *); give the key scopes the acting key holds");
    return;
  }
  const missing = uncoveredScopes(held, scopes);
  if (missing.length > 0) throw forbidden(`the acting key cannot give the ${scopeList(missing)}, which it does not hold`);
}

/** Refuses acting on `targets` unless `acting` holds, in full, every scope each of them holds. */
export function checkTargets(acting: Holder, targets: readonly ApiKeyRecord[]): void {
  const held = heldScopes(acting);
  for (const target of targets) {
    const missing = uncoveredScopes(held, heldScopes(target));
    if (missing.length > 0) throw forbidden(`the acting key lacks the ${scopeList(missing)} that ${target.id} holds, so it cannot manage it`);
  }
}

/** Whether `next` admits no more than `current`: each current window is matched by one at least as long that allows no more. */
function noLooser(current: readonly RateLimitRule[], next: readonly RateLimitRule[]): boolean {
  return current.every((rule) => next.some((other) => other.duration >= rule.duration && other.limit <= rule.limit));
}

/**
 * The fields of `patch` with which a key would raise or remove its own limits: more or
 * looser rate limits, a higher or no quota, a refill that gives more, a later or no expiry, an
 * IP allow-list that accepts more addresses or none at all.
 */
export function loosenedLimits(self: ApiKeyRecord, patch: UpdateApiKeyDTO & { expires_at?: Date | null }): string[] {
  const loosened: string[] = [];
  if (patch.rate_limits !== undefined && !noLooser(self.rate_limits, patch.rate_limits)) loosened.push("rate_limits");
  if (patch.remaining !== undefined && self.remaining !== null && (patch.remaining === null || patch.remaining > self.remaining)) loosened.push("remaining");
  if (patch.refill !== undefined && patch.refill !== null && self.remaining !== null) {
    const same = self.refill !== null && self.refill.interval === patch.refill.interval && patch.refill.amount <= self.refill.amount;
    if (!same) loosened.push("refill");
  }
  if (patch.expires_at !== undefined && self.expires_at !== null && (patch.expires_at === null || patch.expires_at > self.expires_at)) loosened.push("expires_at");
  // An empty list accepts every address: emptying one's own list, or adding to it, widens it.
  if (patch.allowed_ips !== undefined && self.allowed_ips.length > 0 && (patch.allowed_ips.length === 0 || !within(self.allowed_ips, patch.allowed_ips))) {
    loosened.push("allowed_ips");
  }
  return loosened;
}

/** Refuses a change by which the acting key would raise or remove its own limits. */
export function checkSelfUpdate(acting: ApiKeyRecord, patch: UpdateApiKeyDTO & { expires_at?: Date | null }): void {
  const loosened = loosenedLimits(acting, patch);
  if (loosened.length > 0) throw forbidden(`a key cannot raise or remove its own ${loosened.join(", ")}`);
}

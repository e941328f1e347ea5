// Scope words and how a key's scopes grant required ones. Pure: no I/O, no clock, so the
// service, the middleware and the admin router all answer the same from one table of cases.
//
// A scope is `resource:action` words: segments of [a-z0-9_.-] joined by `:`. On a key's side a
// `*` segment matches any one segment there, and a `*` as the last segment also matches any
// deeper segments, so `*` grants everything and `orders:*` grants `orders:read` and
// `orders:read:own`. Required scopes are exact words, with no `*`.

import { ApiKeyError } from "./errors";

const SEGMENT = "[a-z0-9_.-]+";

/** A scope a key may hold: segments or `*`, joined by `:`. */
export const GRANTED_SCOPE = new RegExp(`^(?:${SEGMENT}|\\*)(?::(?:${SEGMENT}|\\*))*$`);

/** A scope a caller may require: segments only. */
export const REQUIRED_SCOPE = new RegExp(`^${SEGMENT}(?::${SEGMENT})*$`);

/** Most scopes on one key, and most characters in one scope. */
export const MAX_SCOPES = 100;
export const MAX_SCOPE_LENGTH = 100;

/** A scope as the contract spells it; `*` segments only where `wildcards` (a key's side). */
export function isScope(value: unknown, wildcards: boolean): value is string {
  if (typeof value !== "string" || value.length > MAX_SCOPE_LENGTH) return false;
  return (wildcards ? GRANTED_SCOPE : REQUIRED_SCOPE).test(value);
}

/** Whether one of the key's scopes, `granted`, covers the exact scope `required`. */
export function grantsOne(granted: string, required: string): boolean {
  const have = granted.split(":");
  const want = required.split(":");
  for (let i = 0; i < have.length; i++) {
    const segment = have[i]!;
    const last = i === have.length - 1;
    if (segment === "*" && last) return want.length >= have.length;
    if (i >= want.length) return false;
    if (segment !== "*" && segment !== want[i]) return false;
  }
  return want.length === have.length;
}

/** Whether the key's scopes grant `required`. */
export function grants(keyScopes: readonly string[], required: string): boolean {
  return keyScopes.some((scope) => grantsOne(scope, required));
}

/** The required scopes the key's scopes do not grant, in the order asked, without repeats; empty when all are granted. */
export function missingScopes(keyScopes: readonly string[], required: readonly string[]): string[] {
  return [...new Set(required.filter((scope) => !grants(keyScopes, scope)))];
}

/** The value, for a message: short, and shown as JSON so that odd characters stand out. */
function shown(value: unknown): string {
  return (JSON.stringify(value) ?? String(value)).slice(0, 60);
}

function checkScopeList(value: unknown, wildcards: boolean, name: string): asserts value is readonly string[] {
  if (!Array.isArray(value)) throw new ApiKeyError("invalid_data", `Expected an array of scopes for '${name}', got: ${shown(value)}`);
  // Array.from turns the holes of a sparse array into undefined, which the check refuses.
  const items = Array.from(value as unknown[]);
  const bad = items.findIndex((scope) => !isScope(scope, wildcards));
  if (bad >= 0) {
    const rule = wildcards ? "[a-z0-9_.-] words or '*' joined by ':'" : "[a-z0-9_.-] words joined by ':', with no '*'";
    throw new ApiKeyError("invalid_data", `Invalid scope ${shown(items[bad])} in '${name}': write ${rule}, such as "orders:read"`);
  }
}

/**
 * `grants` for callers outside the package: the key's scopes are checked as a key's scopes and
 * `required` as an exact scope, so a typo such as "orders::read" is an `invalid_data` error
 * instead of a silent "no".
 */
export function checkedGrants(keyScopes: readonly string[], required: string): boolean {
  checkScopeList(keyScopes, true, "keyScopes");
  checkScopeList([required], false, "required");
  return grants(keyScopes, required);
}

/** `missingScopes` for callers outside the package, with its inputs checked as `checkedGrants` checks them. */
export function checkedMissingScopes(keyScopes: readonly string[], required: readonly string[]): string[] {
  checkScopeList(keyScopes, true, "keyScopes");
  checkScopeList(required, false, "required");
  return missingScopes(keyScopes, required);
}

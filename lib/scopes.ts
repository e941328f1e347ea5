// Scope words and how a key's scopes grant required ones. Pure: no I/O, no clock, so the
// service, the middleware and the admin router all answer the same from one table of cases.
//
// A scope is `resource:action` words: segments of [a-z0-9_.-] joined by `:`. On a key's side a
// `*` segment matches any one segment there, and a `*` as the last segment also matches any
// deeper segments, so `*` grants everything and `orders:*` grants `orders:read` and
// `orders:read:own`. Required scopes are exact words, with no `*`.

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

// Scope matching: does a key's list of scopes grant a required scope? Pure, so that the
// middleware, the admin router and the service all answer the same from one table of cases.

/**
 * Whether `keyScope` grants `required`. Both are `:`-separated words. Segments are compared
 * pairwise; a `*` segment on the key's side matches any one segment, and a trailing `*` also
 * matches any deeper segments (`*` grants everything, `orders:*` grants `orders:read:own`).
 * A required scope is an exact word: a `*` in it is only the character, so asking for
 * `orders:*` is granted only by a key scope that grants every `orders:` action.
 */
export function grantsOne(keyScope: string, required: string): boolean {
  const have = keyScope.split(":");
  const want = required.split(":");
  for (let i = 0; i < have.length; i++) {
    const segment = have[i]!;
    const last = i === have.length - 1;
    if (segment === "*" && last) return want.length >= have.length;
    if (i >= want.length) return false;
    if (segment !== "*" && segment !== want[i]) return false;
  }
  return have.length === want.length;
}

/** Whether the key's scopes grant `required`. */
export function grants(keyScopes: readonly string[], required: string): boolean {
  return keyScopes.some((scope) => grantsOne(scope, required));
}

/** The scopes of `required` that `keyScopes` do not grant, in the order asked; empty when all are granted. */
export function missingScopes(keyScopes: readonly string[], required: readonly string[]): string[] {
  return required.filter((scope) => !grants(keyScopes, scope));
}

/** A scope as the contract spells it: `[a-z0-9_.-]` words joined by `:`; `*` segments are allowed where `wildcards`. */
export function isScope(value: unknown, wildcards: boolean): value is string {
  if (typeof value !== "string" || value.length === 0 || value.length > 100) return false;
  return value.split(":").every((segment) => /^[a-z0-9_.-]+$/.test(segment) || (wildcards && segment === "*"));
}

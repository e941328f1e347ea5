// The scopes a calling key needs for key administration, shared by the admin router and the
// dashboard so that a key may do the same through both.
import { failConfiguration } from "../lib/errors";
import { missingScopes } from "../lib/scopes";
import type { ApiKeyDTO } from "../lib/types";
import { scopesProblem } from "./http/options";

/** The router's and the dashboard's `scopes` option. */
export interface AdminScopesOption {
  read?: string[];
  write?: string[];
}

/** What a route of key administration does: read keys, or change them (and answer with records). */
export type AdminAccess = "read" | "write";

/**
 * The scopes each access needs, with no `scopes` option: keys with scopes need these, and
 * unrestricted keys (no scopes, as Medusa's) are accepted, as the admin they have always been.
 */
export const DEFAULT_ADMIN_SCOPES = { read: ["api_keys:read"], write: ["api_keys:write"] } as const;

export interface AdminScopes {
  /** The scopes `key` (the request's `api_key`, if any) lacks for `access`; empty when it may. */
  missing(key: ApiKeyDTO | undefined, access: AdminAccess): string[];
}

/**
 * The `scopes` option, checked when the router is built, as copies a caller cannot change
 * later. A change answers with full records, so it needs the read scopes as well.
 */
export function adminScopes(option: unknown): AdminScopes {
  const given = option !== undefined;
  const problem = given ? adminScopesProblem(option) : undefined;
  if (problem !== undefined) failConfiguration(problem);
  const { read = [], write = [] } = given ? (option as AdminScopesOption) : DEFAULT_ADMIN_SCOPES;
  const needs: Record<AdminAccess, string[]> = { read: [...read], write: [...new Set([...read, ...write])] };
  return {
    missing(key, access) {
      const scopes = key?.type === "secret" ? key.scopes : [];
      // Without the option, only restricted keys are held to the default scopes. A caller that
      // is not a key at all (an app's own `actor`) is the app's to vouch for.
      if (!given && (key === undefined || (key.type === "secret" && scopes.length === 0))) return [];
      return missingScopes(scopes, needs[access]);
    },
  };
}

/** What is wrong with a `scopes` option, or undefined. */
export function adminScopesProblem(scopes: unknown): string | undefined {
  if (typeof scopes !== "object" || scopes === null || Array.isArray(scopes)) return "`scopes` must be an object { read, write }.";
  const unknown = Object.keys(scopes).filter((name) => name !== "read" && name !== "write");
  if (unknown.length > 0) return `unknown key \`scopes.${unknown[0]}\`; the keys are read and write.`;
  const { read = [], write = [] } = scopes as { read?: unknown; write?: unknown };
  return scopesProblem(read, "`scopes.read`") ?? scopesProblem(write, "`scopes.write`");
}

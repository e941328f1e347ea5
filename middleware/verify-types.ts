// Stand-in for the service's verifyApiKey and its shapes (CONTRACT.md, "Key policy"), so that
// the middleware, the admin router and the CLI code against the contract before the service
// grows it. When lib/service.ts has verifyApiKey, softDeleteApiKeys and restoreApiKeys, this
// file shrinks to re-exports of the real types, and the three helpers below become direct
// calls (every caller already goes through them).
import { ApiKeyError } from "../lib/errors";
import { missingScopes } from "../lib/scopes";
import type { ApiKeyService } from "../lib/service";
import type { ApiKeyDTO, ApiKeyType } from "../lib/types";

export type VerifyCode = "valid" | "not_found" | "revoked" | "expired" | "forbidden" | "rate_limited" | "usage_exceeded";

/** One rate limit of a key: at most `limit` requests per `duration` seconds. */
export interface RateLimitRule {
  name: string;
  limit: number;
  duration: number;
}

/** The state of one rate limit window after a verification, for the response headers. */
export interface RateLimitState {
  name: string;
  limit: number;
  remaining: number;
  /** Seconds until the window frees. */
  reset: number;
}

export interface RefillRule {
  amount: number;
  interval: "day" | "month";
}

/** The policy fields every ApiKeyDTO carries once the service has them. */
export interface PolicyFields {
  expires_at: Date | string | null;
  scopes: string[];
  owner_id: string | null;
  metadata: Record<string, unknown>;
  rate_limits: RateLimitRule[];
  remaining: number | null;
  refill: RefillRule | null;
}

/** A key as the middleware sees it: optional policy fields, so that a DTO without them reads as unrestricted. */
export type PolicyApiKey = ApiKeyDTO & Partial<PolicyFields>;

export interface VerifyOptions {
  type?: ApiKeyType;
  scopes?: string[];
  cost?: number;
}

export interface VerifyResult {
  valid: boolean;
  code: VerifyCode;
  api_key?: PolicyApiKey;
  sales_channel_ids?: string[];
  missing_scopes?: string[];
  /** The window that decided, or every window of the key. */
  rate_limit?: RateLimitState | RateLimitState[];
  remaining?: number | null;
}

interface PolicyMethods {
  verifyApiKey?: (token: string, options?: VerifyOptions) => Promise<VerifyResult>;
  softDeleteApiKeys?: (ids: string | string[]) => Promise<unknown>;
  restoreApiKeys?: (ids: string | string[]) => Promise<unknown>;
}

/**
 * `service.verifyApiKey(token, options)`. Until the service has it, the same answer from
 * authenticate / authenticatePublishable: `valid`, `not_found` or (scopes) `forbidden`.
 */
export async function verifyApiKey(service: ApiKeyService, token: string, options: VerifyOptions): Promise<VerifyResult> {
  const policy = service as ApiKeyService & PolicyMethods;
  if (typeof policy.verifyApiKey === "function") return policy.verifyApiKey(token, options);
  if (options.type === "publishable") {
    const match = await service.authenticatePublishable(token);
    return match ? { valid: true, code: "valid", api_key: match.api_key, sales_channel_ids: match.sales_channel_ids } : { valid: false, code: "not_found" };
  }
  const key: PolicyApiKey | false = await service.authenticate(token);
  if (!key) return { valid: false, code: "not_found" };
  const missing = missingScopes(key.scopes ?? [], options.scopes ?? []);
  if (missing.length > 0) return { valid: false, code: "forbidden", api_key: key, missing_scopes: missing };
  return { valid: true, code: "valid", api_key: key };
}

function policyMethod(service: ApiKeyService, name: "softDeleteApiKeys" | "restoreApiKeys") {
  const method = (service as ApiKeyService & PolicyMethods)[name];
  if (typeof method !== "function") throw new ApiKeyError("not_allowed", `This service does not support ${name}`);
  return method.bind(service);
}

/** Whether the service has the key policy (its columns and methods). */
export function supportsPolicy(service: ApiKeyService): boolean {
  return typeof (service as ApiKeyService & PolicyMethods).verifyApiKey === "function";
}

/** `service.softDeleteApiKeys(ids)`. */
export function softDeleteApiKeys(service: ApiKeyService, ids: string | string[]): Promise<unknown> {
  return policyMethod(service, "softDeleteApiKeys")(ids);
}

/** `service.restoreApiKeys(ids)`. */
export function restoreApiKeys(service: ApiKeyService, ids: string | string[]): Promise<unknown> {
  return policyMethod(service, "restoreApiKeys")(ids);
}

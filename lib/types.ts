// Public data shapes, named and shaped as the reference's DTOs.
import type { ApiKeyColumnValues, ApiKeyField, ApiKeyFilterValues, FilterableField, KeyMetadata, PolicyField, QuotaRefill, RateLimitRule } from "./columns";
import type { INPUT_FIELDS } from "./input-fields";
import type { ApiKeyType } from "./tokens";

export type { ApiKeyType };

/** A rate-limit window's state after a use, for the `RateLimit` headers. */
export interface RateLimitState {
  name: string;
  limit: number;
  remaining: number;
  /** Whole seconds until the window frees (rounded up). */
  reset: number;
}

/**
 * An API key as every read returns it, one field per column (lib/columns.ts). `token` is `""`
 * for secret keys except in create and roll results.
 */
export interface ApiKeyDTO extends ApiKeyColumnValues {}

export type { ApiKeyField, FilterableField, KeyMetadata, QuotaRefill, RateLimitRule };

/** Policy fields an update clears with `null`: those lib/input-fields.ts marks clearable. */
type ClearablePolicyField = { [F in PolicyField]: (typeof INPUT_FIELDS)[F] extends { clearable: true } ? F : never }[PolicyField];

/** What a policy field takes as input: what the DTO holds (lib/columns.ts), `expires_at` also as an ISO string. */
type PolicyInputValue<F extends PolicyField> = F extends "expires_at" ? ApiKeyColumnValues[F] | string : ApiKeyColumnValues[F];

/**
 * A key's policy as create takes it; each field omitted means no restriction (see the DTO's
 * fields). Derived from the policy fields of lib/columns.ts, so a new field appears here.
 */
export type ApiKeyPolicyInput = {
  [F in PolicyField]?: F extends ClearablePolicyField ? Exclude<PolicyInputValue<F>, null> : PolicyInputValue<F>;
} & {
  /** Seconds from now, instead of `expires_at` (not both). */
  expires_in?: number;
};

export interface CreateApiKeyDTO extends ApiKeyPolicyInput {
  title: string;
  type: ApiKeyType;
  created_by: string;
}

/** Each field given is changed; `null` clears `expires_at` and `owner_id`. Derived as ApiKeyPolicyInput is. */
export type UpdateApiKeyDTO = { title?: string } & { [F in PolicyField]?: PolicyInputValue<F> };

export interface RevokeApiKeyDTO {
  revoked_by: string;
  /** Seconds from now; zero, negative or absent means now. */
  revoke_in?: number;
}

/** Links between a publishable key and resource ids, such as sales channels. */
export interface UpdateLinksDTO {
  /** Defaults to `"sales_channel"`. */
  resource_type?: string;
  add?: string[];
  remove?: string[];
}

type Scalar = string | Date | null;

/** The operator map of the reference's filter language. */
export interface OperatorMap<T = Scalar> {
  $eq?: T;
  $ne?: T;
  $in?: T[];
  $nin?: T[];
  $gt?: T;
  $gte?: T;
  $lt?: T;
  $lte?: T;
  $like?: string;
  $ilike?: string;
  $re?: string;
  $exists?: boolean;
  $not?: OperatorMap<T> | T | T[];
}

type FieldFilter<T = Scalar> = T | T[] | OperatorMap<T>;

type FieldFilters = { [F in keyof ApiKeyFilterValues]?: FieldFilter<ApiKeyFilterValues[F]> };

/** The reference's FilterableApiKeyProps: every filterable column (lib/columns.ts), plus `q`, `$and` and `$or`. */
export interface FilterableApiKeyProps extends FieldFilters {
  q?: string;
  $and?: FilterableApiKeyProps[];
  $or?: FilterableApiKeyProps[];
}

export interface FindConfig {
  select?: ApiKeyField[];
  skip?: number;
  take?: number;
  order?: Partial<Record<FilterableField, "ASC" | "DESC" | "asc" | "desc">>;
  withDeleted?: boolean;
}

/**
 * Runs a call inside the app's own transaction, of whatever kind the store understands (a Knex
 * transaction for the Knex store); our writes then commit or roll back with it.
 */
export interface Context {
  transaction?: unknown;
  /**
   * The id of the key on whose behalf the call is made (apk_...). When given, the call may do
   * no more than that key holds: it may give only scopes the key holds, act only on keys whose
   * scopes it holds in full, and never raise its own limits (see "Who may manage keys" in the
   * README). The admin router and the dashboard pass the calling key. A key that no longer
   * authenticates (revoked, expired, deleted) is refused with `unauthorized`.
   */
  actingKey?: string;
  /**
   * Who makes the change, as the audit log records it (`actor_id`): a user id, a job's name.
   * Without it the acting key is recorded, and without either, null.
   */
  actor?: string;
  /** Why the change is made, stored with its audit events as `details` (at most 10 strings): `{ ticket: "OPS-12" }`, say. */
  auditDetails?: Record<string, string>;
}

/** Ids affected by `softDeleteApiKeys` and `restoreApiKeys`, under the reference's linkable key. */
export interface SoftDeleteResult {
  api_key_id: string[];
}

/** What `verifyApiKey` checks besides the token. */
export interface VerifyOptions {
  /** Only keys of this type count; a token of the other type is `not_found`. */
  type?: ApiKeyType;
  /** Scopes the key must grant, each an exact `resource:action` word. */
  scopes?: string[];
  /** Units a valid verification consumes from the key's rate limits and quota (default 1). */
  cost?: number;
  /** The client's address, for keys with an IP allow-list (`allowed_ips`); such a key is refused without one. */
  ip?: string;
}

/** Why a verification refused, or `valid`. */
export const VERIFY_CODES = ["valid", "not_found", "revoked", "expired", "forbidden", "ip_not_allowed", "rate_limited", "usage_exceeded"] as const;

export type VerifyCode = (typeof VERIFY_CODES)[number];

export interface VerifyResult {
  valid: boolean;
  code: VerifyCode;
  /** The key (no secret material), whenever one was found, valid or not. */
  api_key?: ApiKeyDTO;
  /** Publishable keys: the sales channels they are linked to. */
  sales_channel_ids?: string[];
  /** With `forbidden`: the required scopes the key does not grant. */
  missing_scopes?: string[];
  /** For a key with rate limits: the window that refused, or on success the one with the fewest uses left. */
  rate_limit?: RateLimitState;
  /** For a key with a usage quota: what is left after this verification. */
  remaining?: number;
}

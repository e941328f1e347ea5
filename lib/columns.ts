// The columns of `api_key`, described once. The DTO's type, the fields the filter language
// takes and how it reads their values, which fields are dates, JSON or integers, which can be
// null, what a stored null reads as, and the columns the store selects all follow from this
// one table, and so does the field list of the admin API's OpenAPI document.
import type { ApiKeyType, TokenFormat } from "./tokens";

/** One rate limit: at most `limit` uses per `duration` seconds, per key. */
export interface RateLimitRule {
  name: string;
  limit: number;
  /** Seconds. */
  duration: number;
}

/** How a usage quota (`remaining`) is topped up. */
export interface QuotaRefill {
  amount: number;
  interval: "day" | "month";
}

/** The app's own JSON data on a key. */
export type KeyMetadata = Record<string, unknown>;

/**
 * How a column's values are read and compared: `text` and `date` by value, `token` only by
 * equality (through the stored hash for secret keys), `type` as the key-type enum. `json`
 * columns hold a JSON document (stored as text, so every dialect holds it alike) and
 * `integer` columns a whole number; neither is filterable.
 */
export type ColumnKind = "text" | "token" | "type" | "date" | "json" | "integer";

export interface ColumnSpec {
  /** What the field holds, as the API documents it. */
  description: string;
  kind: ColumnKind;
  /** Whether the DTO field can be null. */
  nullable: boolean;
  /** Whether the filter language (and `order`) takes the field. */
  filterable: boolean;
  /**
   * What a stored null reads as, for columns added after rows existed (a migration adds them
   * nullable and rewrites nothing): the DTO then carries this default instead.
   */
  fallback?: unknown;
}

export const API_KEY_COLUMNS = {
  id: { description: "The key's id, `apk_` and a ULID.", kind: "text", nullable: false, filterable: true },
  token: { description: "A publishable key's token; a secret key's plaintext only in the answer that creates it (create, roll), an empty string everywhere else.", kind: "token", nullable: false, filterable: true },
  redacted: { description: "The token as it may be shown: its prefix and last characters.", kind: "text", nullable: false, filterable: true },
  title: { description: "A name people recognise the key by.", kind: "text", nullable: false, filterable: true },
  type: { description: "`publishable` or `secret`.", kind: "type", nullable: false, filterable: true },
  last_used_at: { description: "When the key last authenticated, recorded within seconds; null if never.", kind: "date", nullable: true, filterable: true },
  created_by: { description: "Who created the key.", kind: "text", nullable: false, filterable: true },
  created_at: { description: "When the key was created.", kind: "date", nullable: false, filterable: true },
  updated_at: { description: "When the key last changed.", kind: "date", nullable: false, filterable: true },
  deleted_at: { description: "When the key was soft-deleted; null unless it is.", kind: "date", nullable: true, filterable: true },
  revoked_by: { description: "Who revoked the key; null unless it is revoked.", kind: "text", nullable: true, filterable: true },
  revoked_at: { description: "When the revocation takes or took effect; null unless revoked.", kind: "date", nullable: true, filterable: true },
  expires_at: { description: "The instant after which the key never authenticates again; null for never.", kind: "date", nullable: true, filterable: true },
  owner_id: { description: "The account, organisation or tenant the key belongs to; null for none.", kind: "text", nullable: true, filterable: true },
  scopes: { description: "What a secret key may do; empty for every key without a restriction.", kind: "json", nullable: false, filterable: false, fallback: [] },
  metadata: { description: "The app's own JSON data.", kind: "json", nullable: false, filterable: false, fallback: {} },
  rate_limits: { description: "Request limits per key, across every instance.", kind: "json", nullable: false, filterable: false, fallback: [] },
  remaining: { description: "Successful uses left; null is unlimited.", kind: "integer", nullable: true, filterable: false },
  refill: { description: "How `remaining` is topped up; null for never.", kind: "json", nullable: true, filterable: false },
  allowed_ips: { description: "The client addresses and CIDR ranges (IPv4, IPv6) the key is accepted from; empty for any.", kind: "json", nullable: false, filterable: false, fallback: [] },
  // 2 for tagged tokens, 1 for tokens issued before tags (lib/tokens.ts); rows written before the
  // column existed hold null, which reads as 1.
  token_format: { description: "2 for tokens with a keyed tag (53 characters), 1 for tokens issued before tags (45 characters), 3 for Medusa tokens of imported keys (67 characters).", kind: "integer", nullable: false, filterable: false, fallback: 1 },
} as const satisfies Record<string, ColumnSpec>;

export type ApiKeyField = keyof typeof API_KEY_COLUMNS;

/** What each JSON column holds. */
interface JsonValues {
  scopes: string[];
  metadata: KeyMetadata;
  rate_limits: RateLimitRule[];
  refill: QuotaRefill;
  allowed_ips: string[];
}

type Spec<F extends ApiKeyField> = (typeof API_KEY_COLUMNS)[F];
type ValueOf<F extends ApiKeyField, K extends ColumnKind> = F extends keyof JsonValues
  ? JsonValues[F]
  : F extends "token_format"
    ? TokenFormat
    : K extends "date"
      ? Date
      : K extends "type"
        ? ApiKeyType
        : K extends "integer"
          ? number
          : string;

/** Each column's value: its kind's type, or null where the column is nullable. */
export type ApiKeyColumnValues = {
  -readonly [F in ApiKeyField]: ValueOf<F, Spec<F>["kind"]> | (Spec<F>["nullable"] extends true ? null : never);
};

/** The fields the filter language takes. */
export type FilterableField = { [F in ApiKeyField]: Spec<F>["filterable"] extends true ? F : never }[ApiKeyField];

type FilterValueOf<K extends ColumnKind> = K extends "date" ? Date | string : K extends "type" ? ApiKeyType : string;

/** What a filter compares each filterable column with: an ISO string or a Date for dates, null where nullable. */
export type ApiKeyFilterValues = {
  -readonly [F in FilterableField]: FilterValueOf<Spec<F>["kind"]> | (Spec<F>["nullable"] extends true ? null : never);
};

/** Every field, in the table's column order. */
export const API_KEY_FIELDS = Object.keys(API_KEY_COLUMNS) as ApiKeyField[];

function fieldsWhere(test: (spec: ColumnSpec) => boolean): ApiKeyField[] {
  return API_KEY_FIELDS.filter((field) => test(API_KEY_COLUMNS[field]));
}

/** Fields holding instants: stores and caches bring these back as `Date`. */
export const DATE_FIELDS = fieldsWhere((spec) => spec.kind === "date");

/** Fields holding a JSON document: the SQL store keeps them as text. */
export const JSON_FIELDS = fieldsWhere((spec) => spec.kind === "json");

/** Fields holding a whole number: drivers may bring them back as strings. */
export const INTEGER_FIELDS = fieldsWhere((spec) => spec.kind === "integer");

/** Fields the filter language and `order` take, in column order. */
export const FILTERABLE_FIELDS = fieldsWhere((spec) => spec.filterable) as FilterableField[];

/** Fields that can hold null; every other field always has a value. */
export const NULLABLE_FIELDS: ReadonlySet<ApiKeyField> = new Set(fieldsWhere((spec) => spec.nullable));

export function isApiKeyField(name: string): name is ApiKeyField {
  return Object.hasOwn(API_KEY_COLUMNS, name);
}

export function isFilterableField(name: string): name is FilterableField {
  return isApiKeyField(name) && API_KEY_COLUMNS[name].filterable;
}

/** A fresh copy of what a stored null in `field` reads as (null where the field has no fallback). */
export function fallbackOf(field: ApiKeyField): unknown {
  const spec: ColumnSpec = API_KEY_COLUMNS[field];
  return spec.fallback === undefined ? null : structuredClone(spec.fallback);
}

/** The key-policy fields: `roll` copies them from a key to its successor. */
export const POLICY_FIELDS = ["expires_at", "owner_id", "scopes", "metadata", "rate_limits", "remaining", "refill", "allowed_ips"] as const;

export type PolicyField = (typeof POLICY_FIELDS)[number];

export type PolicyValues = Pick<ApiKeyColumnValues, PolicyField>;

/** The policy fields with no restriction (each one's fallback): what a key created without them holds. */
export function policyDefaults(): PolicyValues {
  return Object.fromEntries(POLICY_FIELDS.map((field) => [field, fallbackOf(field)])) as PolicyValues;
}

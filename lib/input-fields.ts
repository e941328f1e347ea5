// The fields the service's inputs take, described once: which fields each input accepts (the
// validators in validate-input.ts refuse any other) and what each holds, as JSON Schema. The
// admin router's bodies and its OpenAPI document are built from these same lists, so what the
// document says a body takes is what validation accepts.
import { ISO_DATE, MAX_YEAR } from "./filters";
import { MAX_ALLOWED_IPS } from "./ip-allow-list";
import { GRANTED_SCOPE, MAX_SCOPES, MAX_SCOPE_LENGTH } from "./scopes";

/** A JSON Schema (2020-12) object, as OpenAPI 3.1 embeds it. */
export type JsonSchema = { [keyword: string]: unknown };

export interface InputField {
  description: string;
  /** The values the field takes. Rules a schema cannot say (such as a byte bound) are in `description`. */
  schema: JsonSchema;
  /** Whether an update takes `null` to clear the field. */
  clearable?: boolean;
  example: unknown;
}

/** Longest `owner_id`, in characters. */
export const MAX_OWNER_ID_LENGTH = 255;
/** Largest `metadata`, in bytes of its UTF-8 JSON. */
export const MAX_METADATA_BYTES = 4096;
/**
 * Items in one list a caller passes: link ids per `add` or `remove`, keys per create or
 * delete call. Bounds the bind parameters of the statements they become.
 */
export const MAX_IDS = 1000;
/** Most rate limits on one key, and most characters in a rate limit's name. */
export const MAX_RATE_LIMITS = 10;
export const MAX_RATE_LIMIT_NAME_LENGTH = 64;
/** The longest rate-limit window, in seconds: 366 days, counted exactly with Redis, without it and during an outage. */
export const MAX_RATE_LIMIT_DURATION = 366 * 86_400;

/**
 * What an allow-list entry looks like, for the document: an IPv4 address or range exactly, an
 * IPv6 one by its characters (validation, through ipaddr.js, has the last word on those).
 */
const ALLOWED_IP_SHAPE =
  "^(?:(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?:/(?:3[0-2]|[12]?[0-9]))?" +
  "|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(?:/(?:12[0-8]|1[01][0-9]|[1-9]?[0-9]))?)$";

const wholeNumber = (minimum: number): JsonSchema => ({ type: "integer", minimum, maximum: Number.MAX_SAFE_INTEGER });

const idList = (what: string): InputField => ({
  description: `${what}, at most ${MAX_IDS} (repeats count once).`,
  schema: { type: "array", items: { type: "string", minLength: 1 }, maxItems: MAX_IDS },
  example: ["sc_01HZX4ZQ8Y"],
});

export const INPUT_FIELDS = {
  title: { description: "A name people recognise the key by; not empty.", schema: { type: "string", minLength: 1 }, example: "Storefront" },
  type: {
    description: "`publishable` keys identify a storefront; `secret` keys authenticate admin calls.",
    schema: { type: "string", enum: ["publishable", "secret"] },
    example: "publishable",
  },
  created_by: { description: "Who created the key.", schema: { type: "string" }, example: "user_01HZX4ZQ8Y" },
  expires_at: {
    description: `The instant after which the key never authenticates again, as ISO 8601; in the future, before the year ${MAX_YEAR + 1}. Not together with \`expires_in\`.`,
    schema: { type: "string", format: "date-time", pattern: ISO_DATE.source },
    clearable: true,
    example: "2030-01-01T00:00:00.000Z",
  },
  expires_in: {
    description: "Seconds from now after which the key never authenticates again, instead of `expires_at`.",
    schema: { type: "number", exclusiveMinimum: 0 },
    example: 2592000,
  },
  scopes: {
    description: `Secret keys only: what the key may do, as \`resource:action\` words of [a-z0-9_.-] joined by \`:\`; a \`*\` segment grants every value there. At most ${MAX_SCOPES} different scopes; repeats count once.`,
    schema: { type: "array", maxItems: MAX_SCOPES, items: { type: "string", pattern: GRANTED_SCOPE.source, maxLength: MAX_SCOPE_LENGTH } },
    example: ["orders:read", "products:*"],
  },
  owner_id: {
    description: "The account, organisation or tenant the key belongs to.",
    schema: { type: "string", minLength: 1, maxLength: MAX_OWNER_ID_LENGTH },
    clearable: true,
    example: "org_42",
  },
  metadata: {
    description: `The app's own JSON data, returned as given; at most ${MAX_METADATA_BYTES} bytes as JSON.`,
    // Any JSON object: said outright, as code generators read a bare `type: object` as an empty one.
    schema: { type: "object", additionalProperties: true },
    example: { team: "mobile" },
  },
  rate_limits: {
    description: `At most \`limit\` requests per \`duration\` seconds, per key, across every app instance; \`name\` unique per key. At most ${MAX_RATE_LIMITS} limits per key.`,
    schema: {
      type: "array",
      maxItems: MAX_RATE_LIMITS,
      items: {
        type: "object",
        properties: {
          name: { type: "string", minLength: 1, maxLength: MAX_RATE_LIMIT_NAME_LENGTH },
          limit: wholeNumber(1),
          duration: { type: "integer", minimum: 1, maximum: MAX_RATE_LIMIT_DURATION, description: "Seconds, at most 366 days." },
        },
        required: ["name", "limit", "duration"],
      },
    },
    example: [{ name: "per-minute", limit: 600, duration: 60 }],
  },
  remaining: {
    description: "A usage quota: successful uses left; null is unlimited.",
    schema: { ...wholeNumber(0), type: ["integer", "null"] },
    example: 10000,
  },
  refill: {
    description: "How `remaining` is topped up: set back to `amount` every `interval`; null for never.",
    schema: {
      type: ["object", "null"],
      properties: { amount: wholeNumber(1), interval: { type: "string", enum: ["day", "month"] } },
      required: ["amount", "interval"],
    },
    example: { amount: 10000, interval: "month" },
  },
  allowed_ips: {
    description: `The client addresses and CIDR ranges (IPv4 or IPv6) the key is accepted from, at most ${MAX_ALLOWED_IPS}; empty for any. Stored in a canonical form; an IPv4-mapped IPv6 address is its IPv4 address.`,
    schema: { type: "array", items: { type: "string", pattern: ALLOWED_IP_SHAPE, maxLength: 64 }, maxItems: MAX_ALLOWED_IPS },
    example: ["203.0.113.7", "10.0.0.0/8", "2001:db8::/32"],
  },
  revoked_by: { description: "Who revoked the key.", schema: { type: "string" }, example: "user_01HZX4ZQ8Y" },
  revoke_in: {
    description: "Seconds from now at which the revocation takes effect; zero, negative or absent means now.",
    schema: { type: "number" },
    example: 3600,
  },
  resource_type: {
    description: "The kind of resource the ids name; `sales_channel` when absent.",
    schema: { type: "string", minLength: 1 },
    example: "sales_channel",
  },
  add: idList("Resource ids to link"),
  remove: idList("Resource ids to unlink"),
} as const satisfies Record<string, InputField>;

export type InputFieldName = keyof typeof INPUT_FIELDS;

/** The policy fields create takes besides `title`, `type` and `created_by`. */
export const POLICY_INPUTS = ["expires_at", "expires_in", "scopes", "owner_id", "metadata", "rate_limits", "remaining", "refill", "allowed_ips"] as const satisfies readonly InputFieldName[];

/** The fields of each input: validation refuses any other. */
export const CREATE_INPUTS = ["title", "type", "created_by", ...POLICY_INPUTS] as const satisfies readonly InputFieldName[];
export const UPDATE_INPUTS = ["title", "expires_at", "scopes", "owner_id", "metadata", "rate_limits", "remaining", "refill", "allowed_ips"] as const satisfies readonly InputFieldName[];
export const REVOKE_INPUTS = ["revoked_by", "revoke_in"] as const satisfies readonly InputFieldName[];
export const LINK_INPUTS = ["resource_type", "add", "remove"] as const satisfies readonly InputFieldName[];

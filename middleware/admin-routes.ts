// The admin router's routes, described once. The router registers its handlers by walking this
// table (path, method, the scope a route takes, the query parameters and body fields it
// accepts), and the OpenAPI document is built from the same table, so the two cannot drift.
import { AUDIT_ACTIONS } from "../lib/audit-log";
import { API_KEY_COLUMNS, API_KEY_FIELDS, FILTERABLE_FIELDS, type FilterableField } from "../lib/columns";
import { FILTER_OPERATORS } from "../lib/filters";
import { CREATE_INPUTS, type InputFieldName, type JsonSchema, UPDATE_INPUTS } from "../lib/input-fields";

export const LIST_DEFAULT_LIMIT = 20;
export const LIST_MAX_LIMIT = 1000;
/** What an `:id` in a path must look like; anything else is refused before the store is asked. */
export const ID_PATTERN = /^[A-Za-z0-9_-]{1,100}$/;
/** What `order` takes: a field the filter language takes, ascending, or after `-` descending. */
export const ORDER_VALUES = FILTERABLE_FIELDS.flatMap((field) => [field, `-${field}`]);

export interface QueryParameter {
  description: string;
  /** The value once the query string is parsed (bracket notation makes objects and arrays). */
  schema: JsonSchema;
  /** Whether the parameter takes bracket notation (`created_at[$gt]=...`): OpenAPI's `deepObject` style. */
  nested?: boolean;
  example?: unknown;
}

const FILTER_NOTE = "A value, a list (`id[]=a&id[]=b`) or an operator map in bracket notation";

/** A filter on a column, as the filter language takes it: a value, a list, or an operator map. */
function filterParameter(field: FilterableField): QueryParameter {
  const { kind } = API_KEY_COLUMNS[field];
  const value: JsonSchema =
    kind === "date"
      ? { type: "string", format: "date-time", description: "An ISO 8601 instant (a date alone, `2026-01-01`, is taken too, as its midnight UTC)." }
      : kind === "type"
        ? { type: "string", enum: ["publishable", "secret"] }
        : { type: "string" };
  const operators = Object.fromEntries(
    FILTER_OPERATORS[kind].map((op) => [op, op === "$in" || op === "$nin" ? { type: "array", items: value } : op === "$exists" ? { type: "boolean" } : value]),
  );
  return {
    description: `Keys by \`${field}\`. ${FILTER_NOTE} (\`${field}[$ne]=...\`); operators: ${FILTER_OPERATORS[kind].join(" ")}.`,
    schema: { anyOf: [value, { type: "array", items: value }, { type: "object", properties: operators, additionalProperties: false }] },
    nested: true,
    example: kind === "date" ? { $gte: "2026-01-01T00:00:00Z" } : undefined,
  };
}

const NESTED_FILTERS: QueryParameter = {
  description:
    "Filters any of which (`$or`) or all of which (`$and`) must match, in bracket notation indexed from 0: `$or[0][title]=Web&$or[1][type]=secret`. Each item takes the filters of this route, nested at most 8 deep.",
  schema: { type: "array", items: { type: "object" }, minItems: 1 },
  nested: true,
};

const FIELDS: QueryParameter = {
  description: `The fields to return, comma-separated, among: ${API_KEY_FIELDS.join(", ")}; \`id\` is always included.`,
  schema: { type: "string", pattern: `^(${API_KEY_FIELDS.join("|")})(,(${API_KEY_FIELDS.join("|")}))*$` },
  example: "id,title,revoked_at",
};

const WITH_DELETED: QueryParameter = {
  description: "Whether soft-deleted keys are shown.",
  schema: { type: "boolean", default: false },
};

/** Every query parameter a route takes, by name. */
export const QUERY_PARAMETERS = {
  fields: FIELDS,
  offset: { description: "How many records to skip.", schema: { type: "integer", minimum: 0, maximum: Number.MAX_SAFE_INTEGER, default: 0 } },
  limit: { description: "How many records to return at most.", schema: { type: "integer", minimum: 0, maximum: LIST_MAX_LIMIT, default: LIST_DEFAULT_LIMIT } },
  order: {
    description: "The field to order by, ascending, or after `-` descending. Default: `id`, which is creation order.",
    schema: { type: "string", enum: ORDER_VALUES },
    example: "-created_at",
  },
  with_deleted: WITH_DELETED,
  q: { description: "Words that must each appear, case-insensitively, in `title` or `redacted`.", schema: { type: "string" }, example: "storefront" },
  id: filterParameter("id"),
  title: filterParameter("title"),
  token: { ...filterParameter("token"), description: `Keys by token: a publishable token, or a secret one (matched through its hash). ${FILTER_NOTE}; operators: ${FILTER_OPERATORS.token.join(" ")}.` },
  type: filterParameter("type"),
  owner_id: filterParameter("owner_id"),
  expires_at: filterParameter("expires_at"),
  created_at: filterParameter("created_at"),
  updated_at: filterParameter("updated_at"),
  deleted_at: filterParameter("deleted_at"),
  revoked_at: filterParameter("revoked_at"),
  $and: NESTED_FILTERS,
  $or: NESTED_FILTERS,
  key_id: { description: "Events of this key; a list (`key_id[]=a&key_id[]=b`) for any of them.", schema: { anyOf: [{ type: "string" }, { type: "array", items: { type: "string" } }] } },
  actor_id: {
    description: "Events made by this actor: a key id (the router records the calling key), or what a service caller passed as `actor`.",
    schema: { anyOf: [{ type: "string" }, { type: "array", items: { type: "string" } }] },
  },
  action: {
    description: "Events of this action, or of any in a list.",
    schema: { anyOf: [{ type: "string", enum: AUDIT_ACTIONS }, { type: "array", items: { type: "string", enum: AUDIT_ACTIONS } }] },
  },
  from: { description: "The first hour counted: the buckets from this instant's hour. Default: 30 days before `to`.", schema: { type: "string", format: "date-time" } },
  to: { description: "The last instant counted. Default: now.", schema: { type: "string", format: "date-time" } },
  granularity: { description: "Buckets of an hour, or of a UTC day.", schema: { type: "string", enum: ["hour", "day"], default: "hour" } },
} as const satisfies Record<string, QueryParameter>;

export type QueryParameterName = keyof typeof QUERY_PARAMETERS;

/** What a successful answer holds. */
export type AnswerShape = "api_key" | "api_key_selection" | "list" | "deleted" | "document" | "audit_events" | "usage";

export interface AdminRoute {
  /** The handler's name, and the operation's `operationId`. */
  operation: string;
  method: "get" | "post" | "delete";
  /** In Express's form, relative to where the router is mounted. */
  path: string;
  /** The scopes of the router's `scopes` option that the route takes. */
  scope: "read" | "write";
  summary: string;
  description?: string;
  query?: readonly QueryParameterName[];
  /** A JSON body and the fields it accepts (none: `{}`); absent for routes without a body. */
  body?: { fields: readonly InputFieldName[]; required?: readonly InputFieldName[]; atLeastOne?: boolean; example: Record<string, unknown> };
  /** An option of the router that the route calls: an error with a 4xx status it throws keeps that status. */
  hook?: "findMissingSalesChannels";
  answer: AnswerShape;
  /** What the answer shows, when more than the key. */
  answerNote?: string;
  /** Whether the answer is a key the client did not name (a new one), so OpenAPI `links` lead from its id to the routes on it. */
  linksToKey?: boolean;
}

/** The fields create takes over HTTP: `created_by` is the acting key, never the client's word. */
const CREATE_BODY = CREATE_INPUTS.filter((field) => field !== "created_by");

// Routes are matched in this order: `/openapi.json`, `/audit-log` and `/usage` come before `/:id`, which would take them.
export const ADMIN_ROUTES = [
  {
    operation: "openapi",
    method: "get",
    path: "/openapi.json",
    scope: "read",
    summary: "This document",
    description: "The OpenAPI 3.1 document of these routes, with `servers` set to where the router is mounted.",
    answer: "document",
  },
  {
    operation: "auditLog",
    method: "get",
    path: "/audit-log",
    scope: "read",
    summary: "The audit log",
    description: "Every change to a key, oldest first: who made it (`actor_id`), when, and each changed field before and after; never a token or hash.",
    query: ["key_id", "actor_id", "action", "offset", "limit"],
    answer: "audit_events",
  },
  {
    operation: "usageOfAll",
    method: "get",
    path: "/usage",
    scope: "read",
    summary: "Verifications of every key",
    description: "Verifications by hour or UTC day, key and code, oldest first; tokens that name no key are counted under `key_id: null`.",
    query: ["from", "to", "granularity"],
    answer: "usage",
  },
  {
    operation: "list",
    method: "get",
    path: "/",
    scope: "read",
    summary: "List keys",
    description: "Keys matching every filter given, with the number of them all.",
    query: ["fields", "offset", "limit", "order", "with_deleted", "q", "id", "title", "token", "type", "owner_id", "expires_at", "created_at", "updated_at", "deleted_at", "revoked_at", "$and", "$or"],
    answer: "list",
  },
  {
    operation: "create",
    method: "post",
    path: "/",
    scope: "write",
    summary: "Create a key",
    description: "`created_by` is the acting key's id. A secret key's plaintext token is in this answer and in no later one.",
    body: { fields: CREATE_BODY, required: ["title", "type"], example: { title: "Storefront", type: "publishable" } },
    answer: "api_key",
    linksToKey: true,
  },
  {
    operation: "retrieve",
    method: "get",
    path: "/:id",
    scope: "read",
    summary: "Retrieve a key",
    query: ["fields", "with_deleted"],
    answer: "api_key_selection",
    answerNote: "With `sales_channels` for a publishable key, unless `fields` is given.",
  },
  {
    operation: "usage",
    method: "get",
    path: "/:id/usage",
    scope: "read",
    summary: "A key's verifications",
    description: "Verifications of the key by hour or UTC day and code, oldest first; counts reach the store within the service's `lastUsedFlushInterval`.",
    query: ["from", "to", "granularity"],
    answer: "usage",
  },
  {
    operation: "update",
    method: "post",
    path: "/:id",
    scope: "write",
    summary: "Update a key",
    description: "Changes the fields given, at least one; `null` clears `expires_at` and `owner_id`.",
    body: { fields: UPDATE_INPUTS, atLeastOne: true, example: { title: "Storefront (EU)", expires_at: null } },
    answer: "api_key",
  },
  {
    operation: "delete",
    method: "delete",
    path: "/:id",
    scope: "write",
    summary: "Delete a key",
    description: "Final. Only a revoked key may be deleted: any other is refused with 400 `not_allowed`.",
    answer: "deleted",
  },
  {
    operation: "softDelete",
    method: "post",
    path: "/:id/soft-delete",
    scope: "write",
    summary: "Soft-delete a key",
    description: "Hides the key from reads (unless `with_deleted=true`) and refuses it everywhere, until it is restored.",
    body: { fields: [], example: {} },
    answer: "api_key",
  },
  {
    operation: "restore",
    method: "post",
    path: "/:id/restore",
    scope: "write",
    summary: "Restore a soft-deleted key",
    description: "The key works again, unless it was revoked or has expired meanwhile.",
    body: { fields: [], example: {} },
    answer: "api_key",
  },
  {
    operation: "revoke",
    method: "post",
    path: "/:id/revoke",
    scope: "write",
    summary: "Revoke a key",
    description:
      "`revoked_by` is the acting key's id. With `revoke_in`, the key keeps working until then. A key already revoked is refused with 400 `invalid_data`; a scheduled revocation may be brought forward, never pushed back.",
    body: { fields: ["revoke_in"], example: { revoke_in: 3600 } },
    answer: "api_key",
  },
  {
    operation: "roll",
    method: "post",
    path: "/:id/roll",
    scope: "write",
    summary: "Roll a key",
    description:
      "In one transaction: revokes the key (now, or after `revoke_in` seconds) and creates its successor, with the same title, type, creator, links and policy. A key already revoked (or scheduled to be) or expired is refused with 400 `not_allowed`.",
    body: { fields: ["revoke_in"], example: { revoke_in: 3600 } },
    answer: "api_key",
    answerNote: "The successor, with its plaintext token.",
    linksToKey: true,
  },
  {
    operation: "salesChannels",
    method: "post",
    path: "/:id/sales-channels",
    scope: "write",
    summary: "Link or unlink sales channels",
    description: "Publishable keys only; an id both added and removed is refused.",
    body: { fields: ["add", "remove"], example: { add: ["sc_01HZX4ZQ8Y"] } },
    hook: "findMissingSalesChannels",
    answer: "api_key",
    answerNote: "With its `sales_channels`.",
  },
] as const satisfies readonly AdminRoute[];

export type AdminOperation = (typeof ADMIN_ROUTES)[number]["operation"];

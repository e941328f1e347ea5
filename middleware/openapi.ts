// The admin router's OpenAPI 3.1 document, built from what the router itself runs on: its route
// table (middleware/admin-routes.ts), the input fields validation accepts (lib/input-fields.ts),
// the key's columns (lib/columns.ts) and the error types with their statuses (lib/errors.ts).
// Nothing here is a second copy of those, so the document follows them when they change.
import { AUDIT_ACTIONS } from "../lib/audit-log";
import { API_KEY_COLUMNS, API_KEY_FIELDS, type ApiKeyField, type ColumnSpec } from "../lib/columns";
import { ERROR_STATUS, type ApiKeyErrorType } from "../lib/errors";
import { INPUT_FIELDS, type InputFieldName, type JsonSchema } from "../lib/input-fields";
import { VERIFY_CODES } from "../lib/types";
import { ADMIN_ROUTES, type AdminRoute, type AnswerShape, ID_PATTERN, QUERY_PARAMETERS, type QueryParameter } from "./admin-routes";

const SECURITY_SCHEME = "secretKey";

/** `schema` that also takes null. */
function orNull(schema: JsonSchema): JsonSchema {
  const types = schema.type === undefined ? undefined : ([] as unknown[]).concat(schema.type);
  if (!types) return { anyOf: [schema, { type: "null" }] };
  return types.includes("null") ? schema : { ...schema, type: [...types, "null"] };
}

/**
 * A column's values as the JSON of an answer has them. JSON and integer columns hold what their
 * input field takes; one that no input sets (token_format) is a plain integer.
 */
function columnSchema(field: ApiKeyField): JsonSchema {
  const spec: ColumnSpec = API_KEY_COLUMNS[field];
  const value: JsonSchema =
    spec.kind === "date"
      ? { type: "string", format: "date-time" }
      : spec.kind === "type"
        ? INPUT_FIELDS.type.schema
        : spec.kind === "json" || spec.kind === "integer"
          ? field in INPUT_FIELDS
            ? INPUT_FIELDS[field as keyof typeof INPUT_FIELDS].schema
            : { type: "integer" }
          : { type: "string" };
  return { ...(spec.nullable ? orNull(value) : value), description: spec.description };
}

const API_KEY_PROPERTIES: Record<string, JsonSchema> = {
  ...Object.fromEntries(API_KEY_FIELDS.map((field) => [field, columnSchema(field)])),
  sales_channels: {
    description: "The sales channels a publishable key is linked to, on the answers that say so.",
    type: "array",
    items: { type: "object", properties: { id: { type: "string" } }, required: ["id"], additionalProperties: false },
  },
};

/** An example key as answers show it: every column, so the compiler notices a new one. */
const EXAMPLE_KEY: Record<ApiKeyField, unknown> = {
  id: "apk_01HZX4ZQ8Y3V6K2J9T5N7B1C0D",
  token: "pk_5cWgHQUkwdmsaFIxzZR9l75pEScWRiPDiTKIwTVITV7z2MDQw2",
  redacted: "pk_5cW***Qw2",
  title: "Storefront",
  type: "publishable",
  last_used_at: null,
  created_by: "apk_01HZX3M1QW5E8R7T6Y4U2I0O9P",
  created_at: "2026-01-15T09:30:00.000Z",
  updated_at: "2026-01-15T09:30:00.000Z",
  deleted_at: null,
  revoked_by: null,
  revoked_at: null,
  expires_at: null,
  owner_id: "org_42",
  scopes: [],
  metadata: { team: "mobile" },
  rate_limits: [],
  remaining: null,
  refill: null,
  allowed_ips: [],
  token_format: 2,
};

/** A page of a list: its items under `name`, each a `schema`, with the count of every match. */
function pageOf(name: string, schema: string, what: string): JsonSchema {
  return {
    type: "object",
    properties: {
      [name]: { type: "array", items: { $ref: `#/components/schemas/${schema}` } },
      count: { type: "integer", minimum: 0, description: `How many ${what} match, across every page.` },
      offset: { type: "integer", minimum: 0 },
      limit: { type: "integer", minimum: 0 },
    },
    required: [name, "count", "offset", "limit"],
    additionalProperties: false,
  };
}

const ANSWERS: Record<AnswerShape, { schema: JsonSchema; example?: unknown }> = {
  api_key: {
    schema: { type: "object", properties: { api_key: { $ref: "#/components/schemas/ApiKey" } }, required: ["api_key"], additionalProperties: false },
    example: { api_key: { ...EXAMPLE_KEY, sales_channels: [{ id: "sc_01HZX4ZQ8Y" }] } },
  },
  api_key_selection: {
    schema: {
      type: "object",
      properties: { api_key: { $ref: "#/components/schemas/ApiKeySelection" } },
      required: ["api_key"],
      additionalProperties: false,
    },
    example: { api_key: { id: EXAMPLE_KEY.id, title: EXAMPLE_KEY.title, revoked_at: EXAMPLE_KEY.revoked_at } },
  },
  list: {
    schema: pageOf("api_keys", "ApiKeySelection", "keys"),
    example: { api_keys: [EXAMPLE_KEY], count: 1, offset: 0, limit: 20 },
  },
  deleted: {
    schema: {
      type: "object",
      properties: { id: { type: "string" }, object: { const: "api_key" }, deleted: { const: true } },
      required: ["id", "object", "deleted"],
      additionalProperties: false,
    },
    example: { id: EXAMPLE_KEY.id, object: "api_key", deleted: true },
  },
  document: {
    schema: {
      type: "object",
      description: "An OpenAPI 3.1 document: this one.",
      properties: {
        openapi: { type: "string", pattern: "^3\\.1\\.\\d+$" },
        info: {
          type: "object",
          properties: { title: { type: "string" }, version: { type: "string" }, description: { type: "string" }, license: { type: "object" } },
          required: ["title", "version"],
        },
        servers: { type: "array", items: { type: "object", properties: { url: { type: "string" } }, required: ["url"] } },
        security: { type: "array", items: { type: "object" } },
        tags: { type: "array", items: { type: "object", properties: { name: { type: "string" } }, required: ["name"] } },
        paths: { type: "object", additionalProperties: { type: "object" } },
        components: { type: "object", additionalProperties: { type: "object" } },
      },
      required: ["openapi", "info", "paths"],
    },
  },
  audit_events: {
    schema: pageOf("events", "AuditEvent", "events"),
    example: {
      events: [
        {
          id: "aev_01HZX5A1B2C3D4E5F6G7H8J9K0",
          action: "revoked",
          key_id: EXAMPLE_KEY.id,
          actor_id: "apk_01HZX3M1QW5E8R7T6Y4U2I0O9P",
          at: "2026-02-01T10:00:00.000Z",
          changes: { revoked_at: { before: null, after: "2026-02-01T10:00:00.000Z" }, revoked_by: { before: null, after: "apk_01HZX3M1QW5E8R7T6Y4U2I0O9P" } },
          details: null,
        },
      ],
      count: 1,
      offset: 0,
      limit: 20,
    },
  },
  usage: {
    schema: { type: "object", properties: { usage: { type: "array", items: { $ref: "#/components/schemas/UsageBucket" } } }, required: ["usage"], additionalProperties: false },
    example: {
      usage: [{ key_id: EXAMPLE_KEY.id, time: "2026-02-01T10:00:00.000Z", ...Object.fromEntries(VERIFY_CODES.map((code) => [code, code === "valid" ? 120 : 0])) }],
    },
  },
};

/** Each changed field of an audit event. */
const AUDIT_CHANGE: JsonSchema = {
  type: "object",
  properties: { before: { description: "The value before the change, as JSON has it; null for none." }, after: { description: "The value after it." } },
  required: ["before", "after"],
  additionalProperties: false,
};

/** An error status, or `4XX` for any other 4xx status (from an app's hook). */
type ErrorStatus = number | "4XX";

/** What each error status means on these routes. */
const STATUS_MEANING: Record<ErrorStatus, string> = {
  400: "The request is malformed (`invalid_data`: the message says what is wrong), or the action is not allowed on this key (`not_allowed`).",
  401: "No authenticated caller.",
  403:
    "The calling key lacks a scope the router's `scopes` option requires (by default `api_keys:read` to read, and `api_keys:write` too to change, for keys with scopes), or the change would give or manage more than the calling key holds; the message names what is missing.",
  404: "No key has this id.",
  413: "The body is larger than 16 kB (also after gzip inflation).",
  415: "The body is not `application/json`, or its charset or `Content-Encoding` is not supported.",
  500: "An unexpected failure; its cause is logged, never sent.",
  503: "The store is unavailable.",
  "4XX": "An error with this status thrown by the router's `findMissingSalesChannels` option, as `invalid_data`.",
};

/** The error types an error status carries: those of lib/errors.ts, and `invalid_data` for the statuses of a refused body. */
function typesOf(status: ErrorStatus): ApiKeyErrorType[] {
  const types = (Object.keys(ERROR_STATUS) as ApiKeyErrorType[]).filter((type) => ERROR_STATUS[type] === status);
  return types.length > 0 ? types : ["invalid_data"];
}

/** The error statuses a route can answer with. */
function errorStatuses(route: AdminRoute): ErrorStatus[] {
  const statuses: ErrorStatus[] = [400, 401, 403];
  if (route.path.includes(":id")) statuses.push(404);
  if (route.body) statuses.push(413, 415);
  if (route.hook) statuses.push("4XX");
  return [...statuses, 500, 503];
}

function errorResponse(status: ErrorStatus): JsonSchema {
  const types = typesOf(status);
  return {
    description: STATUS_MEANING[status],
    content: {
      "application/json": {
        schema: {
          type: "object",
          properties: { type: { type: "string", enum: types }, message: { type: "string" } },
          required: ["type", "message"],
          additionalProperties: false,
        },
        example: { type: types[0], message: status === 404 ? `API Key with id: ${String(EXAMPLE_KEY.id)} was not found` : STATUS_MEANING[status] },
      },
    },
  };
}

/** `/:id/revoke` as OpenAPI writes it: `/{id}/revoke`. */
function openApiPath(expressPath: string): string {
  return expressPath.replace(/:([A-Za-z_]+)/g, "{$1}");
}

function parametersOf(route: AdminRoute): JsonSchema[] {
  const path: JsonSchema[] = route.path.includes(":id")
    ? [{ name: "id", in: "path", required: true, description: "The key's id.", schema: { type: "string", pattern: ID_PATTERN.source }, example: EXAMPLE_KEY.id }]
    : [];
  const query = (route.query ?? []).map((name) => {
    const parameter: QueryParameter = QUERY_PARAMETERS[name];
    return {
      name,
      in: "query",
      description: parameter.description,
      schema: parameter.schema,
      ...(parameter.nested ? { style: "deepObject", explode: true } : {}),
      ...(parameter.example === undefined ? {} : { example: parameter.example }),
    };
  });
  return [...path, ...query];
}

/** The rules of lib/validate-input.ts that tie one field to another, for a body taking `fields`. */
function crossFieldRules(fields: readonly InputFieldName[]): JsonSchema {
  const rules: JsonSchema[] = [];
  if (fields.includes("expires_at") && fields.includes("expires_in")) rules.push({ not: { required: ["expires_at", "expires_in"] } });
  if (fields.includes("type") && fields.includes("scopes")) {
    rules.push({ if: { properties: { type: { const: "publishable" } }, required: ["type"] }, then: { properties: { scopes: { maxItems: 0 } } } });
  }
  return rules.length === 0 ? {} : { allOf: rules };
}

function requestBodyOf(route: AdminRoute): JsonSchema | undefined {
  if (!route.body) return undefined;
  const clears = route.operation === "update";
  const properties = Object.fromEntries(
    route.body.fields.map((name) => {
      const field = INPUT_FIELDS[name];
      const schema = clears && "clearable" in field ? orNull(field.schema) : field.schema;
      return [name, { ...schema, description: field.description, examples: [field.example] }];
    }),
  );
  return {
    required: true,
    description: route.body.fields.length === 0 ? "Send `{}`: the route takes no fields." : "Fields not listed are refused.",
    content: {
      "application/json": {
        schema: {
          type: "object",
          properties,
          ...(route.body.required ? { required: route.body.required } : {}),
          ...(route.body.atLeastOne ? { minProperties: 1 } : {}),
          ...crossFieldRules(route.body.fields),
          additionalProperties: false,
        },
        example: route.body.example,
      },
    },
  };
}

/** From an answer's key to each operation on a key, through its id. */
const KEY_LINKS: Record<string, JsonSchema> = Object.fromEntries(
  (ADMIN_ROUTES as readonly AdminRoute[])
    .filter((route) => route.path.includes(":id"))
    .map((route) => [
      route.operation,
      { operationId: route.operation, parameters: { id: "$response.body#/api_key/id" }, description: `${route.summary}: this key.` },
    ]),
);

const TAG = "API keys";

function operationOf(route: AdminRoute): JsonSchema {
  const answer = ANSWERS[route.answer];
  const requestBody = requestBodyOf(route);
  const scopeNote = `Takes the router's \`${route.scope}\` scopes.`;
  return {
    operationId: route.operation,
    summary: route.summary,
    description: [route.description, scopeNote].filter(Boolean).join(" "),
    tags: [TAG],
    parameters: parametersOf(route),
    ...(requestBody ? { requestBody } : {}),
    responses: {
      200: {
        description: ["Done.", route.answerNote].filter(Boolean).join(" "),
        content: { "application/json": { schema: answer.schema, ...(answer.example === undefined ? {} : { example: answer.example }) } },
        ...(route.linksToKey ? { links: KEY_LINKS } : {}),
      },
      ...Object.fromEntries(errorStatuses(route).map((status) => [status, { $ref: `#/components/responses/Error${status}` }])),
    },
  };
}

function buildDocument({ version, license }: { version: string; license: string }): JsonSchema {
  const paths: Record<string, Record<string, JsonSchema>> = {};
  for (const route of ADMIN_ROUTES as readonly AdminRoute[]) {
    (paths[openApiPath(route.path)] ??= {})[route.method] = operationOf(route);
  }
  // 405 is no listed operation's answer but every path's answer to the methods it does not
  // list, so the document describes it in words: a response component no operation uses is
  // one linters rightly flag.
  const statuses = [...new Set((ADMIN_ROUTES as readonly AdminRoute[]).flatMap(errorStatuses))];
  return {
    openapi: "3.1.0",
    info: {
      title: "express-api-keys admin API",
      version,
      license: { name: license, identifier: license },
      description:
        "Manage API keys: the admin routes of Medusa's API Key Module, with key policy (expiry, scopes, owner, metadata, rate limits, quotas) and soft delete. Every answer carries `Cache-Control: no-store`. A method a path does not list is answered 405, with the body every error has (`type` `invalid_data` and a `message`) and an `Allow` header listing the methods the path takes; `OPTIONS` on any path answers 204 with the same `Allow`.",
    },
    security: [{ [SECURITY_SCHEME]: [] }],
    tags: [{ name: TAG, description: "Publishable and secret keys: create, read, change, revoke, roll and delete them, and this document." }],
    paths,
    components: {
      securitySchemes: {
        [SECURITY_SCHEME]: {
          type: "http",
          scheme: "basic",
          description:
            "A secret key (`sk_...`) as the username, with an empty password (`curl -u 'sk_...:'`), checked by the apiKeyAuth the app mounts in front of the router; a bare `Basic sk_...` is accepted too. A missing or invalid key is 401 `unauthorized`; a key over its rate limit or quota is 429 `rate_limited` or `usage_exceeded`.",
        },
      },
      schemas: {
        ApiKey: { type: "object", properties: API_KEY_PROPERTIES, required: API_KEY_FIELDS, additionalProperties: false },
        AuditEvent: {
          type: "object",
          description: "One change to a key.",
          properties: {
            id: { type: "string", description: "`aev_` and a ULID." },
            action: { type: "string", enum: AUDIT_ACTIONS },
            key_id: { type: "string" },
            actor_id: { type: ["string", "null"], description: "The calling key, or the `actor` a service caller named; null for neither." },
            at: { type: "string", format: "date-time" },
            changes: {
              type: "object",
              description: "Each changed field by name (`links.<resource_type>` for links, `successor_id` for a roll); never the token.",
              additionalProperties: AUDIT_CHANGE,
            },
            details: {
              type: ["object", "null"],
              description: "Why the change was made, as its caller said: a leak report's `url` and `source`, say.",
              additionalProperties: { type: "string" },
            },
          },
          required: ["id", "action", "key_id", "actor_id", "at", "changes", "details"],
          additionalProperties: false,
        },
        UsageBucket: {
          type: "object",
          description: "Verifications of a key in one hour or UTC day, by code.",
          properties: {
            key_id: { type: ["string", "null"] },
            time: { type: "string", format: "date-time", description: "The bucket's start." },
            ...Object.fromEntries(VERIFY_CODES.map((code) => [code, { type: "integer", minimum: 0 }])),
          },
          required: ["key_id", "time", ...VERIFY_CODES],
          additionalProperties: false,
        },
        ApiKeySelection: {
          type: "object",
          description: "A key with every field, or with those `fields` selects (`id` always).",
          properties: API_KEY_PROPERTIES,
          required: ["id"],
          additionalProperties: false,
        },
      },
      responses: Object.fromEntries(statuses.map((status) => [`Error${status}`, errorResponse(status)])),
    },
  };
}

let built: JsonSchema | undefined;

/**
 * The document, with `servers` at `mountPath` (the router's `req.baseUrl`): the router does not
 * know where it is mounted until a request comes. The rest is built once.
 */
export function openApiDocument(mountPath: string): JsonSchema {
  // The package's own version and license, through its own name, so the same line works from source and from dist/.
  built ??= buildDocument(require("express-api-keys/package.json") as { version: string; license: string });
  return { ...built, servers: [{ url: mountPath || "/", description: "Where the app mounts the router." }] };
}

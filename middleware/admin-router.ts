// apiKeyAdminRouter(): the reference's admin REST routes for managing keys, as an Express
// router. Mount it behind apiKeyAuth({ type: "secret" }), usually at /admin/api-keys.
import type { IncomingMessage } from "node:http";
import type { NextFunction, Request, Response, Router } from "express";
import { ApiKeyError } from "../lib/errors";
import { API_KEY_FIELDS, normalizeFilters } from "../lib/filters";
import { serviceOrDefault } from "../lib/initialize";
import type { ApiKeyService } from "../lib/service";
import type { ApiKeyDTO, ApiKeyField, FilterableApiKeyProps, FindConfig } from "../lib/types";
import { validateBody, validateCreate, validateLinks, validateRevoke, validateUpdate } from "../lib/validate-input";
import { QueryStringError, parseQueryString } from "./query-string";
import type { AuthenticatedRequest } from "./request-context";

export interface AdminRouterOptions {
  /** The service to manage keys with. Default: the one the latest `initialize()` returned. */
  service?: ApiKeyService;
  /** Who is acting, recorded as `created_by` and `revoked_by`. Default: `req.auth_context.actor_id`. */
  actor?: (req: IncomingMessage) => string | undefined;
  /** Returns the ids among `ids` that name no sales channel, so that linking them is refused. Default: every id is accepted. */
  findMissingSalesChannels?: (ids: string[]) => Promise<string[]>;
}

const LIST_DEFAULT_LIMIT = 20;
const LIST_MAX_LIMIT = 1000;
const ID_PATTERN = /^[A-Za-z0-9_-]{1,100}$/;
const LIST_PARAMETERS = [
  "fields", "offset", "limit", "order", "with_deleted",
  "q", "id", "title", "token", "type", "created_at", "updated_at", "deleted_at", "revoked_at", "$and", "$or",
];

type Handler = (req: Request, res: Response) => Promise<void>;

function invalidRequest(message: string): ApiKeyError {
  return new ApiKeyError("invalid_data", `Invalid request: ${message}`);
}

/**
 * Runs a synchronous validation of the request, giving its `invalid_data` error the
 * reference's "Invalid request: " form. Errors from the service itself keep their own words.
 */
function validated<T>(check: () => T): T {
  try {
    return check();
  } catch (error) {
    if (error instanceof ApiKeyError && error.type === "invalid_data") throw invalidRequest(error.message);
    throw error;
  }
}

function integerParameter(value: unknown, name: string, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback;
  const number = typeof value === "string" && /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!(number >= min && number <= max)) throw invalidRequest(`'${name}' must be an integer from ${min} to ${max}`);
  return number;
}

function fieldList(value: unknown, name: string): ApiKeyField[] {
  const fields = typeof value === "string" ? value.split(",").filter(Boolean) : [];
  const unknown = fields.find((field) => !API_KEY_FIELDS.includes(field as ApiKeyField));
  if (typeof value !== "string" || fields.length === 0 || unknown !== undefined) {
    throw invalidRequest(`'${name}' must be a comma-separated list of ${API_KEY_FIELDS.join(", ")}`);
  }
  return fields as ApiKeyField[];
}

/** Query strings only carry text: turn `$exists=true` into the boolean the filter language expects. */
function withBooleans(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withBooleans);
  if (typeof value !== "object" || value === null) return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, inner]) => [
      key,
      key === "$exists" && (inner === "true" || inner === "false") ? inner === "true" : withBooleans(inner),
    ]),
  );
}

/** The request's query string, parsed from the raw URL, holding only the `allowed` parameters. */
function queryOf(url: string, allowed: readonly string[]): Record<string, unknown> {
  let query: Record<string, unknown>;
  try {
    query = parseQueryString(url.includes("?") ? url.slice(url.indexOf("?") + 1) : "");
  } catch (error) {
    if (error instanceof QueryStringError) throw invalidRequest(error.message);
    throw error;
  }
  const unknown = Object.keys(query).filter((name) => !allowed.includes(name));
  if (unknown.length > 0) throw invalidRequest(`Unrecognized fields: ${unknown.map((name) => `'${name.slice(0, 40)}'`).join(", ")}`);
  return query;
}

function listQuery(url: string): { filters: FilterableApiKeyProps; config: FindConfig; offset: number; limit: number } {
  const { fields, offset, limit, order, with_deleted, ...filters } = queryOf(url, LIST_PARAMETERS);
  if (with_deleted !== undefined && with_deleted !== "true" && with_deleted !== "false") {
    throw invalidRequest("'with_deleted' must be true or false");
  }
  const config: FindConfig = {
    skip: integerParameter(offset, "offset", 0, Number.MAX_SAFE_INTEGER, 0),
    take: integerParameter(limit, "limit", 0, LIST_MAX_LIMIT, LIST_DEFAULT_LIMIT),
    withDeleted: with_deleted === "true",
  };
  if (fields !== undefined) config.select = fieldList(fields, "fields");
  if (order !== undefined) {
    const match = typeof order === "string" ? /^(-?)([a-z_]+)$/.exec(order) : null;
    if (!match || !API_KEY_FIELDS.includes(match[2] as ApiKeyField)) {
      throw invalidRequest(`'order' must be a field, or a field after '-' for descending order, among ${API_KEY_FIELDS.join(", ")}`);
    }
    config.order = { [match[2]!]: match[1] ? "DESC" : "ASC" };
  }
  const typedFilters = withBooleans(filters) as FilterableApiKeyProps;
  // Validated here too, so that a bad filter reads as a bad request; the service checks again.
  validated(() => normalizeFilters(typedFilters, (token) => token));
  return { filters: typedFilters, config, offset: config.skip!, limit: config.take! };
}

export function apiKeyAdminRouter(options: AdminRouterOptions = {}): Router {
  // Loaded here so that apps using only the middleware (say, on Connect) need no Express.
  const express = require("express") as typeof import("express");
  const { service, findMissingSalesChannels } = options;
  const actorOf = options.actor ?? ((req: IncomingMessage) => (req as AuthenticatedRequest).auth_context?.actor_id);
  const router = express.Router();

  const keys = () => serviceOrDefault(service);

  function idOf(req: Request): string {
    const raw: unknown = req.params.id;
    const id = typeof raw === "string" ? raw : "";
    if (!ID_PATTERN.test(id)) throw invalidRequest("'id' must be an api key id such as apk_01HZX…");
    return id;
  }

  /** Retrieves a key, with the reference's admin wording when there is none. */
  function retrieve(id: string, select?: ApiKeyField[]): Promise<ApiKeyDTO> {
    return keys()
      .retrieveApiKey(id, select && { select })
      .catch((error: unknown) => {
        const missing = error instanceof ApiKeyError && error.type === "not_found";
        throw missing ? new ApiKeyError("not_found", `API Key with id: ${id} was not found`) : error;
      });
  }

  async function withLinks(key: ApiKeyDTO): Promise<ApiKeyDTO & { sales_channels?: { id: string }[] }> {
    if (key.type !== "publishable") return key;
    const ids = await keys().listLinks(key.id);
    return { ...key, sales_channels: ids.map((id) => ({ id })) };
  }

  const route = (handler: Handler) => (req: Request, res: Response, next: NextFunction) => {
    // Fail closed: the router must never serve anyone it cannot name.
    if (!actorOf(req)) {
      next(new ApiKeyError("unauthorized", "No authenticated actor: mount apiKeyAuth({ type: \"secret\" }) in front of the admin router, or pass `actor`"));
      return;
    }
    handler(req, res).catch(next);
  };

  router.use(express.json({ limit: "16kb" }));

  router.get("/", route(async (req, res) => {
    const { filters, config, offset, limit } = listQuery(req.url);
    const [api_keys, count] = await keys().listAndCountApiKeys(filters, config);
    res.json({ api_keys, count, offset, limit });
  }));

  router.post("/", route(async (req, res) => {
    const input = validated(() => validateCreate({ ...validateBody(req.body, ["title", "type"]), created_by: actorOf(req) }));
    const created = await keys().createApiKeys(input);
    res.json({ api_key: created });
  }));

  router.get("/:id", route(async (req, res) => {
    const id = idOf(req);
    const query = queryOf(req.url, ["fields"]);
    const select = query.fields === undefined ? undefined : fieldList(query.fields, "fields");
    const key = await retrieve(id, select);
    res.json({ api_key: select ? key : await withLinks(key) });
  }));

  router.post("/:id", route(async (req, res) => {
    const id = idOf(req);
    const input = validated(() => validateUpdate(validateBody(req.body, ["title"])));
    const updated = await keys().updateApiKeys(id, input);
    res.json({ api_key: await withLinks(updated) });
  }));

  router.delete("/:id", route(async (req, res) => {
    const id = idOf(req);
    await retrieve(id);
    await keys().deleteApiKeys(id);
    res.json({ id, object: "api_key", deleted: true });
  }));

  router.post("/:id/revoke", route(async (req, res) => {
    const id = idOf(req);
    const body = validated(() => validateRevoke({ ...validateBody(req.body, ["revoke_in"]), revoked_by: actorOf(req) }));
    const revoked = await keys().revoke(id, body);
    res.json({ api_key: await withLinks(revoked) });
  }));

  router.post("/:id/roll", route(async (req, res) => {
    const id = idOf(req);
    const body = validated(() => validateRevoke({ ...validateBody(req.body, ["revoke_in"]), revoked_by: actorOf(req) }));
    const successor = await keys().roll(id, body);
    res.json({ api_key: await withLinks(successor) });
  }));

  router.post("/:id/sales-channels", route(async (req, res) => {
    const id = idOf(req);
    const change = validated(() => validateLinks(validateBody(req.body, ["add", "remove"])));
    const key = await retrieve(id);
    if (key.type !== "publishable") throw new ApiKeyError("invalid_data", "Sales channels can only be associated with publishable API keys");
    if (findMissingSalesChannels && change.add.length > 0) {
      const missing = await findMissingSalesChannels(change.add);
      if (missing.length > 0) throw new ApiKeyError("invalid_data", `Sales channels with IDs ${missing.join(", ")} do not exist`);
    }
    const linked = await keys().updateLinks(id, change);
    res.json({ api_key: { ...(await keys().retrieveApiKey(id)), sales_channels: linked.map((channel) => ({ id: channel })) } });
  }));

  router.use((error: unknown, _req: Request, res: Response, next: NextFunction) => {
    const known = toApiKeyError(error);
    if (!known) {
      next(error);
      return;
    }
    res.status(known.status).json({ type: known.type, message: known.message });
  });

  return router;
}

/** Typed errors as they are; body-parser's (malformed JSON, too large) as `invalid_data`. */
function toApiKeyError(error: unknown): ApiKeyError | undefined {
  if (error instanceof ApiKeyError) return error;
  const parserError = error as { type?: unknown; status?: unknown } | null;
  if (typeof parserError?.type !== "string" || typeof parserError.status !== "number") return undefined;
  const message =
    parserError.type === "entity.parse.failed"
      ? "Invalid request: the body is not valid JSON"
      : parserError.type === "entity.too.large"
        ? "Invalid request: the body is larger than 16kb"
        : `Invalid request: ${String((error as Error).message)}`;
  const typed = new ApiKeyError("invalid_data", message, { cause: error });
  // Keep body-parser's status (413 for too large, 415 for an unsupported encoding).
  Object.defineProperty(typed, "status", { value: parserError.status >= 400 && parserError.status < 500 ? parserError.status : 400 });
  return typed;
}

// apiKeyAdminRouter(): the reference's admin REST routes for managing keys, as an Express
// router. Mount it behind apiKeyAuth({ type: "secret" }), usually at /admin/api-keys.
import type { IncomingMessage } from "node:http";
import type { NextFunction, Request, Response, Router } from "express";
import { ApiKeyError, redactSecrets } from "../lib/errors";
import { FILTERABLE_FIELDS } from "../lib/columns";
import { API_KEY_FIELDS, normalizeFilters } from "../lib/filters";
import { serviceOrDefault } from "../lib/default-service";
import type { ApiKeyService } from "../lib/service";
import { normalizeAuditQuery } from "../lib/audit-log";
import type { ApiKeyDTO, CreateApiKeyDTO, ApiKeyField, Context, FilterableApiKeyProps, FindConfig } from "../lib/types";
import { normalizeUsageQuery } from "../lib/usage-analytics";
import { validateBody, validateCreate, validateLinks, validateRevoke, validateUpdate } from "../lib/validate-input";
import { ADMIN_ROUTES, type AdminOperation, type AdminRoute, ID_PATTERN, LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT, ORDER_VALUES } from "./admin-routes";
import { openApiDocument } from "./openapi";
import { QueryStringError, parseQueryString } from "./query-string";
import { forbidden } from "./api-key-auth";
import { type AdminScopesOption, adminScopes, adminScopesProblem } from "./admin-scopes";
import { type FactorySpec, checkFactoryOptions, rules } from "./http/options";
import type { AuthenticatedRequest } from "./request-context";
import { clientHttpErrors } from "./http/client-errors";
import { jsonErrorHandler } from "./http/respond";

export interface AdminRouterOptions {
  /** The service to manage keys with. Default: the one the latest `initialize()` returned. */
  service?: ApiKeyService;
  /** Who is acting, recorded as `created_by` and `revoked_by`. Default: `req.auth_context.actor_id`. */
  actor?: (req: IncomingMessage) => string | undefined;
  /** Returns the ids among `ids` that name no sales channel, so that linking them is refused. Default: every id is accepted. */
  findMissingSalesChannels?: (ids: string[]) => Promise<string[]>;
  /**
   * Scopes the calling key (`req.api_key`) must have: `read` for the GET routes, `read` and
   * `write` for every other route (a change answers with records); a caller without them gets
   * 403 `forbidden`. Default: `{ read: ["api_keys:read"], write: ["api_keys:write"] }` for keys
   * with scopes, while unrestricted keys (created without scopes) may do everything. Whatever
   * this says, a key never gives or manages more than it holds (see "Who may manage keys").
   */
  scopes?: AdminScopesOption;
}

const OPTIONS: FactorySpec<AdminRouterOptions> = {
  name: "apiKeyAdminRouter",
  usage: 'apiKeyAdminRouter() returns the router: write app.use("/admin/api-keys", apiKeyAuth(), apiKeyAdminRouter()), not app.use(apiKeyAdminRouter).',
  rules: {
    service: rules.service,
    actor: rules.function("actor"),
    findMissingSalesChannels: rules.function("findMissingSalesChannels"),
    scopes: adminScopesProblem,
  },
};

const BODY_LIMIT = "16kb";

type Handler = (req: Request, res: Response, route: AdminRoute) => Promise<void>;

const UNSUPPORTED_MEDIA_TYPE =
  "Invalid request: send the body as JSON, with the header Content-Type: application/json ({} when there is nothing to send)";

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
  if (unknown.length > 0) throw invalidRequest(`Unrecognized fields: ${unknown.map((name) => `'${redactSecrets(name).slice(0, 40)}'`).join(", ")}`);
  return query;
}

/** `with_deleted=true|false`: whether soft-deleted keys are shown. */
function withDeletedParameter(value: unknown): boolean {
  if (value !== undefined && value !== "true" && value !== "false") throw invalidRequest("'with_deleted' must be true or false");
  return value === "true";
}

/** The names of the query parameters a route takes. */
function parametersOf(route: AdminRoute): readonly string[] {
  return route.query ?? [];
}

/** The fields a route's body takes. */
function bodyFieldsOf(route: AdminRoute): readonly string[] {
  return route.body?.fields ?? [];
}

function listQuery(url: string, route: AdminRoute): { filters: FilterableApiKeyProps; config: FindConfig; offset: number; limit: number } {
  const { fields, offset, limit, order, with_deleted, ...filters } = queryOf(url, parametersOf(route));
  const config: FindConfig = {
    skip: integerParameter(offset, "offset", 0, Number.MAX_SAFE_INTEGER, 0),
    take: integerParameter(limit, "limit", 0, LIST_MAX_LIMIT, LIST_DEFAULT_LIMIT),
    withDeleted: withDeletedParameter(with_deleted),
  };
  if (fields !== undefined) config.select = fieldList(fields, "fields");
  if (order !== undefined) {
    if (typeof order !== "string" || !ORDER_VALUES.includes(order)) {
      throw invalidRequest(`'order' must be a field, or a field after '-' for descending order, among ${FILTERABLE_FIELDS.join(", ")}`);
    }
    config.order = order.startsWith("-") ? { [order.slice(1)]: "DESC" } : { [order]: "ASC" };
  }
  const typedFilters = withBooleans(filters) as FilterableApiKeyProps;
  // Validated here too, so that a bad filter reads as a bad request; the service checks again.
  validated(() => normalizeFilters(typedFilters, (token) => token));
  return { filters: typedFilters, config, offset: config.skip!, limit: config.take! };
}

export function apiKeyAdminRouter(givenOptions?: AdminRouterOptions): Router {
  const options = checkFactoryOptions(OPTIONS, givenOptions);
  // Loaded here so that apps using only the middleware (say, on Connect) need no Express.
  const express = require("express") as typeof import("express");
  const { service, findMissingSalesChannels } = options;
  const scopes = adminScopes(options.scopes);
  const actorOf = options.actor ?? ((req: IncomingMessage) => (req as AuthenticatedRequest).auth_context?.actor_id);
  const router = express.Router();

  const keys = () => serviceOrDefault(service);

  function idOf(req: Request): string {
    const raw: unknown = req.params.id;
    const id = typeof raw === "string" ? raw : "";
    if (!ID_PATTERN.test(id)) throw invalidRequest("'id' must be an api key id such as apk_01HZX...");
    return id;
  }

  /** Retrieves a key, with the reference's admin wording when there is none. */
  function retrieve(id: string, select?: ApiKeyField[], withDeleted = false): Promise<ApiKeyDTO> {
    return keys()
      .retrieveApiKey(id, select || withDeleted ? { select, withDeleted } : undefined)
      .catch((error: unknown) => {
        const missing = error instanceof ApiKeyError && error.type === "not_found";
        throw missing ? new ApiKeyError("not_found", `API Key with id: ${id} was not found`) : error;
      });
  }

  async function withLinks(key: ApiKeyDTO): Promise<ApiKeyDTO & { sales_channels?: { id: string }[] }> {
    // A soft-deleted key's links are kept for its restore, but not shown: they are not in force.
    if (key.type !== "publishable" || key.deleted_at) return key;
    const ids = await keys().listLinks(key.id);
    return { ...key, sales_channels: ids.map((id) => ({ id })) };
  }

  /**
   * Runs first on every route. Every answer here, errors included, is authenticated data and
   * some carry a plaintext token, so no cache may keep one. And the router must never serve
   * anyone it cannot name (fail closed).
   */
  function guard(scope: AdminRoute["scope"]) {
    return (req: Request, res: Response, next: NextFunction): void => {
      res.setHeader("Cache-Control", "no-store");
      if (!actorOf(req)) {
        next(new ApiKeyError("unauthorized", "No authenticated actor: mount apiKeyAuth({ type: \"secret\" }) in front of the admin router, or pass `actor`"));
        return;
      }
      const missing = scopes.missing((req as AuthenticatedRequest).api_key, scope);
      if (missing.length > 0) {
        next(forbidden(missing));
        return;
      }
      next();
    };
  }

  /**
   * The service context of a change: made for the calling key, when a key calls, so that the
   * service lets it give and manage only what it holds, judged on the rows it changes.
   */
  function actingFor(req: Request): Context {
    const key = (req as AuthenticatedRequest).api_key;
    // Without a key (an app's own authentication and `actor`), the audit log records the actor.
    return key ? { actingKey: key.id } : { actor: actorOf(req) };
  }

  const parseJson = express.json({ limit: BODY_LIMIT });

  /**
   * Writes take JSON only. A page on another site can make a browser that holds the admin's
   * Basic credentials send a form (urlencoded, multipart or text/plain) without asking, but
   * not an application/json body, which needs a CORS preflight. So a form post, or a post
   * with no type at all, never reaches a handler as an empty body. DELETE carries no body,
   * and a browser sends it across sites only after a CORS preflight.
   */
  function jsonBody(req: Request, res: Response, next: NextFunction): void {
    const mediaType = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
    if (mediaType !== "application/json") {
      next(new ApiKeyError("invalid_data", UNSUPPORTED_MEDIA_TYPE, { status: 415 }));
      return;
    }
    parseJson(req, res, next);
  }

  const handlers: Record<AdminOperation, Handler> = {
    async openapi(req, res, route) {
      // No parameters, but refused as on every route when some are sent.
      queryOf(req.url, parametersOf(route));
      res.json(openApiDocument(req.baseUrl));
    },

    async auditLog(req, res, route) {
      const { offset, limit, ...filters } = queryOf(req.url, parametersOf(route));
      const config = {
        skip: integerParameter(offset, "offset", 0, Number.MAX_SAFE_INTEGER, 0),
        take: integerParameter(limit, "limit", 0, LIST_MAX_LIMIT, LIST_DEFAULT_LIMIT),
      };
      validated(() => normalizeAuditQuery(filters, config));
      const [events, count] = await keys().listAndCountAuditEvents(filters, config);
      res.json({ events, count, offset: config.skip, limit: config.take });
    },

    async usageOfAll(req, res, route) {
      const filters = queryOf(req.url, parametersOf(route));
      validated(() => normalizeUsageQuery(filters, keys().now()));
      res.json({ usage: await keys().getUsage(filters) });
    },

    async usage(req, res, route) {
      const id = idOf(req);
      const filters = { ...queryOf(req.url, parametersOf(route)), key_id: id };
      validated(() => normalizeUsageQuery(filters, keys().now()));
      await retrieve(id, undefined, true);
      res.json({ usage: await keys().getUsage(filters) });
    },

    async list(req, res, route) {
      const { filters, config, offset, limit } = listQuery(req.url, route);
      const [api_keys, count] = await keys().listAndCountApiKeys(filters, config);
      res.json({ api_keys, count, offset, limit });
    },

    async create(req, res, route) {
      const body = { ...validated(() => validateBody(req.body, bodyFieldsOf(route))), created_by: actorOf(req) };
      // Checked here for the reference's "Invalid request: " wording; the service checks again,
      // and turns `expires_in` into an instant by its own clock.
      validated(() => validateCreate(body, keys().now()));
      const created = await keys().createApiKeys(body as unknown as CreateApiKeyDTO, actingFor(req));
      res.json({ api_key: created });
    },

    async retrieve(req, res, route) {
      const id = idOf(req);
      const query = queryOf(req.url, parametersOf(route));
      const select = query.fields === undefined ? undefined : fieldList(query.fields, "fields");
      const key = await retrieve(id, select, withDeletedParameter(query.with_deleted));
      res.json({ api_key: select ? key : await withLinks(key) });
    },

    async update(req, res, route) {
      const id = idOf(req);
      const fields = bodyFieldsOf(route);
      const input = validated(() => {
        const body = validateBody(req.body, fields);
        // The service takes an empty update; over HTTP one is far more likely a mistake.
        if (Object.values(body).every((value) => value === undefined)) {
          throw new ApiKeyError("invalid_data", `Give at least one field to update: ${fields.join(", ")}`);
        }
        return validateUpdate(body, keys().now());
      });
      const updated = await keys().updateApiKeys(id, input, actingFor(req));
      res.json({ api_key: await withLinks(updated) });
    },

    async delete(req, res) {
      const id = idOf(req);
      await retrieve(id);
      await keys().deleteApiKeys(id, actingFor(req));
      res.json({ id, object: "api_key", deleted: true });
    },

    // Not in the reference's admin API, which soft-deletes only from code: a soft-deleted key
    // stops authenticating at once and can be brought back, where DELETE is final.
    async softDelete(req, res, route) {
      const id = idOf(req);
      validated(() => validateBody(req.body, bodyFieldsOf(route)));
      await retrieve(id);
      await keys().softDeleteApiKeys(id, actingFor(req));
      res.json({ api_key: await withLinks(await retrieve(id, undefined, true)) });
    },

    async restore(req, res, route) {
      const id = idOf(req);
      validated(() => validateBody(req.body, bodyFieldsOf(route)));
      await retrieve(id, undefined, true);
      await keys().restoreApiKeys(id, actingFor(req));
      res.json({ api_key: await withLinks(await retrieve(id)) });
    },

    async revoke(req, res, route) {
      const id = idOf(req);
      const body = validated(() => validateRevoke({ ...validateBody(req.body, bodyFieldsOf(route)), revoked_by: actorOf(req) }));
      const revoked = await keys().revoke(id, body, actingFor(req));
      res.json({ api_key: await withLinks(revoked) });
    },

    async roll(req, res, route) {
      const id = idOf(req);
      const body = validated(() => validateRevoke({ ...validateBody(req.body, bodyFieldsOf(route)), revoked_by: actorOf(req) }));
      const successor = await keys().roll(id, body, actingFor(req));
      res.json({ api_key: await withLinks(successor) });
    },

    async salesChannels(req, res, route) {
      const id = idOf(req);
      const change = validated(() => validateLinks(validateBody(req.body, bodyFieldsOf(route))));
      const key = await retrieve(id);
      if (key.type !== "publishable") throw new ApiKeyError("invalid_data", "Sales channels can only be associated with publishable API keys");
      if (findMissingSalesChannels && change.add.length > 0) {
        const missing = await findMissingSalesChannels(change.add);
        if (missing.length > 0) throw new ApiKeyError("invalid_data", `Sales channels with IDs ${missing.join(", ")} do not exist`);
      }
      const linked = await keys().updateLinks(id, change, actingFor(req));
      res.json({ api_key: { ...(await keys().retrieveApiKey(id)), sales_channels: linked.map((channel) => ({ id: channel })) } });
    },
  };

  // The router is the route table: each route's path, method, scope and body come from it.
  // Each path's methods are followed at once by its answer to any other method, so that
  // `/openapi.json` answers for itself before `/:id` can take it.
  for (const [path, routes] of routesByPath()) {
    for (const route of routes) {
      const handler = handlers[route.operation as AdminOperation];
      const run = (req: Request, res: Response, next: NextFunction) => {
        handler(req, res, route).catch(next);
      };
      if (route.body) router[route.method](route.path, guard(route.scope), jsonBody, run);
      else router[route.method](route.path, guard(route.scope), run);
    }
    router.all(path, otherMethods(allowedMethods(routes)));
  }

  // Ours as they are, those of Express and body-parser by their status.
  router.use(jsonErrorHandler({ service, during: "in the admin router", clientError: clientHttpErrors(BODY_LIMIT) }));

  return router;
}

/** The route table's routes by path, in the order the paths first appear. */
function routesByPath(): Map<string, AdminRoute[]> {
  const paths = new Map<string, AdminRoute[]>();
  for (const route of ADMIN_ROUTES as readonly AdminRoute[]) {
    const routes = paths.get(route.path) ?? [];
    routes.push(route);
    paths.set(route.path, routes);
  }
  return paths;
}

/** What a path's `Allow` header lists: its methods, HEAD with GET (Express answers it), and OPTIONS. */
function allowedMethods(routes: readonly AdminRoute[]): string {
  const methods = routes.map((route) => route.method.toUpperCase());
  if (methods.includes("GET")) methods.push("HEAD");
  return [...methods, "OPTIONS"].join(", ");
}

/**
 * A path's answer to the methods it does not list: OPTIONS is 204 with `Allow`, any other
 * (TRACE, PUT...) is 405 `invalid_data` through the router's error handler, with `Allow` too.
 */
function otherMethods(allow: string) {
  return (req: Request, res: Response, next: NextFunction): void => {
    res.setHeader("Allow", allow);
    if (req.method === "OPTIONS") {
      res.setHeader("Cache-Control", "no-store");
      res.status(204).end();
      return;
    }
    next(new ApiKeyError("invalid_data", `Invalid request: ${req.method} is not allowed here; allowed: ${allow}`, { status: 405 }));
  };
}

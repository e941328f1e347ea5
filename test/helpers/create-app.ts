// One app shape on every framework the middleware supports: Express 5, Express 4, Connect and
// a bare node:http server. Routes answer with what the middleware attached to the request.
// The admin router gets its own app, on Express 5 and Express 4.
import assert from "node:assert/strict";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import connect from "connect";
import express5 from "express";
import express4 from "express4";
import type { ApiKeyService } from "../../lib/service";
import { type AdminRouterOptions, apiKeyAdminRouter } from "../../middleware/admin-router";
import { apiKeyAuth, type ApiKeyAuthOptions } from "../../middleware/api-key-auth";
import type { AuthenticatedRequest } from "../../middleware/request-context";
import { recordAnswers } from "./openapi-conformance";

export const FRAMEWORKS = ["express5", "express4", "connect", "http"] as const;
export type Framework = (typeof FRAMEWORKS)[number];

type Handler = (req: IncomingMessage, res: ServerResponse, next: (error?: unknown) => void) => void;

function echo(req: IncomingMessage, res: ServerResponse): void {
  const { auth_context, secret_key_context, publishable_key_context, api_key } = req as AuthenticatedRequest;
  const body = JSON.stringify({ auth_context, secret_key_context, publishable_key_context, api_key });
  res.setHeader("Content-Type", "application/json");
  res.setHeader("Content-Length", Buffer.byteLength(body));
  res.end(body);
}

function failWith500(res: ServerResponse, error: unknown): void {
  res.statusCode = 500;
  res.end(JSON.stringify({ type: "unknown_error", message: String(error) }));
}

/** `/admin` takes a secret key, `/store` a publishable key, `/optional` an optional secret key, `/public` nothing. */
export function createApp(framework: Framework, options: ApiKeyAuthOptions = {}): http.Server {
  const routes: [string, Handler | undefined][] = [
    ["/admin", apiKeyAuth({ ...options, type: "secret" })],
    ["/store", apiKeyAuth({ ...options, type: "publishable" })],
    ["/optional", apiKeyAuth({ ...options, type: "secret", required: false })],
    ["/public", undefined],
  ];
  switch (framework) {
    case "express5":
    case "express4": {
      const app = framework === "express5" ? express5() : express4();
      for (const [path, auth] of routes) {
        if (auth) app.get(path, auth, echo);
        else app.get(path, echo);
      }
      return http.createServer(app);
    }
    case "connect": {
      const app = connect();
      for (const [path, auth] of routes) {
        if (auth) app.use(path, auth);
        app.use(path, echo);
      }
      return http.createServer(app);
    }
    case "http":
      return http.createServer((req, res) => {
        const route = routes.find(([path]) => req.url === path || req.url?.startsWith(`${path}?`));
        if (!route) {
          res.statusCode = 404;
          res.end();
          return;
        }
        const auth = route[1];
        if (!auth) return echo(req, res);
        auth(req, res, (error) => (error ? failWith500(res, error) : echo(req, res)));
      });
  }
}

export const EXPRESS_VERSIONS = ["express5", "express4"] as const;
export type ExpressVersion = (typeof EXPRESS_VERSIONS)[number];

/** A bare app of the Express under test. */
export function expressApp(version: ExpressVersion): express5.Express {
  return (version === "express5" ? express5() : express4()) as express5.Express;
}

/**
 * A router built as on the Express under test: our routers take `require("express")` from the
 * app's installation, so an Express 4 app gets an Express 4 router and body parser.
 */
export function withExpress(version: ExpressVersion, build: () => express5.Router): express5.Router {
  if (version === "express5") return build();
  const entry = require.cache[require.resolve("express")]!;
  const original: unknown = entry.exports;
  entry.exports = express4;
  try {
    const router = build();
    assert.equal(Object.getPrototypeOf(router), express4.Router, "an Express 4 router");
    return router;
  } finally {
    entry.exports = original;
  }
}

/**
 * The admin router as the Express under test builds it, its answers checked against its
 * OpenAPI document on the way out.
 */
export function adminRouterOn(version: ExpressVersion, options: AdminRouterOptions): express5.Router {
  const checked = (version === "express5" ? express5 : express4).Router() as express5.Router;
  return checked.use(recordAnswers, bareAdminRouterOn(version, options));
}

/** The admin router as the Express under test builds it, with nothing in front. */
export function bareAdminRouterOn(version: ExpressVersion, options: AdminRouterOptions): express5.Router {
  return withExpress(version, () => apiKeyAdminRouter(options));
}

/** The admin router at /admin/api-keys behind apiKeyAuth, on the Express under test. */
export function createAdminApp(version: ExpressVersion, service: ApiKeyService, options: AdminRouterOptions = {}): http.Server {
  const app = expressApp(version);
  app.use("/admin/api-keys", apiKeyAuth({ service }), adminRouterOn(version, { service, ...options }));
  return http.createServer(app);
}

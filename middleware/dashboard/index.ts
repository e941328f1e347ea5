// apiKeyDashboard(): a web page for managing keys, as an Express router the app mounts where
// it likes. The page talks to the admin router, mounted inside at `api/`, so that validation
// and authorization rules have one implementation; a dashboard session (session-routes.ts), or
// the app's own authentication (app-auth.ts), stands in for apiKeyAuth in front of it.
import type { IncomingMessage } from "node:http";
import type { Router } from "express";
import { serviceOrDefault } from "../../lib/default-service";
import { ApiKeyError } from "../../lib/errors";
import { apiKeyAdminRouter } from "../admin-router";
import { adminScopes } from "../admin-scopes";
import { jsonErrorHandler } from "../http/respond";
import { appAuthRoutes } from "./app-auth";
import { loadAssets, sendAsset } from "./assets";
import { securityHeaders } from "./guards";
import { type DashboardOptions, dashboardConfig } from "./options";
import { type CookiePlace, SessionStore, cookiePlace } from "./session";
import { SIGN_IN_MESSAGES, signInRoutes } from "./session-routes";
import { SignInThrottle } from "./sign-in-throttle";

export type { DashboardOptions };

const PAGE_CACHE = "no-store";
const ASSET_CACHE = "public, max-age=31536000, immutable";

/** The only errors of the client's making here that are not ours: the sign-in body's, from the JSON parser. */
function signInBodyError(error: unknown): ApiKeyError | undefined {
  const status = (error as { status?: unknown } | null)?.status;
  if (error instanceof ApiKeyError || typeof status !== "number" || status < 400 || status > 499) return undefined;
  return new ApiKeyError("invalid_data", SIGN_IN_MESSAGES.body, { status });
}

export function apiKeyDashboard(options?: DashboardOptions): Router {
  const express = require("express") as typeof import("express");
  const config = dashboardConfig(options);
  const { service, scopes, findMissingSalesChannels, actor } = config;
  const keys = () => serviceOrDefault(service);
  const admin = apiKeyAdminRouter({ service, scopes, findMissingSalesChannels, ...(actor ? { actor } : {}) });
  const assets = loadAssets();
  const router = express.Router();

  // The session cookie belongs to the dashboard's own mount, whatever the app calls it. Read
  // here, at the router's entry: under `/api` Express's `req.baseUrl` holds `/api` too.
  const cookies = new WeakMap<IncomingMessage, CookiePlace>();
  router.use(securityHeaders);
  router.use((req, _res, next) => {
    cookies.set(req, cookiePlace(req.baseUrl, req.secure));
    next();
  });

  router.get("/", (req, res) => {
    // The page's links are relative: without the trailing slash they would resolve one level up.
    const path = req.originalUrl.split("?")[0]!;
    if (!path.endsWith("/")) {
      res.redirect(308, `${req.baseUrl}/${req.originalUrl.slice(path.length)}`);
      return;
    }
    sendAsset(req, res, assets.page, PAGE_CACHE);
  });

  router.use(`/${assets.base}`, (req, res, next) => {
    const file = req.method === "GET" || req.method === "HEAD" ? assets.files.get(req.path.slice(1)) : undefined;
    if (!file) {
      next();
      return;
    }
    sendAsset(req, res, file, ASSET_CACHE);
  });

  if (config.signIn) {
    signInRoutes(router, {
      express,
      keys,
      now: () => keys().now().getTime(),
      sessions: new SessionStore({
        maxAge: config.sessionMaxAge,
        idleTimeout: config.sessionIdleTimeout,
        maxSessions: config.maxSessions,
        maxSessionsPerKey: config.maxSessionsPerKey,
      }),
      signInsPerKey: new SignInThrottle(config.signInsPerKey),
      signInsPerAddress: new SignInThrottle(config.signInsPerAddress),
      access: adminScopes(scopes),
      cookieOf: (req) => cookies.get(req)!,
    });
  } else {
    appAuthRoutes(router, actor);
  }
  router.use("/api", admin);
  router.use(jsonErrorHandler({ service, during: "in the dashboard", clientError: signInBodyError }));
  return router;
}

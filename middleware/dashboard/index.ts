// apiKeyDashboard(): a web page for managing keys, as an Express router the app mounts where
// it likes. The page talks to the admin router, mounted inside at `api/`, so that validation
// and authorization rules have one implementation; a dashboard session stands in for
// apiKeyAuth in front of it.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { NextFunction, Request, Response, Router } from "express";
import { ApiKeyError, failConfiguration } from "../../lib/errors";
import { getDefaultService, serviceOrDefault } from "../../lib/default-service";
import { endedBy } from "../../lib/key-status";
import type { ApiKeyService } from "../../lib/service";
import type { ApiKeyDTO } from "../../lib/types";
import { type AdminRouterOptions, apiKeyAdminRouter } from "../admin-router";
import { adminScopes } from "../admin-scopes";
import { type AuthenticatedRequest, secretKeyAuthContext } from "../request-context";
import { asApiKeyError } from "../http/respond";
import { loadAssets, sendAsset } from "./assets";
import { type SignInLimit, SignInThrottle } from "./sign-in-throttle";
import { type CookiePlace, type Session, SessionStore, clearedCookie, cookiePlace, readCookie, sameSecret } from "./session";

export interface DashboardOptions {
  /** The service to manage keys with. Default: the one the latest `initialize()` returned. */
  service?: ApiKeyService;
  /**
   * `true`: a person signs in with a secret key. `false`: no sign-in, for an app that protects
   * the mount with its own authentication; its `req.auth_context.actor_id` (or `actor`) is
   * the one acting, and a request without one is refused. Default: `true`.
   */
  signIn?: boolean;
  /** Who is acting when `signIn` is `false`. Default: `req.auth_context.actor_id`. */
  actor?: (req: IncomingMessage) => string | undefined;
  /** The longest a session lasts, in seconds. Default: 28800 (8 hours). */
  sessionMaxAge?: number;
  /** A session ends after this many seconds without a request. Default: 3600 (1 hour). */
  sessionIdleTimeout?: number;
  /** How many sessions the process keeps at most; the least recently used end first. Default: 10000. */
  maxSessions?: number;
  /**
   * How many sessions one key may hold at once; signing in once more ends that key's oldest
   * session, and nobody else's. Default: 10.
   */
  maxSessionsPerKey?: number;
  /**
   * Sign-ins one key may make in a window: `limit` per `duration` seconds, counted in this
   * process. One more is answered 429 `rate_limited` with `Retry-After`, opens no session and
   * spends no use of the key. Default: `{ limit: 10, duration: 60 }`.
   */
  signInsPerKey?: SignInLimit;
  /**
   * Sign-in attempts one client address (`req.ip`: set Express's `trust proxy` behind a proxy)
   * may make in a window, right keys or wrong, counted before any key is checked, in this
   * process. One more is answered as `signInsPerKey`'s. Default: `{ limit: 30, duration: 60 }`.
   */
  signInsPerAddress?: SignInLimit;
  /** As the admin router's: scopes the signed-in key needs, `read` to sign in and list, `read` and `write` to change keys. Default: as the router's (`api_keys:read` / `api_keys:write` for keys with scopes; unrestricted keys may do everything). */
  scopes?: AdminRouterOptions["scopes"];
  /** As the admin router's: the ids among `ids` that name no sales channel. Default: every id is accepted. */
  findMissingSalesChannels?: AdminRouterOptions["findMissingSalesChannels"];
}

const OPTION_NAMES = [
  "service",
  "signIn",
  "actor",
  "sessionMaxAge",
  "sessionIdleTimeout",
  "maxSessions",
  "maxSessionsPerKey",
  "signInsPerKey",
  "signInsPerAddress",
  "scopes",
  "findMissingSalesChannels",
];
const DEFAULTS = {
  signIn: true,
  sessionMaxAge: 8 * 3600,
  sessionIdleTimeout: 3600,
  maxSessions: 10_000,
  maxSessionsPerKey: 10,
  signInsPerKey: { limit: 10, duration: 60 },
  signInsPerAddress: { limit: 30, duration: 60 },
};

/**
 * No script or style but our own files, nothing from elsewhere, no framing. `img-src data:`
 * is for the page's empty icon, which spares the browser a request for /favicon.ico.
 */
const CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
const PAGE_CACHE = "no-store";
const ASSET_CACHE = "public, max-age=31536000, immutable";
const CSRF_HEADER = "x-csrf-token";
/** With `signIn: false`, what the page sends in the CSRF header: there, the header's presence is the check. */
const APP_CSRF_TOKEN = "same-origin";
const MAX_TOKEN_LENGTH = 200;

const MESSAGES = {
  signedOut: "You are not signed in: sign in with a secret key",
  invalidKey: "That secret key is not valid: check that you pasted all of it, and that it is not revoked or expired",
  csrf: `Refused: a change must come from the dashboard's own page, with the ${CSRF_HEADER} header it sends`,
  crossOrigin: "Refused: the request comes from another origin (scheme, host or port) than the dashboard's",
  body: 'Send the body as JSON: { "secret_key": "sk_..." }',
};

const isCount = (value: unknown) => typeof value === "number" && Number.isSafeInteger(value) && value > 0;

function checkCount(value: unknown, name: string, unit: string): void {
  if (value !== undefined && !isCount(value)) {
    failConfiguration(`\`${name}\` must be a whole number of ${unit} greater than 0.`);
  }
}

function checkSignInLimit(value: unknown, name: string): void {
  if (value === undefined) return;
  const { limit, duration } = (typeof value === "object" && value !== null ? value : {}) as Partial<SignInLimit>;
  if (!isCount(limit) || !isCount(duration)) {
    failConfiguration(`\`${name}\` must be { limit, duration }: whole numbers of sign-ins and of seconds greater than 0, such as { limit: 10, duration: 60 }.`);
  }
}

function checkOptions(options: unknown): DashboardOptions {
  if (options === undefined) return {};
  if (typeof options !== "object" || options === null) failConfiguration("`apiKeyDashboard(options)` takes an object.");
  if ("headers" in options && "method" in options) {
    failConfiguration('apiKeyDashboard() returns the router: write app.use("/admin/keys", apiKeyDashboard()), not app.use(apiKeyDashboard).');
  }
  const unknown = Object.keys(options).filter((name) => !OPTION_NAMES.includes(name));
  if (unknown.length > 0) failConfiguration(`unknown option \`${unknown[0]}\`; the options are ${OPTION_NAMES.join(", ")}.`);
  const { service, signIn, actor, sessionMaxAge, sessionIdleTimeout, maxSessions, maxSessionsPerKey, signInsPerKey, signInsPerAddress } = options as DashboardOptions;
  if (service !== undefined && typeof service?.verifyApiKey !== "function") failConfiguration("`service` must be the result of `initialize()`.");
  if (signIn !== undefined && typeof signIn !== "boolean") failConfiguration("`signIn` must be a boolean.");
  if (actor !== undefined && typeof actor !== "function") failConfiguration("`actor` must be a function.");
  if (actor !== undefined && signIn !== false) failConfiguration("`actor` applies with `signIn: false` only: with sign-in, the signed-in key acts.");
  checkCount(sessionMaxAge, "sessionMaxAge", "seconds");
  checkCount(sessionIdleTimeout, "sessionIdleTimeout", "seconds");
  checkCount(maxSessions, "maxSessions", "sessions");
  checkCount(maxSessionsPerKey, "maxSessionsPerKey", "sessions");
  checkSignInLimit(signInsPerKey, "signInsPerKey");
  checkSignInLimit(signInsPerAddress, "signInsPerAddress");
  return options;
}

/** Headers every answer of the dashboard carries. */
function securityHeaders(_req: IncomingMessage, res: ServerResponse, next: NextFunction): void {
  res.setHeader("Content-Security-Policy", CONTENT_SECURITY_POLICY);
  res.setHeader("X-Content-Type-Options", "nosniff");
  res.setHeader("Referrer-Policy", "no-referrer");
  res.setHeader("X-Frame-Options", "DENY");
  next();
}

/** A JSON answer, with no WWW-Authenticate on a 401: the page signs in with its own form, not the browser's. */
function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader("Content-Type", "application/json; charset=utf-8");
  res.setHeader("Cache-Control", "no-store");
  res.setHeader("Content-Length", Buffer.byteLength(text));
  res.end(text);
}

/** The origin (scheme, host and port) of a URL, or undefined when it is none. */
function originOf(url: string): string | undefined {
  try {
    const { origin } = new URL(url);
    return origin === "null" ? undefined : origin;
  } catch {
    return undefined;
  }
}

/**
 * The Host the client asked for, with its port. Behind a proxy the app trusts (`trust proxy`),
 * the first X-Forwarded-Host, as Express 5's `req.host` reads it: Express 4's `req.host` drops
 * the port, so it is read here for both.
 */
function requestedHost(req: Request): string | undefined {
  const trustProxy = req.app.get("trust proxy fn") as (address: string | undefined, hop: number) => boolean;
  const forwarded = req.get("X-Forwarded-Host");
  return (forwarded && trustProxy(req.socket.remoteAddress, 0) ? forwarded.split(",")[0]!.trim() : req.get("Host")) || undefined;
}

/**
 * A browser names the page that sent a request in `Origin` (always, for a fetch that is not a
 * GET). Any other origin than the request's own is refused: another host, but also another port
 * or scheme of this host (`http://127.0.0.1:8080` is another app than `http://127.0.0.1:3000`).
 * Requests without one (curl, tests) are not cross-site requests from a browser.
 * `req.protocol` follows X-Forwarded-Proto when the app trusts its proxy.
 */
function crossOrigin(req: Request): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return false;
  const own = originOf(`${req.protocol}://${requestedHost(req) ?? ""}`);
  return own === undefined || originOf(origin) !== own;
}

const changes = (req: IncomingMessage) => req.method !== "GET" && req.method !== "HEAD";

/** The error for a throttled sign-in; `Retry-After` on its answer says when to come back. */
function throttled(res: ServerResponse, seconds: number, message: string): ApiKeyError {
  res.setHeader("Retry-After", String(seconds));
  return new ApiKeyError("rate_limited", `${message}: try again in ${seconds} second${seconds === 1 ? "" : "s"}`);
}

export function apiKeyDashboard(options?: DashboardOptions): Router {
  const express = require("express") as typeof import("express");
  const config = { ...DEFAULTS, ...Object.fromEntries(Object.entries(checkOptions(options)).filter(([, value]) => value !== undefined)) } as DashboardOptions &
    typeof DEFAULTS;
  const { service, signIn, actor, scopes, findMissingSalesChannels } = config;
  const keys = () => serviceOrDefault(service);
  // Built first, so that a bad `scopes` option throws here, naming the option.
  const admin = apiKeyAdminRouter({ service, scopes, findMissingSalesChannels, ...(actor ? { actor } : {}) });
  const sessions = new SessionStore({
    maxAge: config.sessionMaxAge,
    idleTimeout: config.sessionIdleTimeout,
    maxSessions: config.maxSessions,
    maxSessionsPerKey: config.maxSessionsPerKey,
  });
  const signInsPerKey = new SignInThrottle(config.signInsPerKey);
  const signInsPerAddress = new SignInThrottle(config.signInsPerAddress);
  const assets = loadAssets();
  const router = express.Router();

  const now = () => keys().now().getTime();

  // The session cookie belongs to the dashboard's own mount, whatever the app calls it. Read
  // here, at the router's entry: under `/api` Express's `req.baseUrl` holds `/api` too.
  const cookies = new WeakMap<IncomingMessage, CookiePlace>();
  const cookieOf = (req: IncomingMessage) => cookies.get(req)!;

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

  /** The session a request's cookie names, still in force, or undefined. */
  function sessionOf(req: Request): Session | undefined {
    return sessions.find(readCookie(req, cookieOf(req).name), now());
  }

  /**
   * The dashboard's scope requirement, all of it in this one function: the scopes needed to
   * sign in and read that `key` lacks.
   */
  const access = adminScopes(scopes);
  const missingReadScopes = (key: ApiKeyDTO): string[] => access.missing(key, "read");

  /**
   * Why `key` may not use the dashboard now, as the end of a sentence about it, or undefined
   * when it may. The one rule for signing in and for every request of a session, so that a
   * change made to the key after sign-in applies to its sessions at their next request.
   */
  function refusalOf(key: ApiKeyDTO): string | undefined {
    const ended = endedBy(key, new Date(now()));
    if (ended) return ended === "revoked" ? "was revoked" : "has expired";
    const missing = missingReadScopes(key);
    if (missing.length > 0) return `lacks the scope${missing.length === 1 ? "" : "s"} ${missing.join(", ")}`;
    // A session's requests are not counted against the key's usage quota, so a key with one
    // could outlive it here.
    if (key.remaining !== null) return "has a usage quota, which dashboard sessions do not count";
    return undefined;
  }

  /** The key as it is now, or undefined once it is deleted (soft-deleted too). */
  async function currentKey(id: string): Promise<ApiKeyDTO | undefined> {
    try {
      return await keys().retrieveApiKey(id);
    } catch (error) {
      if (error instanceof ApiKeyError && error.type === "not_found") return undefined;
      throw error;
    }
  }

  const sessionBody = (key: ApiKeyDTO, session: Session) => ({
    sign_in: true,
    key: { id: key.id, title: key.title, redacted: key.redacted },
    csrf_token: session.csrfToken,
    expires_at: new Date(session.expiresAt).toISOString(),
  });

  /** Runs `handler` with errors answered as JSON. */
  const route =
    (handler: (req: Request, res: Response) => Promise<void>) =>
    (req: Request, res: Response, next: NextFunction): void => {
      handler(req, res).catch(next);
    };

  /**
   * The request's session and its key, when the key may still use the dashboard. Otherwise the
   * request is answered 401: when the key may not, every session it opened ends and the cookie
   * is cleared.
   */
  async function liveSession(req: Request, res: Response): Promise<{ session: Session; key: ApiKeyDTO } | undefined> {
    const session = sessionOf(req);
    if (!session) {
      sendJson(res, 401, { type: "unauthorized", message: MESSAGES.signedOut });
      return undefined;
    }
    const key = await currentKey(session.keyId);
    const refusal = key ? refusalOf(key) : "was deleted";
    if (key && refusal === undefined) return { session, key };
    sessions.closeFor(session.keyId);
    res.setHeader("Set-Cookie", clearedCookie(cookieOf(req)));
    sendJson(res, 401, { type: "unauthorized", message: `Your session has ended: the key that opened it ${refusal}. Sign in with another key` });
    return undefined;
  }

  if (signIn) {
    router.get(
      "/session",
      route(async (req, res) => {
        const live = await liveSession(req, res);
        if (live) sendJson(res, 200, sessionBody(live.key, live.session));
      }),
    );

    router.post(
      "/session",
      express.json({ limit: "4kb" }),
      route(async (req, res) => {
        if (crossOrigin(req)) throw new ApiKeyError("forbidden", MESSAGES.crossOrigin);
        const body: unknown = req.body;
        const token = typeof body === "object" && body !== null ? (body as { secret_key?: unknown }).secret_key : undefined;
        if (!req.is("application/json") || typeof token !== "string" || token.length > MAX_TOKEN_LENGTH) {
          throw new ApiKeyError("invalid_data", MESSAGES.body);
        }
        // Counted before the key is checked: a wrong key counts as a right one does.
        const addressWait = await signInsPerAddress.take(req.ip ?? "");
        if (addressWait > 0) throw throttled(res, addressWait, "Too many sign-ins from this address");
        // First at no cost: a key the dashboard refuses, or throttles, spends no use.
        const found = await keys().verifyApiKey(token.trim(), { type: "secret", cost: 0 });
        if (!found.valid || !found.api_key) throw new ApiKeyError("unauthorized", MESSAGES.invalidKey);
        const refusal = refusalOf(found.api_key);
        if (refusal !== undefined) throw new ApiKeyError("forbidden", `This key may not use the dashboard: it ${refusal}. Sign in with another key`);
        const keyWait = await signInsPerKey.take(found.api_key.id);
        if (keyWait > 0) throw throttled(res, keyWait, "Too many sign-ins with this key");
        // Signing in counts as one use of the key.
        const result = await keys().verifyApiKey(token.trim(), { type: "secret" });
        if (result.code === "rate_limited" || result.code === "usage_exceeded") {
          throw new ApiKeyError(result.code, "This key has used up its rate limit or quota for now: try again later, or use another key");
        }
        if (!result.valid || !result.api_key) throw new ApiKeyError("unauthorized", MESSAGES.invalidKey);
        sessions.close(readCookie(req, cookieOf(req).name));
        const { id, session } = sessions.open(result.api_key.id, now());
        res.setHeader("Set-Cookie", sessions.cookie(id, cookieOf(req)));
        sendJson(res, 200, sessionBody(result.api_key, session));
      }),
    );

    router.delete("/session", (req, res) => {
      const id = readCookie(req, cookieOf(req).name);
      const session = sessions.find(id, now());
      if (session && !sameSecret(req.headers[CSRF_HEADER], session.csrfToken)) {
        sendJson(res, 403, { type: "forbidden", message: MESSAGES.csrf });
        return;
      }
      sessions.close(id);
      res.setHeader("Set-Cookie", clearedCookie(cookieOf(req)));
      res.statusCode = 204;
      res.setHeader("Cache-Control", "no-store");
      res.end();
    });

    /** Lets a request through to the admin router as the session's key, or answers it. */
    async function admit(req: Request, res: Response): Promise<boolean> {
      const live = await liveSession(req, res);
      if (!live) return false;
      if (changes(req) && (crossOrigin(req) || !sameSecret(req.headers[CSRF_HEADER], live.session.csrfToken))) {
        sendJson(res, 403, { type: "forbidden", message: MESSAGES.csrf });
        return false;
      }
      const { key } = live;
      const authenticated = req as AuthenticatedRequest<Request>;
      authenticated.api_key = key;
      authenticated.auth_context = secretKeyAuthContext(key);
      return true;
    }

    // In front of the admin router: the session stands in for apiKeyAuth.
    router.use("/api", (req, res, next) => {
      admit(req, res).then((admitted) => {
        if (admitted) next();
      }, next);
    });
  } else {
    const actorOf = actor ?? ((req: IncomingMessage) => (req as AuthenticatedRequest).auth_context?.actor_id);
    /** The 401 for a request the app has not authenticated: the page then says so, with no sign-in form. */
    const notSignedIn = (res: ServerResponse) =>
      sendJson(res, 401, { type: "unauthorized", message: "You are not signed in to the app: sign in there, then reload this page", sign_in: false });

    router.get("/session", (req, res) => {
      const who = actorOf(req);
      if (!who) {
        notSignedIn(res);
        return;
      }
      sendJson(res, 200, { sign_in: false, key: null, actor: who, csrf_token: APP_CSRF_TOKEN });
    });
    // The app's authentication is likely a cookie too: a custom header, which no other site can
    // send without a CORS preflight, and a same-origin Origin stand guard over every change.
    router.use("/api", (req, res, next) => {
      if (!actorOf(req)) {
        notSignedIn(res);
        return;
      }
      if (changes(req) && (crossOrigin(req) || req.headers[CSRF_HEADER] === undefined)) {
        sendJson(res, 403, { type: "forbidden", message: MESSAGES.csrf });
        return;
      }
      next();
    });
  }
  router.use("/api", admin);

  router.use((error: unknown, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) {
      next(error);
      return;
    }
    const logger = (service ?? getDefaultService())?.logger ?? console;
    // The only errors of the client's making here are the sign-in body's, from the JSON parser.
    const status = (error as { status?: unknown })?.status;
    const typed =
      !(error instanceof ApiKeyError) && typeof status === "number" && status >= 400 && status < 500
        ? new ApiKeyError("invalid_data", MESSAGES.body, { status })
        : asApiKeyError(error, logger, "in the dashboard");
    sendJson(res, typed.status, { type: typed.type, message: typed.message });
  });

  return router;
}

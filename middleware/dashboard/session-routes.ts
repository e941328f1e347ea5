// The dashboard's own sign-in: `POST session` verifies a secret key once and opens a session;
// `GET session` reads it; `DELETE session` signs out; and in front of the admin router, the
// session stands in for apiKeyAuth. A session is checked against its key on every request.
import type { Request, Response, Router } from "express";
import { ApiKeyError } from "../../lib/errors";
import { allows, compileAllowList } from "../../lib/ip-allow-list";
import { endedBy } from "../../lib/key-status";
import type { ApiKeyService } from "../../lib/service";
import type { ApiKeyDTO } from "../../lib/types";
import type { AdminScopes } from "../admin-scopes";
import { clientAddress } from "../http/client-address";
import { type NextFunction, writeJson } from "../http/respond";
import { requestProperties } from "../http/request-properties";
import { secretKeyAuthContext } from "../request-context";
import { CSRF_HEADER, GUARD_MESSAGES, changes, crossOrigin } from "./guards";
import { type CookiePlace, type Session, type SessionStore, clearedCookie, readCookie, sameSecret } from "./session";
import type { SignInThrottle } from "./sign-in-throttle";

const MAX_TOKEN_LENGTH = 200;

export const SIGN_IN_MESSAGES = {
  signedOut: "You are not signed in: sign in with a secret key",
  invalidKey: "That secret key is not valid: check that you pasted all of it, and that it is not revoked or expired",
  address: "This key is not accepted from this address (its IP allow-list)",
  body: 'Send the body as JSON: { "secret_key": "sk_..." }',
};

export interface SignInParts {
  express: typeof import("express");
  keys: () => ApiKeyService;
  /** The service's clock, in ms: sessions are timed as revocations and expiry are. */
  now: () => number;
  sessions: SessionStore;
  signInsPerKey: SignInThrottle;
  signInsPerAddress: SignInThrottle;
  /** The admin router's scope rule: a key that may not read keys may not sign in. */
  access: AdminScopes;
  /** Where the session cookie of this request's mount lives. */
  cookieOf: (req: Request) => CookiePlace;
}

/** The error for a throttled sign-in; `Retry-After` on its answer says when to come back. */
function throttled(res: Response, seconds: number, message: string): ApiKeyError {
  res.setHeader("Retry-After", String(seconds));
  return new ApiKeyError("rate_limited", `${message}: try again in ${seconds} second${seconds === 1 ? "" : "s"}`);
}

const sendJson = (res: Response, status: number, body: unknown) => writeJson(res, status, body, { noStore: true });

/** Runs `handler` with its errors passed on to the dashboard's error handler. */
const route =
  (handler: (req: Request, res: Response) => Promise<void>) =>
  (req: Request, res: Response, next: NextFunction): void => {
    handler(req, res).catch(next);
  };

const sessionBody = (key: ApiKeyDTO, session: Session) => ({
  sign_in: true,
  signed_in: true,
  key: { id: key.id, title: key.title, redacted: key.redacted },
  csrf_token: session.csrfToken,
  expires_at: new Date(session.expiresAt).toISOString(),
});

export function signInRoutes(router: Router, parts: SignInParts): void {
  const { express, keys, now, sessions, cookieOf } = parts;

  /**
   * Why `key` may not use the dashboard now, as the end of a sentence about it, or undefined
   * when it may. The one rule for signing in and for every request of a session, so that a
   * change made to the key after sign-in applies to its sessions at their next request.
   */
  function refusalOf(key: ApiKeyDTO): string | undefined {
    const ended = endedBy(key, new Date(now()));
    if (ended) return ended === "revoked" ? "was revoked" : "has expired";
    const missing = parts.access.missing(key, "read");
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

  /**
   * The request's session and its key, when the key may still use the dashboard. Otherwise the
   * request is answered 401: when the key may not, every session it opened ends and the cookie
   * is cleared.
   */
  async function liveSession(req: Request, res: Response): Promise<{ session: Session; key: ApiKeyDTO } | undefined> {
    const session = sessions.find(readCookie(req, cookieOf(req).name), now());
    if (!session) {
      sendJson(res, 401, { type: "unauthorized", message: SIGN_IN_MESSAGES.signedOut });
      return undefined;
    }
    const key = await currentKey(session.keyId);
    const refusal = key ? refusalOf(key) : "was deleted";
    if (key && refusal === undefined) {
      // Refused from here, for this request only: a cookie carried elsewhere ends no one's session.
      if (key.allowed_ips.length > 0 && !allows(compileAllowList(key.allowed_ips), clientAddress(req))) {
        sendJson(res, 403, { type: "forbidden", message: SIGN_IN_MESSAGES.address });
        return undefined;
      }
      return { session, key };
    }
    sessions.closeFor(session.keyId);
    res.setHeader("Set-Cookie", clearedCookie(cookieOf(req)));
    sendJson(res, 401, { type: "unauthorized", message: `Your session has ended: the key that opened it ${refusal}. Sign in with another key` });
    return undefined;
  }

  router.get(
    "/session",
    route(async (req, res) => {
      // A first visit, with no cookie at all, is no error: the page shows its sign-in form (and
      // the browser's console no failed request). A cookie that names no live session is 401.
      if (readCookie(req, cookieOf(req).name) === undefined) {
        sendJson(res, 200, { sign_in: true, signed_in: false });
        return;
      }
      const live = await liveSession(req, res);
      if (live) sendJson(res, 200, sessionBody(live.key, live.session));
    }),
  );

  router.post(
    "/session",
    express.json({ limit: "4kb" }),
    route(async (req, res) => {
      if (crossOrigin(req)) throw new ApiKeyError("forbidden", GUARD_MESSAGES.crossOrigin);
      const body: unknown = req.body;
      const token = typeof body === "object" && body !== null ? (body as { secret_key?: unknown }).secret_key : undefined;
      if (!req.is("application/json") || typeof token !== "string" || token.length > MAX_TOKEN_LENGTH) {
        throw new ApiKeyError("invalid_data", SIGN_IN_MESSAGES.body);
      }
      // Counted before the key is checked: a wrong key counts as a right one does.
      const addressWait = await parts.signInsPerAddress.take(req.ip ?? "");
      if (addressWait > 0) throw throttled(res, addressWait, "Too many sign-ins from this address");
      // One verification, at no cost: a session is a person at the page, not traffic of the
      // key's, and the sign-in throttles pace it; a key refused or throttled spends nothing.
      const found = await keys().verifyApiKey(token.trim(), { type: "secret", cost: 0, ip: clientAddress(req) });
      if (found.code === "ip_not_allowed") throw new ApiKeyError("forbidden", SIGN_IN_MESSAGES.address);
      if (!found.valid || !found.api_key) throw new ApiKeyError("unauthorized", SIGN_IN_MESSAGES.invalidKey);
      const refusal = refusalOf(found.api_key);
      if (refusal !== undefined) throw new ApiKeyError("forbidden", `This key may not use the dashboard: it ${refusal}. Sign in with another key`);
      const keyWait = await parts.signInsPerKey.take(found.api_key.id);
      if (keyWait > 0) throw throttled(res, keyWait, "Too many sign-ins with this key");
      sessions.close(readCookie(req, cookieOf(req).name));
      const { id, session } = sessions.open(found.api_key.id, now());
      res.setHeader("Set-Cookie", sessions.cookie(id, cookieOf(req)));
      sendJson(res, 200, sessionBody(found.api_key, session));
    }),
  );

  router.delete("/session", (req, res) => {
    const id = readCookie(req, cookieOf(req).name);
    const session = sessions.find(id, now());
    if (session && !sameSecret(req.headers[CSRF_HEADER], session.csrfToken)) {
      sendJson(res, 403, { type: "forbidden", message: GUARD_MESSAGES.csrf });
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
      sendJson(res, 403, { type: "forbidden", message: GUARD_MESSAGES.csrf });
      return false;
    }
    const { key } = live;
    const properties = requestProperties(req);
    properties.api_key = key;
    properties.auth_context = secretKeyAuthContext(key);
    return true;
  }

  // In front of the admin router: the session stands in for apiKeyAuth.
  router.use("/api", (req, res, next) => {
    admit(req, res).then((admitted) => {
      if (admitted) next();
    }, next);
  });
}

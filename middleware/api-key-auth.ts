// apiKeyAuth(): reads the credential, authenticates it and attaches the key's context to the
// request. Typed on node:http only, so Express 4, Express 5, Connect and bare http all work.
import type { IncomingMessage, ServerResponse } from "node:http";
import { ApiKeyError } from "../lib/errors";
import { serviceOrDefault } from "../lib/default-service";
import { checkVerifyOptions } from "../lib/key-verifier";
import type { ApiKeyService } from "../lib/service";
import type { ApiKeyType } from "../lib/types";
import { type Credential, MESSAGES, readPublishableCredential, readSecretCredential } from "./credentials";
import { rateLimitHeaders, reportedStates } from "./rate-limit-headers";
import { type AuthenticatedRequest, secretKeyContexts } from "./request-context";
import { clientAddress } from "./http/client-address";
import { requestProperties } from "./http/request-properties";
import { type FactorySpec, checkFactoryOptions, rules, scopesProblem } from "./http/options";
import { type NextFunction, asApiKeyError, loggerOf, respondWithError } from "./http/respond";
import type { PolicyApiKey, VerifyResult } from "./verify-types";

export type { NextFunction };

export type ErrorHandler = (error: ApiKeyError, req: IncomingMessage, res: ServerResponse, next: NextFunction) => void;

export interface ApiKeyAuthOptions {
  /** Which key the route takes: secret keys from `Authorization: Basic`, publishable keys from `x-publishable-api-key`. Default: `"secret"`. */
  type?: ApiKeyType;
  /** When `false`, requests without a key go through unauthenticated; a key that is present but invalid is still rejected. Default: `true`. */
  required?: boolean;
  /**
   * Scopes every request's key must have (secret keys only), as `resource:action` words; a key
   * without one of them gets 403 `forbidden` naming what is missing, even with `required: false`.
   * Default: none.
   */
  scopes?: string[];
  /** The service to authenticate with. Default: the one the latest `initialize()` returned. */
  service?: ApiKeyService;
  /** Reads the token from the request yourself; return `undefined` when there is none. Default: the headers above. */
  getToken?: (req: IncomingMessage) => string | undefined | Promise<string | undefined>;
  /** Answers a rejected request, and a failed one (`unavailable` 503, `unknown_error` 500). Default: a JSON `{ type, message }` response. Pass `(err, req, res, next) => next(err)` to use your own error handler. */
  onError?: ErrorHandler;
}

const OPTIONS: FactorySpec<ApiKeyAuthOptions> = {
  name: "apiKeyAuth",
  usage: 'apiKeyAuth() returns the middleware: write app.use(apiKeyAuth({ type: "secret" })), not app.use(apiKeyAuth).',
  rules: {
    type: (value) => (value === "secret" || value === "publishable" ? undefined : '`type` must be "secret" or "publishable".'),
    required: rules.boolean("required"),
    scopes: (value) => scopesProblem(value, "`scopes`"),
    service: rules.service,
    getToken: rules.function("getToken"),
    onError: rules.function("onError"),
  },
  together: ({ type, scopes }) =>
    scopes !== undefined && scopes.length > 0 && type === "publishable" ? "`scopes` applies to secret keys only: publishable keys have none." : undefined,
};

/** The 403 for a key without every scope a route requires. */
export function forbidden(missing: readonly string[]): ApiKeyError {
  return new ApiKeyError("forbidden", `Forbidden: the API key lacks the scope${missing.length === 1 ? "" : "s"} ${missing.join(", ")}`);
}

function rateLimited(result: VerifyResult): ApiKeyError {
  const states = reportedStates(result.rate_limit);
  const spent = states.find((state) => state.remaining <= 0) ?? states[0];
  const rule = spent && result.api_key?.rate_limits?.find((limit) => limit.name === spent.name);
  const detail = spent ? ` "${spent.name}"${rule ? ` (${rule.limit} requests per ${rule.duration} seconds)` : ""}` : "";
  return new ApiKeyError("rate_limited", `Too many requests: the API key's rate limit${detail} is spent; retry after the time in Retry-After`);
}

function usageExceeded(key: PolicyApiKey | undefined): ApiKeyError {
  const refill = key?.refill;
  const when = refill ? `; it refills with ${refill.amount} uses each ${refill.interval}` : "";
  return new ApiKeyError("usage_exceeded", `Usage quota exceeded: the API key has no uses left${when}`);
}

/** What authenticating a request comes to: the rejection to answer with, or undefined to go on. */
type Outcome = ApiKeyError | undefined;

/** Refused for the client's address: 403, saying nothing of the key's list. */
const IP_NOT_ALLOWED = new ApiKeyError("forbidden", "Forbidden: the API key is not accepted from this address");

function isThenable<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown } | undefined)?.then === "function";
}

function tokenCredential(token: string | undefined): Credential {
  return token === undefined || token === "" ? { kind: "missing" } : { kind: "token", token };
}

export function apiKeyAuth(options?: ApiKeyAuthOptions) {
  const { type = "secret", required = true, scopes = [], service, getToken, onError = respondWithError } = checkFactoryOptions(OPTIONS, options);
  // Copied, so that a caller changing its array later cannot change what the route requires.
  const requiredScopes = [...scopes];
  const secret = type === "secret";
  // Each rejection has the reference's type: 401 unauthorized for secret keys, 400 not_allowed for publishable.
  const rejection = (message: string) => new ApiKeyError(secret ? "unauthorized" : "not_allowed", message);
  const missing = rejection(secret ? MESSAGES.secretMissing : MESSAGES.publishableMissing);
  const invalidKey = rejection(secret ? MESSAGES.secretInvalid : MESSAGES.publishableInvalid);

  const verifyOptions = checkVerifyOptions({ type, scopes: requiredScopes });

  /** The credential, at once unless a `getToken` of the app's answers with a promise. */
  function readCredential(req: IncomingMessage): Credential | Promise<Credential> {
    if (getToken) {
      const token = getToken(req);
      return isThenable(token) ? Promise.resolve(token).then(tokenCredential) : tokenCredential(token);
    }
    return secret
      ? readSecretCredential(req.headers.authorization)
      : readPublishableCredential(req.headers["x-publishable-api-key"]);
  }

  /**
   * Attaches the key's context and answers undefined, or answers the rejection: in the same
   * tick when the credential and the verification are at hand (a warm key), else a promise.
   */
  function authenticateRequest(req: AuthenticatedRequest, res: ServerResponse): Outcome | Promise<Outcome> {
    const credential = readCredential(req);
    return isThenable(credential) ? credential.then((read) => verifyCredential(read, req, res)) : verifyCredential(credential, req, res);
  }

  function verifyCredential(credential: Credential, req: AuthenticatedRequest, res: ServerResponse): Outcome | Promise<Outcome> {
    if (credential.kind === "missing") return required ? missing : undefined;
    if (credential.kind === "invalid") return rejection(credential.message);
    const keys = serviceOrDefault(service);
    // A service without the synchronous form (a wrapper of the app's, say) is asked the public way.
    const verifier = keys.verifier as ApiKeyService["verifier"] | undefined;
    const answer = typeof verifier?.verify === "function"
      ? verifier.verify(credential.token, verifyOptions, () => clientAddress(req))
      : keys.verifyApiKey(credential.token, { type, scopes: requiredScopes, ip: clientAddress(req) });
    return isThenable(answer) ? answer.then((result) => conclude(result, credential.token, req, res)) : conclude(answer, credential.token, req, res);
  }

  /** Sets the RateLimit headers and the request's context for a verification's result. */
  function conclude(result: VerifyResult, token: string, req: AuthenticatedRequest, res: ServerResponse): Outcome {
    const key = result.api_key;
    // Only for a key that works: headers on the answer to a revoked or expired key would tell
    // it apart from an unknown one.
    const counted = result.code === "valid" || result.code === "rate_limited" || result.code === "usage_exceeded";
    if (key && counted && (key.rate_limits?.length || result.rate_limit !== undefined)) {
      const refused = result.code === "rate_limited";
      for (const [name, value] of Object.entries(rateLimitHeaders(key.id, key.rate_limits ?? [], result.rate_limit, refused))) {
        res.setHeader(name, value);
      }
    }
    switch (result.code) {
      case "valid":
        break;
      case "forbidden":
        return forbidden(result.missing_scopes ?? requiredScopes);
      case "rate_limited":
        return rateLimited(result);
      case "usage_exceeded":
        return usageExceeded(key);
      case "ip_not_allowed":
        return IP_NOT_ALLOWED;
      default:
        // not_found, revoked, expired, and any code this version does not know: refused alike,
        // so a client cannot tell an expired key from one that never existed.
        return invalidKey;
    }
    if (!key) return invalidKey;
    const properties = requestProperties(req);
    if (secret) {
      const contexts = secretKeyContexts(key);
      properties.auth_context = contexts.auth;
      properties.secret_key_context = contexts.secret;
    } else {
      properties.publishable_key_context = { key: token, sales_channel_ids: result.sales_channel_ids ?? [] };
    }
    properties.api_key = key;
    return undefined;
  }

  /**
   * A typed failure (a store outage: 503 `unavailable`) is answered as it is; a bug here (a
   * throwing getToken, say) is a 500 `unknown_error`, its cause logged, never shown.
   */
  function unexpected(error: unknown): ApiKeyError {
    return asApiKeyError(error, loggerOf(service), "while authenticating a request");
  }

  return function apiKeyAuthMiddleware(req: IncomingMessage, res: ServerResponse, next: NextFunction): void {
    let outcome: Outcome | Promise<Outcome>;
    try {
      outcome = authenticateRequest(req, res);
    } catch (error) {
      return onError(unexpected(error), req, res, next);
    }
    // `next` for success is called outside any try, so an error thrown downstream is never
    // caught here and reported twice.
    if (!isThenable(outcome)) return outcome ? onError(outcome, req, res, next) : next();
    outcome.then(
      (rejected) => (rejected ? onError(rejected, req, res, next) : next()),
      (error: unknown) => onError(unexpected(error), req, res, next),
    );
  };
}

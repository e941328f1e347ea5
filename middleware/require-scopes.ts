// requireScopes(): a per-route scope check after an apiKeyAuth({ type: "secret" }). It reads
// the key the authentication attached to the request, so it costs no store access.
import type { IncomingMessage, ServerResponse } from "node:http";
import { ApiKeyError, failConfiguration } from "../lib/errors";
import { missingScopes } from "../lib/scopes";
import { forbidden } from "./api-key-auth";
import { checkScopes } from "./http/options";
import type { NextFunction } from "./http/respond";
import { MESSAGES } from "./credentials";
import type { AuthenticatedRequest } from "./request-context";
import { respondWithError } from "./http/respond";

/**
 * Middleware that answers 403 `forbidden`, naming the missing scopes, unless the request's
 * secret key has every one of `scopes`; 401 `unauthorized` when no secret key authenticated the
 * request (no apiKeyAuth in front, or one with `required: false` and no key sent).
 */
export function requireScopes(...scopes: string[]) {
  if (scopes.length === 0) failConfiguration("requireScopes() takes at least one scope, such as requireScopes(\"orders:read\").");
  checkScopes(scopes, "requireScopes()");
  const required = [...scopes];
  const unauthenticated = new ApiKeyError("unauthorized", MESSAGES.secretMissing);

  return function requireScopesMiddleware(req: IncomingMessage, res: ServerResponse, next: NextFunction): void {
    const { api_key: key, auth_context } = req as AuthenticatedRequest;
    // The auth_context must name this very key: a publishable key attaches api_key but no
    // auth_context, and a secret key is the only kind that has scopes.
    if (!key || key.type !== "secret" || auth_context?.actor_id !== key.id) {
      respondWithError(unauthenticated, req, res);
      return;
    }
    const missing = missingScopes(key.scopes ?? [], required);
    if (missing.length > 0) {
      respondWithError(forbidden(missing), req, res);
      return;
    }
    next();
  };
}

// What a successful authentication attaches to the request, with the reference's names.
import type { IncomingMessage } from "node:http";
import type { ApiKeyDTO } from "../lib/types";

/** Set for secret keys, as Medusa's authenticate middleware sets it. */
export interface AuthContext {
  /** The key's id (`apk_...`). */
  actor_id: string;
  actor_type: "api-key";
  auth_identity_id: "";
  /** `{ scopes, owner_id }`: the key's scopes (`[]` when it has none) and owner (`null`). */
  app_metadata: Record<string, unknown>;
  user_metadata: Record<string, unknown>;
}

/** Set for secret keys: the user who created the key, for attributing the actions it takes. */
export interface SecretKeyContext {
  created_by: string;
}

/** Set for publishable keys: the token and the sales channels it is scoped to. */
export interface PublishableKeyContext {
  key: string;
  sales_channel_ids: string[];
}

/** A secret key's two contexts, read-only, made once per key object. */
const SECRET_CONTEXTS = new WeakMap<ApiKeyDTO, SecretKeyContexts>();

interface SecretKeyContexts {
  auth: AuthContext;
  secret: SecretKeyContext;
}

/**
 * The `auth_context` and `secret_key_context` a secret key acts under, wherever a request is
 * authenticated by one. Made once per key object (the verifier hands out one read-only key per
 * cached entry, so a warm request allocates none) and read-only, as the key itself is.
 */
export function secretKeyContexts(key: ApiKeyDTO): SecretKeyContexts {
  let contexts = SECRET_CONTEXTS.get(key);
  if (!contexts) {
    const app_metadata = Object.freeze({ scopes: Object.isFrozen(key.scopes) ? key.scopes : Object.freeze([...(key.scopes ?? [])]), owner_id: key.owner_id ?? null });
    const auth: AuthContext = Object.freeze({ actor_id: key.id, actor_type: "api-key", auth_identity_id: "", app_metadata, user_metadata: Object.freeze({}) });
    const secret = Object.freeze({ created_by: key.created_by });
    contexts = { auth, secret };
    SECRET_CONTEXTS.set(key, contexts);
  }
  return contexts;
}

/** The `auth_context` a secret key acts under (see `secretKeyContexts`). */
export function secretKeyAuthContext(key: ApiKeyDTO): AuthContext {
  return secretKeyContexts(key).auth;
}

export interface ApiKeyRequestProperties {
  auth_context?: AuthContext;
  secret_key_context?: SecretKeyContext;
  publishable_key_context?: PublishableKeyContext;
  /** The authenticated key, without secret material. */
  api_key?: ApiKeyDTO;
}

/**
 * A request after `apiKeyAuth()`; use it as `req as AuthenticatedRequest` or
 * `AuthenticatedRequest<express.Request>`. The package does not change Express's global types.
 */
export type AuthenticatedRequest<R extends IncomingMessage = IncomingMessage> = R & ApiKeyRequestProperties;

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

/**
 * A secret key's two contexts, read-only, made once per cached key. Found by the key's frozen
 * `scopes` when it has them: every copy the verifier hands out for one cached key shares that
 * array, including the copy per use of a key with a quota, which carries its own count.
 */
const SECRET_CONTEXTS = new WeakMap<object, SecretKeyContexts>();

interface SecretKeyContexts {
  auth: AuthContext;
  secret: SecretKeyContext;
}

function madeFor(contexts: SecretKeyContexts, key: ApiKeyDTO): boolean {
  return contexts.auth.actor_id === key.id && contexts.auth.app_metadata.owner_id === (key.owner_id ?? null) && contexts.secret.created_by === key.created_by;
}

/**
 * The `auth_context` and `secret_key_context` a secret key acts under, wherever a request is
 * authenticated by one: read-only, as the key itself is, and made once per cached key, so a warm
 * request allocates none.
 */
export function secretKeyContexts(key: ApiKeyDTO): SecretKeyContexts {
  const shared = Array.isArray(key.scopes) && Object.isFrozen(key.scopes);
  const anchor: object = shared ? key.scopes : key;
  let contexts = SECRET_CONTEXTS.get(anchor);
  if (!contexts || !madeFor(contexts, key)) {
    const app_metadata = Object.freeze({ scopes: shared ? key.scopes : Object.freeze([...(key.scopes ?? [])]), owner_id: key.owner_id ?? null });
    const auth: AuthContext = Object.freeze({ actor_id: key.id, actor_type: "api-key", auth_identity_id: "", app_metadata, user_metadata: Object.freeze({}) });
    const secret = Object.freeze({ created_by: key.created_by });
    contexts = { auth, secret };
    SECRET_CONTEXTS.set(anchor, contexts);
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

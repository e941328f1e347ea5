// apiKeyAuth(): reads the credential, authenticates it and attaches the key's context to the
// request. Typed on node:http only, so Express 4, Express 5, Connect and bare http all work.
import type { IncomingMessage, ServerResponse } from "node:http";
import { ApiKeyError, failConfiguration, isApiKeyError } from "../lib/errors";
import { getDefaultService, serviceOrDefault } from "../lib/initialize";
import type { ApiKeyService } from "../lib/service";
import type { ApiKeyType } from "../lib/types";
import { type Credential, MESSAGES, readPublishableCredential, readSecretCredential } from "./credentials";
import type { ApiKeyRequestProperties, AuthenticatedRequest } from "./request-context";
import { asApiKeyError, respondWithError } from "./respond";

export type NextFunction = (error?: unknown) => void;

export type ErrorHandler = (error: ApiKeyError, req: IncomingMessage, res: ServerResponse, next: NextFunction) => void;

export interface ApiKeyAuthOptions {
  /** Which key the route takes: secret keys from `Authorization: Basic`, publishable keys from `x-publishable-api-key`. Default: `"secret"`. */
  type?: ApiKeyType;
  /** When `false`, requests without a key go through unauthenticated; a key that is present but invalid is still rejected. Default: `true`. */
  required?: boolean;
  /** The service to authenticate with. Default: the one the latest `initialize()` returned. */
  service?: ApiKeyService;
  /** Reads the token from the request yourself; return `undefined` when there is none. Default: the headers above. */
  getToken?: (req: IncomingMessage) => string | undefined | Promise<string | undefined>;
  /** Answers a rejected request, and a failed one (`unavailable` 503, `unknown_error` 500). Default: a JSON `{ type, message }` response. Pass `(err, req, res, next) => next(err)` to use your own error handler. */
  onError?: ErrorHandler;
}

const OPTION_NAMES = ["type", "required", "service", "getToken", "onError"];

function checkOptions(options: unknown): ApiKeyAuthOptions {
  if (options === undefined) return {};
  if (typeof options !== "object" || options === null) failConfiguration("`apiKeyAuth(options)` takes an object.");
  if ("headers" in options && "method" in options) {
    failConfiguration('apiKeyAuth() returns the middleware: write app.use(apiKeyAuth({ type: "secret" })), not app.use(apiKeyAuth).');
  }
  const unknown = Object.keys(options).filter((name) => !OPTION_NAMES.includes(name));
  if (unknown.length > 0) failConfiguration(`unknown option \`${unknown[0]}\`; the options are ${OPTION_NAMES.join(", ")}.`);
  const { type, required, service, getToken, onError } = options as ApiKeyAuthOptions;
  if (type !== undefined && type !== "secret" && type !== "publishable") failConfiguration('`type` must be "secret" or "publishable".');
  if (required !== undefined && typeof required !== "boolean") failConfiguration("`required` must be a boolean.");
  if (service !== undefined && typeof service?.authenticate !== "function") failConfiguration("`service` must be the result of `initialize()`.");
  if (getToken !== undefined && typeof getToken !== "function") failConfiguration("`getToken` must be a function.");
  if (onError !== undefined && typeof onError !== "function") failConfiguration("`onError` must be a function.");
  return options as ApiKeyAuthOptions;
}

export function apiKeyAuth(options?: ApiKeyAuthOptions) {
  const { type = "secret", required = true, service, getToken, onError = respondWithError } = checkOptions(options);
  const secret = type === "secret";
  // Each rejection has the reference's type: 401 unauthorized for secret keys, 400 not_allowed for publishable.
  const rejection = (message: string) => new ApiKeyError(secret ? "unauthorized" : "not_allowed", message);
  const missing = rejection(secret ? MESSAGES.secretMissing : MESSAGES.publishableMissing);
  const invalidKey = rejection(secret ? MESSAGES.secretInvalid : MESSAGES.publishableInvalid);

  async function readCredential(req: IncomingMessage): Promise<Credential> {
    if (getToken) {
      const token = await getToken(req);
      return token === undefined || token === "" ? { kind: "missing" } : { kind: "token", token };
    }
    return secret
      ? readSecretCredential(req.headers.authorization)
      : readPublishableCredential(req.headers["x-publishable-api-key"]);
  }

  /** Attaches the key's context and resolves to undefined, or resolves to the rejection. */
  async function authenticateRequest(req: AuthenticatedRequest): Promise<ApiKeyError | undefined> {
    const credential = await readCredential(req);
    if (credential.kind === "missing") return required ? missing : undefined;
    if (credential.kind === "invalid") return rejection(credential.message);
    try {
      const keys = serviceOrDefault(service);
      let properties: ApiKeyRequestProperties;
      if (secret) {
        const key = await keys.authenticate(credential.token);
        if (!key) return invalidKey;
        properties = {
          auth_context: { actor_id: key.id, actor_type: "api-key", auth_identity_id: "", app_metadata: {}, user_metadata: {} },
          secret_key_context: { created_by: key.created_by },
          api_key: key,
        };
      } else {
        const match = await keys.authenticatePublishable(credential.token);
        if (!match) return invalidKey;
        properties = {
          publishable_key_context: { key: credential.token, sales_channel_ids: match.sales_channel_ids },
          api_key: match.api_key,
        };
      }
      Object.assign(req, properties);
      return undefined;
    } catch (error) {
      if (isApiKeyError(error)) return error;
      throw error;
    }
  }

  /** A bug here (a throwing getToken, say) is a 500 `unknown_error`, its cause logged, never shown. */
  function unexpected(error: unknown): ApiKeyError {
    const logger = (service ?? getDefaultService())?.logger ?? console;
    return asApiKeyError(error, logger, "while authenticating a request");
  }

  return function apiKeyAuthMiddleware(req: IncomingMessage, res: ServerResponse, next: NextFunction): void {
    // `next` for success is called outside any try, so an error thrown downstream is never
    // caught here and reported twice.
    authenticateRequest(req).then(
      (rejected) => (rejected ? onError(rejected, req, res, next) : next()),
      (error: unknown) => onError(unexpected(error), req, res, next),
    );
  };
}

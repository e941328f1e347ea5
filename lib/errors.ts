// ApiKeyError: the one error type the package throws for failures an app must tell apart.
import { redactToken, tokenFormat } from "./tokens";

/** Machine-readable error types, each with the HTTP status it maps to. */
export const ERROR_STATUS = {
  invalid_data: 400,
  not_allowed: 400,
  unauthorized: 401,
  // A valid key without a scope the route requires: it is known, just not allowed here.
  forbidden: 403,
  not_found: 404,
  // A rate limit of the key is spent for now (`Retry-After` says when to come back)...
  rate_limited: 429,
  // ...or its usage quota is spent, until a refill if it has one.
  usage_exceeded: 429,
  unavailable: 503,
  // A bug or an unexpected store failure (a missing table, say): retrying will not help, so
  // it is not reported as an outage. Named and worded as Medusa's error handler names its 500s.
  unknown_error: 500,
} as const;

export type ApiKeyErrorType = keyof typeof ERROR_STATUS;

/** The only message an `unknown_error` carries: its cause is logged, never sent to a client. */
export const UNKNOWN_ERROR_MESSAGE = "An unknown error occurred.";

/**
 * Anything shaped like the start of a secret token, wherever it stands: glued to other text
 * (`xsk_...`, `token=sk_...`), in any letter case (an upper-cased token loses little to a
 * guesser who has its checksum), cut short by a message that truncates what it quotes, or
 * run together with another token.
 * Eight characters are 48 bits of a token; shorter fragments say too little to be worth hiding.
 */
const SECRET_TOKEN_TEXT = /sk_(?:[0-9a-z]{1,16}_)?(?:(?!sk_)[0-9a-z]){8,}/gi; // a deployment's segment, then up to where a second token starts

/**
 * `text` with every secret token, or fragment of one, redacted: a whole token keeps the
 * display form of `redactToken`, anything else shows only its prefix.
 */
export function redactSecrets(text: string): string {
  return text.replace(SECRET_TOKEN_TEXT, (found) => (tokenFormat(found) !== undefined ? redactToken(found) : `${found.slice(0, 3)}***`));
}

/**
 * Redacts secret tokens in an error's message and stack, in place, before it is logged: a
 * driver's message quotes the failed SQL with its values, which hold whatever a caller sent.
 */
export function redactError<T>(error: T): T {
  if (!(error instanceof Error)) return error;
  try {
    error.message = redactSecrets(error.message);
    if (typeof error.stack === "string") error.stack = redactSecrets(error.stack);
  } catch {
    // A frozen error is logged as it is: failing to log would hide the failure itself.
  }
  return error;
}

export interface ApiKeyErrorOptions {
  cause?: unknown;
  /** A more precise HTTP status than the type's own, such as 413 or 415 for an `invalid_data` body. */
  status?: number;
}

export class ApiKeyError extends Error {
  readonly type: ApiKeyErrorType;
  readonly status: number;

  constructor(type: ApiKeyErrorType, message: string, options?: ApiKeyErrorOptions) {
    // Messages may quote caller input; a secret token pasted into the wrong field must not
    // travel on into logs, so it is redacted here, where every message passes.
    super(redactSecrets(message), options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.type = type;
    this.status = options?.status ?? ERROR_STATUS[type];
  }
}

/** The `unknown_error` that stands for an unexpected failure; `cause` is kept for logs only. */
export function unknownError(cause: unknown): ApiKeyError {
  return new ApiKeyError("unknown_error", UNKNOWN_ERROR_MESSAGE, { cause });
}

/** What kind of misconfiguration a TypeError of ours reports, in its `code`, for code that tells them apart. */
export type ConfigurationErrorCode =
  /** The options are not an object. */
  | "ERR_API_KEYS_OPTIONS_TYPE"
  /** A factory itself was mounted as the middleware (`app.use(apiKeyAuth)`). */
  | "ERR_API_KEYS_FACTORY_MISUSE"
  /** An option name the factory does not know (often a misspelling). */
  | "ERR_API_KEYS_UNKNOWN_OPTION"
  /** A known option with a value it does not take, or options that do not go together. */
  | "ERR_API_KEYS_INVALID_OPTION";

/** Misconfiguration is a programming error, not a request failure: a TypeError that names the package, with a stable `code`. */
export function failConfiguration(message: string, code: ConfigurationErrorCode = "ERR_API_KEYS_INVALID_OPTION"): never {
  throw Object.assign(new TypeError(`express-api-keys: ${message}`), { code });
}

export function isApiKeyError(error: unknown): error is ApiKeyError {
  return error instanceof ApiKeyError;
}

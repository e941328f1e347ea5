// ApiKeyError: the one error type the package throws for failures an app must tell apart.
import { redactToken } from "./tokens";

/** Machine-readable error types, each with the HTTP status it maps to. */
export const ERROR_STATUS = {
  invalid_data: 400,
  not_allowed: 400,
  unauthorized: 401,
  not_found: 404,
  unavailable: 503,
} as const;

export type ApiKeyErrorType = keyof typeof ERROR_STATUS;

/** Anything shaped like a secret token (not inside a word such as an id). */
const SECRET_TOKEN_TEXT = /(?<![0-9A-Za-z])sk_[0-9A-Za-z]+/g;

export class ApiKeyError extends Error {
  readonly type: ApiKeyErrorType;
  readonly status: number;

  constructor(type: ApiKeyErrorType, message: string, options?: { cause?: unknown }) {
    // Messages may quote caller input; a secret token pasted into the wrong field must not
    // travel on into logs, so it is redacted here, where every message passes.
    super(message.replace(SECRET_TOKEN_TEXT, redactToken), options);
    this.name = new.target.name;
    this.type = type;
    this.status = ERROR_STATUS[type];
  }
}

/** Misconfiguration is a programming error, not a request failure: a TypeError that names the package. */
export function failConfiguration(message: string): never {
  throw new TypeError(`express-api-keys: ${message}`);
}

export function isApiKeyError(error: unknown): error is ApiKeyError {
  return error instanceof ApiKeyError;
}

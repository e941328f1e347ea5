// ApiKeyError: the one error type the package throws for failures an app must tell apart.

/** Machine-readable error types, each with the HTTP status it maps to. */
export const ERROR_STATUS = {
  invalid_data: 400,
  not_allowed: 400,
  unauthorized: 401,
  not_found: 404,
  unavailable: 503,
} as const;

export type ApiKeyErrorType = keyof typeof ERROR_STATUS;

export class ApiKeyError extends Error {
  readonly type: ApiKeyErrorType;
  readonly status: number;

  constructor(type: ApiKeyErrorType, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.type = type;
    this.status = ERROR_STATUS[type];
  }
}

export function isApiKeyError(error: unknown): error is ApiKeyError {
  return error instanceof ApiKeyError;
}

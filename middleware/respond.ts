// The default onError: a JSON { type, message } answer written with plain node:http calls,
// so it works under Express 4, Express 5, Connect and a bare http server alike.
import type { IncomingMessage, ServerResponse } from "node:http";
import { ApiKeyError, redactError, unknownError } from "../lib/errors";
import type { Logger } from "../lib/logger";

export function respondWithError(error: ApiKeyError, _req: IncomingMessage, res: ServerResponse): void {
  const body = JSON.stringify({ type: error.type, message: error.message });
  res.statusCode = error.status;
  res.setHeader("Content-Type", "application/json; charset=utf-8");
  res.setHeader("Content-Length", Buffer.byteLength(body));
  if (error.status === 401) res.setHeader("WWW-Authenticate", 'Basic realm="api", charset="UTF-8"');
  res.end(body);
}

/**
 * The error to answer with: an ApiKeyError as it is; anything else is a bug, logged with its
 * stack through `logger` and answered as a 500 `unknown_error` that reveals nothing of it.
 */
export function asApiKeyError(error: unknown, logger: Logger, during: string): ApiKeyError {
  if (error instanceof ApiKeyError) return error;
  logger.error(`express-api-keys: unexpected error ${during}`, redactError(error));
  return unknownError(error);
}

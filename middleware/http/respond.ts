// How the HTTP layer answers: JSON written with plain node:http calls (so Express 4, Express 5,
// Connect and a bare server all work), one error-to-response function, and one Express error
// handler for the routers. Every error answer of the package comes from here.
import type { IncomingMessage, ServerResponse } from "node:http";
import { getDefaultService } from "../../lib/default-service";
import { ApiKeyError, redactError, unknownError } from "../../lib/errors";
import type { Logger } from "../../lib/logger";
import type { ApiKeyService } from "../../lib/service";

export type NextFunction = (error?: unknown) => void;

/** A JSON answer; `noStore` for answers that hold authenticated data, which no cache may keep. */
export function writeJson(res: ServerResponse, status: number, body: unknown, { noStore = false }: { noStore?: boolean } = {}): void {
  const text = JSON.stringify(body);
  send(res, status, text, Buffer.byteLength(text), noStore);
}

function send(res: ServerResponse, status: number, text: string, bytes: number, noStore: boolean): void {
  res.statusCode = status;
  res.setHeader("Content-Type", "application/json; charset=utf-8");
  if (noStore) res.setHeader("Cache-Control", "no-store");
  res.setHeader("Content-Length", bytes);
  res.end(text);
}

/** An error's answer as last written: its body, and what it was written from. */
interface ErrorBody {
  type: string;
  message: string;
  text: string;
  bytes: number;
}

/**
 * Each error's body, kept by the error: the middleware answers most rejections (an unknown
 * key, a missing one) with one of a few errors it makes up front, so a flood of bad tokens
 * pays no JSON.stringify per request.
 */
const errorBodies = new WeakMap<ApiKeyError, ErrorBody>();

function errorBody(error: ApiKeyError): ErrorBody {
  const known = errorBodies.get(error);
  // Checked against the error as it is now: an Error's message can be assigned after the fact.
  if (known && known.type === error.type && known.message === error.message) return known;
  const text = JSON.stringify({ type: error.type, message: error.message });
  const made = { type: error.type, message: error.message, text, bytes: Buffer.byteLength(text) };
  errorBodies.set(error, made);
  return made;
}

/**
 * An error as the contract's `{ type, message }`. `challenge` adds the Basic challenge to a 401,
 * as an API route should; the dashboard, which signs in with its own form, goes without.
 */
export function writeError(res: ServerResponse, error: ApiKeyError, { challenge = false, noStore = false }: { challenge?: boolean; noStore?: boolean } = {}): void {
  if (challenge && error.status === 401) res.setHeader("WWW-Authenticate", 'Basic realm="api", charset="UTF-8"');
  const body = errorBody(error);
  send(res, error.status, body.text, body.bytes, noStore);
}

const CHALLENGE = { challenge: true };

/** The default `onError` of apiKeyAuth and requireScopes. */
export function respondWithError(error: ApiKeyError, _req: IncomingMessage, res: ServerResponse): void {
  writeError(res, error, CHALLENGE);
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

/** Where a part of the HTTP layer reports its unexpected errors: its service's logger, else the default service's, else the console. */
export function loggerOf(service: ApiKeyService | undefined): Logger {
  return (service ?? getDefaultService())?.logger ?? console;
}

/**
 * The Express error handler of a router: every error raised inside it is answered as JSON,
 * never with the app's HTML error page, and with `Cache-Control: no-store`. `clientError` turns
 * the errors of the client's making that are not ApiKeyErrors (a body parser's) into one;
 * anything else is a bug, logged once.
 */
export function jsonErrorHandler(options: { service: ApiKeyService | undefined; during: string; clientError: (error: unknown) => ApiKeyError | undefined }) {
  return function jsonError(error: unknown, _req: IncomingMessage, res: ServerResponse, next: NextFunction): void {
    if (res.headersSent) {
      next(error);
      return;
    }
    const typed = options.clientError(error) ?? asApiKeyError(error, loggerOf(options.service), options.during);
    writeError(res, typed, { noStore: true });
  };
}

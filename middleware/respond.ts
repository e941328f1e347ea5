// The default onError: a JSON { type, message } answer written with plain node:http calls,
// so it works under Express 4, Express 5, Connect and a bare http server alike.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { ApiKeyError } from "../lib/errors";

export function respondWithError(error: ApiKeyError, _req: IncomingMessage, res: ServerResponse): void {
  const body = JSON.stringify({ type: error.type, message: error.message });
  res.statusCode = error.status;
  res.setHeader("Content-Type", "application/json; charset=utf-8");
  res.setHeader("Content-Length", Buffer.byteLength(body));
  if (error.status === 401) res.setHeader("WWW-Authenticate", 'Basic realm="api", charset="UTF-8"');
  res.end(body);
}

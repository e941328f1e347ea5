// Errors of the client's making that Express and body-parser raise (a malformed or oversized
// body, a path with broken percent-encoding), in words a client can act on, for the routers'
// error handler (`jsonErrorHandler`'s `clientError`).
import { ApiKeyError, redactSecrets } from "../../lib/errors";

/** What body-parser's errors mean, by their `type`; `limit` is the router's body limit. */
function bodyErrors(limit: string): Record<string, string> {
  return {
    "entity.parse.failed": "the body is not valid JSON",
    "entity.too.large": `the body is larger than ${limit}`,
    "charset.unsupported": "the body's charset is not supported: send UTF-8",
    "encoding.unsupported": "the body's Content-Encoding is not supported: send it uncompressed, or gzip-compressed",
    "request.aborted": "the request was aborted before the body was read",
    "request.size.invalid": "the body's length does not match its Content-Length",
  };
}

/**
 * For a router whose bodies may be `limit` large: errors from Express and body-parser that carry
 * a 4xx status as `invalid_data` with that status. Errors with another status, or none, are not
 * the client's doing: undefined.
 */
export function clientHttpErrors(limit: string): (error: unknown) => ApiKeyError | undefined {
  const known = bodyErrors(limit);
  return (error) => {
    if (error instanceof ApiKeyError || typeof error !== "object" || error === null) return undefined;
    const { status, statusCode, type, message } = error as { status?: unknown; statusCode?: unknown; type?: unknown; message?: unknown };
    const code = typeof status === "number" ? status : statusCode;
    if (typeof code !== "number" || !Number.isInteger(code) || code < 400 || code > 499) return undefined;
    const words =
      (typeof type === "string" ? known[type] : undefined) ??
      (error instanceof URIError
        ? "the path holds malformed percent-encoding"
        : redactSecrets(typeof message === "string" ? message : "the request is malformed").slice(0, 200));
    return new ApiKeyError("invalid_data", `Invalid request: ${words}`, { cause: error, status: code });
  };
}

// What stands guard over every answer and every change of the dashboard: security headers, the
// origin check, and the CSRF header's name.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Request } from "express";
import type { NextFunction } from "../http/respond";

/** The header every change carries: the session's CSRF token (any value with `signIn: false`). */
export const CSRF_HEADER = "x-csrf-token";

export const GUARD_MESSAGES = {
  csrf: `Refused: a change must come from the dashboard's own page, with the ${CSRF_HEADER} header it sends`,
  crossOrigin: "Refused: the request comes from another origin (scheme, host or port) than the dashboard's",
};

/**
 * No script or style but our own files, nothing from elsewhere, no framing. `img-src data:`
 * is for the page's empty icon, which spares the browser a request for /favicon.ico.
 */
const CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/** Headers every answer of the dashboard carries. */
export function securityHeaders(_req: IncomingMessage, res: ServerResponse, next: NextFunction): void {
  res.setHeader("Content-Security-Policy", CONTENT_SECURITY_POLICY);
  res.setHeader("X-Content-Type-Options", "nosniff");
  res.setHeader("Referrer-Policy", "no-referrer");
  res.setHeader("X-Frame-Options", "DENY");
  next();
}

/** Whether a request may change something (anything but a read). */
export const changes = (req: IncomingMessage) => req.method !== "GET" && req.method !== "HEAD";

/** The origin (scheme, host and port) of a URL, or undefined when it is none. */
function originOf(url: string): string | undefined {
  try {
    const { origin } = new URL(url);
    return origin === "null" ? undefined : origin;
  } catch {
    return undefined;
  }
}

/**
 * The Host the client asked for, with its port. Behind a proxy the app trusts (`trust proxy`),
 * the first X-Forwarded-Host, as Express 5's `req.host` reads it: Express 4's `req.host` drops
 * the port, so it is read here for both.
 */
function requestedHost(req: Request): string | undefined {
  const trustProxy = req.app.get("trust proxy fn") as (address: string | undefined, hop: number) => boolean;
  const forwarded = req.get("X-Forwarded-Host");
  return (forwarded && trustProxy(req.socket.remoteAddress, 0) ? forwarded.split(",")[0]!.trim() : req.get("Host")) || undefined;
}

/**
 * A browser names the page that sent a request in `Origin` (always, for a fetch that is not a
 * GET). Any other origin than the request's own is refused: another host, but also another port
 * or scheme of this host (`http://127.0.0.1:8080` is another app than `http://127.0.0.1:3000`).
 * Requests without one (curl, tests) are not cross-site requests from a browser.
 * `req.protocol` follows X-Forwarded-Proto when the app trusts its proxy.
 */
export function crossOrigin(req: Request): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return false;
  const own = originOf(`${req.protocol}://${requestedHost(req) ?? ""}`);
  return own === undefined || originOf(origin) !== own;
}

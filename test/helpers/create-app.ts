// One app shape on every framework the middleware supports: Express 5, Express 4, Connect and
// a bare node:http server. Routes answer with what the middleware attached to the request.
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import connect from "connect";
import express5 from "express";
import express4 from "express4";
import { apiKeyAuth, type ApiKeyAuthOptions } from "../../middleware/api-key-auth";
import type { AuthenticatedRequest } from "../../middleware/request-context";

export const FRAMEWORKS = ["express5", "express4", "connect", "http"] as const;
export type Framework = (typeof FRAMEWORKS)[number];

type Handler = (req: IncomingMessage, res: ServerResponse, next: (error?: unknown) => void) => void;

function echo(req: IncomingMessage, res: ServerResponse): void {
  const { auth_context, secret_key_context, publishable_key_context, api_key } = req as AuthenticatedRequest;
  const body = JSON.stringify({ auth_context, secret_key_context, publishable_key_context, api_key });
  res.setHeader("Content-Type", "application/json");
  res.setHeader("Content-Length", Buffer.byteLength(body));
  res.end(body);
}

function failWith500(res: ServerResponse, error: unknown): void {
  res.statusCode = 500;
  res.end(JSON.stringify({ type: "unknown_error", message: String(error) }));
}

/** `/admin` takes a secret key, `/store` a publishable key, `/optional` an optional secret key, `/public` nothing. */
export function createApp(framework: Framework, options: ApiKeyAuthOptions = {}): http.Server {
  const routes: [string, Handler | undefined][] = [
    ["/admin", apiKeyAuth({ ...options, type: "secret" })],
    ["/store", apiKeyAuth({ ...options, type: "publishable" })],
    ["/optional", apiKeyAuth({ ...options, type: "secret", required: false })],
    ["/public", undefined],
  ];
  switch (framework) {
    case "express5":
    case "express4": {
      const app = framework === "express5" ? express5() : express4();
      for (const [path, auth] of routes) {
        if (auth) app.get(path, auth, echo);
        else app.get(path, echo);
      }
      return http.createServer(app);
    }
    case "connect": {
      const app = connect();
      for (const [path, auth] of routes) {
        if (auth) app.use(path, auth);
        app.use(path, echo);
      }
      return http.createServer(app);
    }
    case "http":
      return http.createServer((req, res) => {
        const route = routes.find(([path]) => req.url === path || req.url?.startsWith(`${path}?`));
        if (!route) {
          res.statusCode = 404;
          res.end();
          return;
        }
        const auth = route[1];
        if (!auth) return echo(req, res);
        auth(req, res, (error) => (error ? failWith500(res, error) : echo(req, res)));
      });
  }
}

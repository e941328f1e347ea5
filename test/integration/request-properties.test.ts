// The properties apiKeyAuth attaches (`req.auth_context`, `req.secret_key_context`,
// `req.publishable_key_context`, `req.api_key`) on Express requests, whose prototype Express
// swaps per request: they are served by accessors on Express's request prototype, not added to
// the request (see middleware/http/request-properties.ts). What a handler reads must not change.
import assert from "node:assert/strict";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import express5 from "express";
import express4 from "express4";
import request from "supertest";
import type { ApiKeyService } from "../../lib/service";
import type { ApiKeyDTO } from "../../lib/types";
import { apiKeyAuth } from "../../middleware/api-key-auth";
import type { AuthenticatedRequest } from "../../middleware/request-context";
import { initialize } from "../../setup/initialize";

const basic = (token: string) => `Basic ${Buffer.from(`${token}:`).toString("base64")}`;

type Next = (error?: unknown) => void;

/** What a handler sees of the four properties. */
function seen(req: IncomingMessage) {
  const { auth_context, secret_key_context, publishable_key_context, api_key } = req as AuthenticatedRequest;
  return { actor_id: auth_context?.actor_id, created_by: secret_key_context?.created_by, sales_channel_ids: publishable_key_context?.sales_channel_ids, api_key_id: api_key?.id };
}

describe("apiKeyAuth's request properties on Express", function () {
  this.timeout(20_000);
  let service: ApiKeyService;
  let secret: ApiKeyDTO;
  let publishable: ApiKeyDTO;

  before(async () => {
    service = await initialize({ database: "sqlite://memory", redis: false });
    secret = await service.createApiKeys({ title: "admin", type: "secret", created_by: "user_1" });
    publishable = await service.createApiKeys({ title: "store", type: "publishable", created_by: "user_1" });
    await service.updateLinks(publishable.id, { add: ["sc_web"] });
  });

  after(() => service.close());

  for (const [name, express] of [["Express 5", express5], ["Express 4", express4]] as const) {
    describe(name, () => {
      it("are read by later handlers, in a mounted app and after it, and not by a request that did not authenticate", async () => {
        const app = express();
        const admin = express();
        const log: unknown[] = [];
        admin.use(apiKeyAuth({ service }));
        admin.get("/", (req, _res, next: Next) => {
          log.push({ in: "sub-app", ...seen(req) });
          next();
        });
        app.use("/admin", admin);
        // The request leaves the mounted app, and Express gives it the outer app's prototype back.
        app.get("/admin", (req, res) => res.json({ after: seen(req) }));
        app.get("/public", (req, res) => res.json({ seen: seen(req), has: Object.keys(req).filter((key) => key.endsWith("_context") || key === "api_key") }));

        const res = await request(app).get("/admin").set("Authorization", basic(secret.token));
        assert.equal(res.status, 200, JSON.stringify(res.body));
        const expected = { actor_id: secret.id, created_by: "user_1", sales_channel_ids: undefined, api_key_id: secret.id };
        assert.deepEqual(log, [{ in: "sub-app", ...expected }]);
        assert.deepEqual(res.body.after, JSON.parse(JSON.stringify(expected)));

        const anonymous = await request(app).get("/public");
        assert.deepEqual(anonymous.body, { seen: {}, has: [] });
      });

      it("hold both keys when a publishable and a secret key authenticate the same request", async () => {
        const app = express();
        app.use(apiKeyAuth({ service, type: "publishable" }));
        app.get("/both", apiKeyAuth({ service }), (req, res) => res.json(seen(req)));
        const res = await request(app).get("/both").set("x-publishable-api-key", publishable.token).set("Authorization", basic(secret.token));
        assert.equal(res.status, 200, JSON.stringify(res.body));
        // api_key is the last key to authenticate; each context stays.
        assert.deepEqual(res.body, { actor_id: secret.id, created_by: "user_1", sales_channel_ids: ["sc_web"], api_key_id: secret.id });
      });

      it("take an app's own assignments, before and after the middleware", async () => {
        const app = express();
        const own = { actor_id: "user_7", actor_type: "user", auth_identity_id: "", app_metadata: {}, user_metadata: {} };
        app.get(
          "/own",
          (req, _res, next: Next) => {
            (req as AuthenticatedRequest).auth_context = own as unknown as AuthenticatedRequest["auth_context"];
            next();
          },
          (req, res) => res.json(seen(req)),
        );
        app.get(
          "/over",
          apiKeyAuth({ service }),
          (req, _res, next: Next) => {
            (req as AuthenticatedRequest).auth_context = own as unknown as AuthenticatedRequest["auth_context"];
            next();
          },
          (req, res) => res.json(seen(req)),
        );
        assert.deepEqual((await request(app).get("/own")).body, { actor_id: "user_7" });
        assert.deepEqual((await request(app).get("/over").set("Authorization", basic(secret.token))).body, {
          actor_id: "user_7",
          created_by: "user_1",
          api_key_id: secret.id,
        });
      });

      it("are the request's own where a property of its own, or of its app's prototype, would hide them", async () => {
        const app = express();
        // Another middleware defines one on the request itself before authentication.
        app.get(
          "/defined",
          (req, _res, next: Next) => {
            Object.defineProperty(req, "auth_context", { value: "anonymous", writable: true, configurable: true, enumerable: true });
            next();
          },
          apiKeyAuth({ service }),
          (req, res) => res.json(seen(req)),
        );
        assert.deepEqual((await request(app).get("/defined").set("Authorization", basic(secret.token))).body, { actor_id: secret.id, created_by: "user_1", api_key_id: secret.id });

        // An app's own default on its request prototype.
        const defaults = express();
        (defaults.request as unknown as { api_key: null }).api_key = null;
        defaults.get("/", apiKeyAuth({ service }), (req, res) => res.json(seen(req)));
        assert.deepEqual((await request(defaults).get("/").set("Authorization", basic(secret.token))).body, { actor_id: secret.id, created_by: "user_1", api_key_id: secret.id });
      });

      it("are not added to the request itself: each added property would cost the request a new hidden class", async () => {
        const app = express();
        app.get("/", apiKeyAuth({ service }), (req, res) =>
          res.json({ own: ["auth_context", "secret_key_context", "api_key"].filter((key) => Object.hasOwn(req, key)), id: (req as AuthenticatedRequest).api_key?.id }),
        );
        const res = await request(app).get("/").set("Authorization", basic(secret.token));
        assert.deepEqual(res.body, { own: [], id: secret.id });
      });
    });
  }

  it("are the request's own properties on a server made with an IncomingMessage subclass, whose prototype no one swaps", async () => {
    class WithDefaults extends http.IncomingMessage {
      api_key: ApiKeyDTO | undefined = undefined;
    }
    const auth = apiKeyAuth({ service });
    const server = http.createServer({ IncomingMessage: WithDefaults }, (req: IncomingMessage, res: ServerResponse) =>
      auth(req, res, () => {
        res.setHeader("Content-Type", "application/json");
        res.end(JSON.stringify({ own: Object.hasOwn(req, "auth_context"), accessor: "api_key" in WithDefaults.prototype, ...seen(req) }));
      }),
    );
    const res = await request(server).get("/").set("Authorization", basic(secret.token));
    assert.deepEqual(res.body, { own: true, accessor: false, actor_id: secret.id, created_by: "user_1", api_key_id: secret.id });
  });

  it("are the request's own properties on a bare node:http server, whose requests keep Node's prototype", async () => {
    const auth = apiKeyAuth({ service });
    const server = http.createServer((req: IncomingMessage, res: ServerResponse) =>
      auth(req, res, () => {
        res.setHeader("Content-Type", "application/json");
        res.end(JSON.stringify({ own: Object.hasOwn(req, "api_key"), ...seen(req) }));
      }),
    );
    const res = await request(server).get("/").set("Authorization", basic(secret.token));
    assert.deepEqual(res.body, { own: true, actor_id: secret.id, created_by: "user_1", api_key_id: secret.id });
  });
});

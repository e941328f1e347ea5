import assert from "node:assert/strict";
import type { IncomingMessage, ServerResponse } from "node:http";
import express from "express";
import request from "supertest";
import type { ApiKeyService } from "../../lib/service";
import type { ApiKeyDTO } from "../../lib/types";
import { apiKeyAuth } from "../../middleware/api-key-auth";
import { MESSAGES } from "../../middleware/credentials";
import type { AuthenticatedRequest } from "../../middleware/request-context";
import { requireScopes } from "../../middleware/require-scopes";
import type { PolicyApiKey, PolicyFields, VerifyOptions, VerifyResult } from "../../middleware/verify-types";
import { forEachBackend } from "../helpers/backends";
import { FRAMEWORKS, createApp } from "../helpers/create-app";
import { scriptedService } from "../helpers/scripted-service";

const basic = (token: string) => `Basic ${Buffer.from(`${token}:`).toString("base64")}`;

function echo(req: IncomingMessage, res: ServerResponse): void {
  const { auth_context, api_key } = req as AuthenticatedRequest;
  res.setHeader("Content-Type", "application/json");
  res.end(JSON.stringify({ auth_context, api_key }));
}

/** The key's DTO as reads show it, with `policy` set. */
function withPolicy(key: ApiKeyDTO, policy: Partial<PolicyFields>): PolicyApiKey {
  return { ...key, token: "", ...policy };
}

forEachBackend("apiKeyAuth with key policy (verification codes scripted)", (db) => {
  let secret: ApiKeyDTO;
  let publishable: ApiKeyDTO;
  let calls: VerifyOptions[];

  beforeEach(async () => {
    secret = await db.service.createApiKeys({ title: "admin", type: "secret", created_by: "user_42" });
    publishable = await db.service.createApiKeys({ title: "store", type: "publishable", created_by: "user_42" });
    calls = [];
  });

  /** A service whose verification answers `result` for the secret key's token, and not_found for any other. */
  function answering(result: (key: ApiKeyDTO) => VerifyResult): ApiKeyService {
    return scriptedService(db.service, async (token, options) => {
      calls.push(options);
      if (token === secret.token) return result(secret);
      if (token === publishable.token) return result(publishable);
      return { valid: false, code: "not_found" };
    });
  }

  function appWith(service: ApiKeyService, options: Parameters<typeof apiKeyAuth>[0] = {}) {
    const app = express();
    app.get("/admin", apiKeyAuth({ service, ...options }), echo);
    app.get("/store", apiKeyAuth({ service, type: "publishable" }), echo);
    app.get("/orders", apiKeyAuth({ service }), requireScopes("orders:read"), echo);
    app.get("/orders/all", apiKeyAuth({ service }), requireScopes("orders:read", "orders:list", "audit:read"), echo);
    app.get("/optional-orders", apiKeyAuth({ service, required: false }), requireScopes("orders:read"), echo);
    app.get("/store-orders", apiKeyAuth({ service, type: "publishable" }), requireScopes("orders:read"), echo);
    return app;
  }

  it("asks the service for the route's type and scopes, with the client's address", async () => {
    const app = appWith(answering((key) => ({ valid: true, code: "valid", api_key: withPolicy(key, {}) })), { scopes: ["orders:read"] });
    await request(app).get("/admin").set("Authorization", basic(secret.token)).expect(200);
    await request(app).get("/store").set("x-publishable-api-key", publishable.token).expect(200);
    assert.deepEqual(calls, [
      { type: "secret", scopes: ["orders:read"], ip: "127.0.0.1" },
      { type: "publishable", scopes: [], ip: "127.0.0.1" },
    ]);
  });

  it("passes the key's scopes and owner as auth_context.app_metadata, and the policy fields in req.api_key", async () => {
    const policy = { scopes: ["orders:*"], owner_id: "org_7", metadata: { plan: "pro" } };
    const app = appWith(answering((key) => ({ valid: true, code: "valid", api_key: withPolicy(key, policy) })));
    const res = await request(app).get("/admin").set("Authorization", basic(secret.token)).expect(200);
    assert.deepEqual(res.body.auth_context.app_metadata, { scopes: ["orders:*"], owner_id: "org_7" });
    assert.deepEqual(res.body.api_key.metadata, { plan: "pro" });
    assert.equal(res.body.api_key.owner_id, "org_7");
  });

  it("answers forbidden with 403, naming the missing scopes", async () => {
    const app = appWith(
      answering((key) => ({ valid: false, code: "forbidden", api_key: withPolicy(key, { scopes: ["orders:read"] }), missing_scopes: ["orders:write", "audit:read"] })),
      { scopes: ["orders:read", "orders:write", "audit:read"] },
    );
    const res = await request(app).get("/admin").set("Authorization", basic(secret.token));
    assert.equal(res.status, 403);
    assert.match(res.headers["content-type"] ?? "", /^application\/json/);
    assert.deepEqual(res.body, { type: "forbidden", message: "Forbidden: the API key lacks the scopes orders:write, audit:read" });
    assert.equal(res.headers["www-authenticate"], undefined);
  });

  it("refuses revoked, expired and unknown keys alike, as today", async () => {
    for (const code of ["revoked", "expired", "not_found"] as const) {
      const app = appWith(answering(() => ({ valid: false, code })));
      const secretRes = await request(app).get("/admin").set("Authorization", basic(secret.token));
      assert.equal(secretRes.status, 401, code);
      assert.deepEqual(secretRes.body, { type: "unauthorized", message: MESSAGES.secretInvalid });
      const publishableRes = await request(app).get("/store").set("x-publishable-api-key", publishable.token);
      assert.equal(publishableRes.status, 400, code);
      assert.deepEqual(publishableRes.body, { type: "not_allowed", message: MESSAGES.publishableInvalid });
    }
  });

  it("sends no RateLimit headers for a revoked or expired key, which reads as unknown", async () => {
    for (const code of ["revoked", "expired"] as const) {
      const app = appWith(
        answering((key) => ({
          valid: false,
          code,
          api_key: withPolicy(key, { rate_limits: [{ name: "m", limit: 1, duration: 60 }] }),
          rate_limit: { name: "m", limit: 1, remaining: 1, reset: 60 },
        })),
      );
      const res = await request(app).get("/admin").set("Authorization", basic(secret.token));
      assert.equal(res.status, 401);
      assert.deepEqual([res.headers["ratelimit-policy"], res.headers.ratelimit, res.headers["retry-after"]], [undefined, undefined, undefined], code);
    }
  });

  it("refuses a code it does not know (fails closed)", async () => {
    const app = appWith(answering(() => ({ valid: false, code: "suspended" as "revoked" })));
    assert.equal((await request(app).get("/admin").set("Authorization", basic(secret.token))).status, 401);
  });

  it("answers rate_limited with 429, Retry-After and the RateLimit headers", async () => {
    const rules = [
      { name: "per_minute", limit: 100, duration: 60 },
      { name: "per_day", limit: 1000, duration: 86400 },
    ];
    const app = appWith(
      answering((key) => ({
        valid: false,
        code: "rate_limited",
        api_key: withPolicy(key, { rate_limits: rules }),
        rate_limit: { name: "per_minute", limit: 100, remaining: 0, reset: 16.4 },
      })),
    );
    for (const [path, header, token] of [
      ["/admin", "Authorization", basic(secret.token)],
      ["/store", "x-publishable-api-key", publishable.token],
    ] as const) {
      const res = await request(app).get(path).set(header, token);
      assert.equal(res.status, 429, path);
      assert.deepEqual(res.body, {
        type: "rate_limited",
        message: 'Too many requests: the API key\'s rate limit "per_minute" (100 requests per 60 seconds) is spent; retry after the time in Retry-After',
      });
      assert.equal(res.headers["retry-after"], "17");
      assert.match(res.headers["ratelimit-policy"] ?? "", /^"per_minute"; q=100; w=60; pk=:[A-Za-z0-9+/=]+:, "per_day"; q=1000; w=86400; pk=:[A-Za-z0-9+/=]+:$/);
      assert.equal(res.headers.ratelimit, '"per_minute"; r=0; t=17');
    }
  });

  it("answers usage_exceeded with 429 and no Retry-After", async () => {
    const app = appWith(
      answering((key) => ({ valid: false, code: "usage_exceeded", api_key: withPolicy(key, { remaining: 0, refill: { amount: 50, interval: "day" } }), remaining: 0 })),
    );
    const res = await request(app).get("/admin").set("Authorization", basic(secret.token));
    assert.equal(res.status, 429);
    assert.deepEqual(res.body, { type: "usage_exceeded", message: "Usage quota exceeded: the API key has no uses left; it refills with 50 uses each day" });
    assert.equal(res.headers["retry-after"], undefined);
  });

  it("sends the RateLimit headers on successful requests of a key with rate limits, and none for a key without", async () => {
    const rules = [{ name: "burst", limit: 10, duration: 1 }];
    let limited = true;
    const app = appWith(
      answering((key) =>
        limited
          ? { valid: true, code: "valid", api_key: withPolicy(key, { rate_limits: rules }), rate_limit: { name: "burst", limit: 10, remaining: 9, reset: 1 } }
          : { valid: true, code: "valid", api_key: withPolicy(key, {}) },
      ),
    );
    const res = await request(app).get("/admin").set("Authorization", basic(secret.token)).expect(200);
    assert.match(res.headers["ratelimit-policy"] ?? "", /^"burst"; q=10; w=1; pk=:[A-Za-z0-9+/=]+:$/);
    assert.equal(res.headers.ratelimit, '"burst"; r=9; t=1');
    assert.equal(res.headers["retry-after"], undefined);
    limited = false;
    const plain = await request(app).get("/admin").set("Authorization", basic(secret.token)).expect(200);
    assert.equal(plain.headers["ratelimit-policy"], undefined);
    assert.equal(plain.headers.ratelimit, undefined);
  });

  it("passes a custom onError the typed error, with the headers already on the response", async () => {
    const service = answering((key) => ({
      valid: false,
      code: "rate_limited",
      api_key: withPolicy(key, { rate_limits: [{ name: "m", limit: 1, duration: 60 }] }),
      rate_limit: { name: "m", limit: 1, remaining: 0, reset: 30 },
    }));
    const app = express();
    app.get("/", apiKeyAuth({ service, onError: (error, _req, res) => res.writeHead(error.status).end(`${error.type}:${String(res.getHeader("retry-after"))}`) }));
    const res = await request(app).get("/").set("Authorization", basic(secret.token));
    assert.equal(res.status, 429);
    assert.equal(res.text, "rate_limited:30");
  });

  describe("requireScopes", () => {
    const grantedBy = (scopes: string[]) => answering((key) => ({ valid: true, code: "valid", api_key: withPolicy(key, { scopes }) }));

    it("lets a key with the scope through, wildcards included", async () => {
      for (const scopes of [["orders:read"], ["orders:*"], ["*"], ["audit:read", "orders:read"]]) {
        await request(appWith(grantedBy(scopes))).get("/orders").set("Authorization", basic(secret.token)).expect(200);
      }
    });

    it("answers 403 naming every missing scope", async () => {
      const res = await request(appWith(grantedBy(["orders:read"]))).get("/orders/all").set("Authorization", basic(secret.token));
      assert.equal(res.status, 403);
      assert.deepEqual(res.body, { type: "forbidden", message: "Forbidden: the API key lacks the scopes orders:list, audit:read" });
      const none = await request(appWith(grantedBy([]))).get("/orders").set("Authorization", basic(secret.token));
      assert.deepEqual(none.body, { type: "forbidden", message: "Forbidden: the API key lacks the scope orders:read" });
    });

    it("answers 401 when no secret key authenticated the request", async () => {
      const app = appWith(grantedBy(["*"]));
      const anonymous = await request(app).get("/optional-orders");
      assert.equal(anonymous.status, 401);
      assert.deepEqual(anonymous.body, { type: "unauthorized", message: MESSAGES.secretMissing });
      assert.match(anonymous.headers["www-authenticate"] ?? "", /^Basic/);
      const store = await request(app).get("/store-orders").set("x-publishable-api-key", publishable.token);
      assert.equal(store.status, 401);
      const bare = express();
      bare.get("/", requireScopes("orders:read"), echo);
      assert.equal((await request(bare).get("/")).status, 401);
    });

    it("refuses bad scopes when the route is built", () => {
      assert.throws(() => requireScopes(), /at least one scope/);
      assert.throws(() => requireScopes("orders:*"), /is not a scope/);
      assert.throws(() => requireScopes("Orders:Read"), /is not a scope/);
      assert.throws(() => requireScopes(42 as unknown as string), /is not a scope/);
    });
  });
});

forEachBackend("apiKeyAuth scopes option", (db) => {
  it("is validated when the middleware is built", () => {
    assert.throws(() => apiKeyAuth({ service: db.service, scopes: "orders:read" as unknown as string[] }), /`scopes` must be an array/);
    assert.throws(() => apiKeyAuth({ service: db.service, scopes: ["orders:read", "orders::x"] }), /"orders::x" is not a scope/);
    assert.throws(() => apiKeyAuth({ service: db.service, scopes: ["orders:*"] }), /is not a scope/);
    assert.throws(() => apiKeyAuth({ service: db.service, scopes: [""] }), /is not a scope/);
    assert.throws(() => apiKeyAuth({ service: db.service, scopes: [, "a"] as string[] }), /is not a scope/);
    assert.throws(() => apiKeyAuth({ service: db.service, type: "publishable", scopes: ["orders:read"] }), /secret keys only/);
    assert.doesNotThrow(() => apiKeyAuth({ service: db.service, scopes: [] }));
  });

  it("with required: false still refuses a present key without the scopes", async () => {
    const key = await db.service.createApiKeys({ title: "plain", type: "secret", created_by: "u" });
    const app = express();
    app.get("/", apiKeyAuth({ service: db.service, required: false, scopes: ["orders:read"] }), echo);
    await request(app).get("/").expect(200);
    const res = await request(app).get("/").set("Authorization", basic(key.token));
    assert.equal(res.status, 403);
    assert.deepEqual(res.body, { type: "forbidden", message: "Forbidden: the API key lacks the scope orders:read" });
    // An unknown key is refused as unknown before any scope is looked at.
    const unknown = await request(app).get("/").set("Authorization", basic(`sk_${"a".repeat(40)}`));
    assert.equal(unknown.status, 401);
  });

  it("sets app_metadata to the key's (empty) scopes and owner", async () => {
    const key = await db.service.createApiKeys({ title: "plain", type: "secret", created_by: "u" });
    for (const framework of FRAMEWORKS) {
      const res = await request(createApp(framework, { service: db.service })).get("/admin").set("Authorization", basic(key.token));
      assert.deepEqual(res.body.auth_context.app_metadata, { scopes: [], owner_id: null }, framework);
    }
  });
});

forEachBackend("apiKeyAuth and requireScopes over the service's own verification", (db) => {
  beforeEach(function () {
  });

  it("grants by the key's stored scopes, wildcards included, and names what is missing", async () => {
    const create = (scopes: string[]) => db.service.createApiKeys({ title: "k", type: "secret", created_by: "u", scopes, owner_id: "org_1" } as never);
    const reader = await create(["orders:read"]);
    const admin = await create(["orders:*", "audit:read"]);
    const app = express();
    app.get("/orders", apiKeyAuth({ service: db.service, scopes: ["orders:read"] }), echo);
    app.get("/orders/refund", apiKeyAuth({ service: db.service }), requireScopes("orders:refund", "audit:read"), echo);
    app.get("/optional", apiKeyAuth({ service: db.service, required: false, scopes: ["audit:read"] }), echo);

    const ok = await request(app).get("/orders").set("Authorization", basic(reader.token)).expect(200);
    assert.deepEqual(ok.body.auth_context.app_metadata, { scopes: ["orders:read"], owner_id: "org_1" });
    assert.deepEqual(ok.body.api_key.scopes, ["orders:read"]);
    const refused = await request(app).get("/orders/refund").set("Authorization", basic(reader.token));
    assert.deepEqual([refused.status, refused.body], [403, { type: "forbidden", message: "Forbidden: the API key lacks the scopes orders:refund, audit:read" }]);
    await request(app).get("/orders/refund").set("Authorization", basic(admin.token)).expect(200);
    await request(app).get("/optional").expect(200);
    const optional = await request(app).get("/optional").set("Authorization", basic(reader.token));
    assert.deepEqual([optional.status, optional.body], [403, { type: "forbidden", message: "Forbidden: the API key lacks the scope audit:read" }]);
  });

  it("refuses an expired key exactly as a revoked one", async () => {
    const secret = await db.service.createApiKeys({ title: "k", type: "secret", created_by: "u", expires_in: 60 } as never);
    const publishable = await db.service.createApiKeys({ title: "p", type: "publishable", created_by: "u", expires_in: 60 } as never);
    const app = createApp("express5", { service: db.service });
    await request(app).get("/admin").set("Authorization", basic(secret.token)).expect(200);
    db.clock.advance(61_000);
    const res = await request(app).get("/admin").set("Authorization", basic(secret.token));
    assert.deepEqual([res.status, res.body], [401, { type: "unauthorized", message: MESSAGES.secretInvalid }]);
    const store = await request(app).get("/store").set("x-publishable-api-key", publishable.token);
    assert.deepEqual([store.status, store.body], [400, { type: "not_allowed", message: MESSAGES.publishableInvalid }]);
  });

  it("answers a spent one-time key with 429 usage_exceeded", async () => {
    const once = await db.service.createApiKeys({ title: "once", type: "secret", created_by: "u", remaining: 1 } as never);
    const app = createApp("express5", { service: db.service });
    await request(app).get("/admin").set("Authorization", basic(once.token)).expect(200);
    const res = await request(app).get("/admin").set("Authorization", basic(once.token));
    assert.equal(res.status, 429);
    assert.equal(res.body.type, "usage_exceeded");
  });

  it("answers a spent rate limit with 429, Retry-After and RateLimit headers", async () => {
    const key = await db.service.createApiKeys({ title: "rl", type: "secret", created_by: "u", rate_limits: [{ name: "per_minute", limit: 2, duration: 60 }] } as never);
    const app = createApp("express5", { service: db.service });
    const first = await request(app).get("/admin").set("Authorization", basic(key.token)).expect(200);
    assert.match(first.headers["ratelimit-policy"] ?? "", /^"per_minute"; q=2; w=60; pk=:[A-Za-z0-9+/=]+:$/);
    assert.match(first.headers.ratelimit ?? "", /^"per_minute"; r=1; t=\d+$/);
    await request(app).get("/admin").set("Authorization", basic(key.token)).expect(200);
    const res = await request(app).get("/admin").set("Authorization", basic(key.token));
    assert.equal(res.status, 429);
    assert.equal(res.body.type, "rate_limited");
    assert.ok(Number(res.headers["retry-after"]) >= 1 && Number(res.headers["retry-after"]) <= 60, res.headers["retry-after"]);
  });
});

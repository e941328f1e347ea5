import { randomBytes } from "node:crypto";
import assert from "node:assert/strict";
import type { ServerResponse } from "node:http";
import { ApiKeyError } from "../../lib/errors";
import type { ApiKeyService } from "../../lib/service";
import { generateToken } from "../../lib/tokens";
import type { ApiKeyDTO } from "../../lib/types";
import { type ApiKeyAuthOptions, apiKeyAuth } from "../../middleware/api-key-auth";
import type { AuthenticatedRequest } from "../../middleware/request-context";
import { forEachBackend } from "../helpers/backends";
import { REDIS_URL, redisPerTest, until } from "../helpers/redis";

const basic = (token: string) => `Basic ${Buffer.from(`${token}:`).toString("base64")}`;

/** What one middleware call did: whether it answered before returning, and how. */
interface Call {
  req: AuthenticatedRequest;
  headers: Record<string, string>;
  /** Set once the call has answered: undefined for next(), else the error it handed onError. */
  outcome?: { error?: ApiKeyError };
  /** Whether the answer came before the middleware returned. */
  sync: boolean;
  /** Resolves once the call has answered. */
  done: Promise<void>;
}

/** Runs `middleware` on a plain req/res, noting whether it answered synchronously. */
function call(middleware: ReturnType<typeof apiKeyAuth>, headers: Record<string, string>): Call {
  const req = { headers, method: "GET", url: "/" } as unknown as AuthenticatedRequest;
  const set: Record<string, string> = {};
  const res = { setHeader: (name: string, value: string) => void (set[name] = value) } as unknown as ServerResponse;
  let answered!: () => void;
  const result: Call = { req, headers: set, sync: false, done: new Promise((resolve) => (answered = resolve)) };
  const finish = (error?: ApiKeyError) => {
    result.outcome = { error };
    answered();
  };
  middleware(req, res, (error?: unknown) => finish(error as ApiKeyError | undefined));
  result.sync = result.outcome !== undefined;
  return result;
}

/** The middleware with onError handing the rejection to next, so that a call records it. */
function auth(service: ApiKeyService, options: ApiKeyAuthOptions = {}) {
  return apiKeyAuth({ service, onError: (error, _req, _res, next) => next(error), ...options });
}

/** Runs a call to its end and returns it. */
async function settled(middleware: ReturnType<typeof apiKeyAuth>, headers: Record<string, string>): Promise<Call> {
  const made = call(middleware, headers);
  await made.done;
  return made;
}

forEachBackend(
  "the warm path: a fresh in-process hit decided in the same tick",
  (db) => {
    let secret: ApiKeyDTO;
    let publishable: ApiKeyDTO;

    beforeEach(async () => {
      secret = await db.service.createApiKeys({ title: "admin", type: "secret", created_by: "user_42", scopes: ["orders:read"], metadata: { plan: { tier: "pro" } } });
      publishable = await db.service.createApiKeys({ title: "store", type: "publishable", created_by: "user_42" });
      await db.service.updateLinks(publishable.id, { add: ["sc_1", "sc_2"] });
    });

    it("a miss goes the async way, and the next request for the key calls next() before the middleware returns", async () => {
      const middleware = auth(db.service);
      const cold = call(middleware, { authorization: basic(secret.token) });
      assert.equal(cold.sync, false, "a miss waits for the store");
      await cold.done;
      assert.deepEqual(cold.outcome, { error: undefined });
      assert.equal(cold.req.api_key?.id, secret.id);

      const warm = call(middleware, { authorization: basic(secret.token) });
      assert.equal(warm.sync, true);
      assert.deepEqual(warm.outcome, { error: undefined });
      assert.equal(warm.req.auth_context?.actor_id, secret.id);
      assert.deepEqual(warm.req.auth_context?.app_metadata, { scopes: ["orders:read"], owner_id: null });
      assert.deepEqual(warm.req.secret_key_context, { created_by: "user_42" });
      assert.equal(warm.req.api_key?.id, secret.id);
      assert.equal(warm.req.api_key?.token, "", "no secret material");
    });

    it("a key with a quota: each use gets a read-only copy of the key with its own count and dates, and the same contexts, made once", async () => {
      const metered = await db.service.createApiKeys({ title: "metered", type: "secret", created_by: "user_42", scopes: ["orders:read"], remaining: 1000, metadata: { plan: "pro" } });
      const middleware = auth(db.service);
      await settled(middleware, { authorization: basic(metered.token) });
      const first = await settled(middleware, { authorization: basic(metered.token) });
      const second = await settled(middleware, { authorization: basic(metered.token) });
      const [a, b] = [first.req.api_key!, second.req.api_key!];
      assert.equal(b.remaining, a.remaining! - 1, "each use's own count");
      assert.equal(second.req.auth_context, first.req.auth_context, "contexts made once per cached key, not per use");
      assert.equal(second.req.secret_key_context, first.req.secret_key_context);
      assert.deepEqual(first.req.auth_context?.app_metadata, { scopes: ["orders:read"], owner_id: null });
      // Read-only as the key without a quota is: the copy, its arrays and its metadata.
      assert.ok(Object.isFrozen(a) && Object.isFrozen(a.scopes) && Object.isFrozen(a.metadata));
      assert.throws(() => ((a as { title: string }).title = "tampered"), TypeError);
      // Its dates are its own: changing one changes no other use's.
      a.created_at.setTime(0);
      assert.equal(b.created_at.getTime(), new Date(metered.created_at).getTime());
      // The same fields, in the same order, as the key a verification that pays nothing answers.
      const unpaid = await db.service.verifyApiKey(metered.token, { cost: 0 });
      assert.deepEqual(Object.keys(b), Object.keys(unpaid.api_key!));
      assert.deepEqual({ ...b, remaining: 0 }, { ...unpaid.api_key!, remaining: 0 });
    });

    it("a publishable key too, with its sales channels", async () => {
      const middleware = auth(db.service, { type: "publishable" });
      await settled(middleware, { "x-publishable-api-key": publishable.token });
      const warm = call(middleware, { "x-publishable-api-key": publishable.token });
      assert.equal(warm.sync, true);
      assert.deepEqual(warm.req.publishable_key_context, { key: publishable.token, sales_channel_ids: ["sc_1", "sc_2"] });
      warm.req.publishable_key_context.sales_channel_ids.push("sc_evil");
      const next = call(middleware, { "x-publishable-api-key": publishable.token });
      assert.deepEqual(next.req.publishable_key_context?.sales_channel_ids, ["sc_1", "sc_2"]);
    });

    it("a forged token is refused in the same tick, with no lookup", () => {
      const forged = call(auth(db.service), { authorization: basic(generateToken("secret", randomBytes(32))) });
      assert.equal(forged.sync, true);
      assert.equal(forged.outcome?.error?.type, "unauthorized");
    });

    it("an unknown token is refused synchronously once its absence is cached", async () => {
      const middleware = auth(db.service);
      const unknown = await db.unissuedToken("secret");
      const first = call(middleware, { authorization: basic(unknown) });
      assert.equal(first.sync, false);
      await first.done;
      const second = call(middleware, { authorization: basic(unknown) });
      assert.equal(second.sync, true);
      for (const made of [first, second]) assert.equal(made.outcome?.error?.type, "unauthorized");
    });

    it("a getToken that answers at once is as quick as the header", async () => {
      const middleware = auth(db.service, { getToken: () => secret.token });
      await settled(middleware, {});
      const warm = call(middleware, {});
      assert.equal(warm.sync, true);
      assert.equal(warm.req.api_key?.id, secret.id);
    });

    it("a getToken that answers with a promise still works, the async way", async () => {
      const middleware = auth(db.service, { getToken: async () => secret.token });
      await settled(middleware, {});
      const made = call(middleware, {});
      assert.equal(made.sync, false);
      await made.done;
      assert.equal(made.req.api_key?.id, secret.id);
    });

    it("checks expiry against the clock on every warm request", async () => {
      const expiring = await db.service.createApiKeys({ title: "e", type: "secret", created_by: "u", expires_at: new Date(db.clock.now().getTime() + 1000) });
      const middleware = auth(db.service);
      await settled(middleware, { authorization: basic(expiring.token) });
      db.clock.advance(999);
      assert.deepEqual(call(middleware, { authorization: basic(expiring.token) }).outcome, { error: undefined });
      db.clock.advance(1);
      const expired = call(middleware, { authorization: basic(expiring.token) });
      assert.equal(expired.sync, true, "still warm, refused from memory");
      assert.equal(expired.outcome?.error?.type, "unauthorized");
    });

    it("honours a revocation scheduled in the future at its instant", async () => {
      await db.service.revoke(secret.id, { revoked_by: "u", revoke_in: 2 });
      const middleware = auth(db.service);
      await settled(middleware, { authorization: basic(secret.token) });
      db.clock.advance(1999);
      assert.deepEqual(call(middleware, { authorization: basic(secret.token) }).outcome, { error: undefined });
      db.clock.advance(1);
      const revoked = call(middleware, { authorization: basic(secret.token) });
      assert.equal(revoked.sync, true);
      assert.equal(revoked.outcome?.error?.type, "unauthorized");
    });

    it("refuses a soft-deleted key, a missing scope and a key of the other type", async () => {
      const middleware = auth(db.service);
      await settled(middleware, { authorization: basic(secret.token) });
      const scoped = auth(db.service, { scopes: ["orders:write"] });
      const forbidden = call(scoped, { authorization: basic(secret.token) });
      assert.equal(forbidden.sync, true);
      assert.equal(forbidden.outcome?.error?.type, "forbidden");
      assert.match(forbidden.outcome.error.message, /orders:write/);
      const wrongType = call(auth(db.service, { type: "publishable" }), { "x-publishable-api-key": secret.token });
      assert.equal(wrongType.outcome?.error?.type, "not_allowed");

      await db.service.softDeleteApiKeys(secret.id);
      const first = await settled(middleware, { authorization: basic(secret.token) });
      const again = call(middleware, { authorization: basic(secret.token) });
      for (const made of [first, again]) assert.equal(made.outcome?.error?.type, "unauthorized");
    });

    it("records last_used_at for uses answered from memory", async () => {
      const service = await db.open();
      const middleware = auth(service);
      await settled(middleware, { authorization: basic(secret.token) });
      db.clock.advance(1000);
      const used = db.clock.now();
      assert.equal(call(middleware, { authorization: basic(secret.token) }).sync, true);
      await service.close();
      assert.deepEqual((await db.service.retrieveApiKey(secret.id)).last_used_at, used);
    });

    it("hands out a key that no request can change for the next one, and authenticate() the same", async () => {
      const middleware = auth(db.service);
      await settled(middleware, { authorization: basic(secret.token) });
      const first = call(middleware, { authorization: basic(secret.token) });
      assert.equal(first.sync, true);
      const key = first.req.api_key! as unknown as Record<string, unknown> & ApiKeyDTO;
      const before = JSON.parse(JSON.stringify(key)) as unknown;
      assert.throws(() => (key.title = "changed"), TypeError);
      assert.throws(() => key.scopes.push("orders:write"), TypeError);
      assert.throws(() => ((key.metadata.plan as Record<string, unknown>).tier = "free"), TypeError);
      assert.throws(() => (key.revoked_at = new Date(0)), TypeError);
      key.created_at.setTime(0);
      assert.throws(() => ((first.req.auth_context!.app_metadata.scopes as string[]).length = 0), TypeError);

      const next = call(middleware, { authorization: basic(secret.token) });
      assert.equal(next.sync, true);
      assert.deepEqual(JSON.parse(JSON.stringify(next.req.api_key)), before);
      assert.deepEqual(next.req.auth_context?.app_metadata, { scopes: ["orders:read"], owner_id: null });
      assert.ok(next.req.api_key!.created_at instanceof Date);
      assert.notEqual(next.req.api_key!.created_at.getTime(), 0);

      const authenticated = (await db.service.authenticate(secret.token)) as ApiKeyDTO;
      assert.throws(() => authenticated.scopes.push("x"), TypeError);
      assert.deepEqual({ ...authenticated }, { ...next.req.api_key! });
      assert.deepEqual(structuredClone(authenticated), structuredClone(next.req.api_key!));
    });

    it("keys with a rate limit: answered from the local lease, with headers, and never past the limit", async () => {
      const leased = await db.service.createApiKeys({
        title: "leased",
        type: "secret",
        created_by: "u",
        rate_limits: [{ name: "per_minute", limit: 1000, duration: 60 }],
      });
      const middleware = auth(db.service);
      const cold = await settled(middleware, { authorization: basic(leased.token) });
      assert.equal(cold.outcome?.error, undefined);
      const warm = call(middleware, { authorization: basic(leased.token) });
      assert.equal(warm.sync, true, "a lease of 10 uses pays for it");
      assert.match(warm.headers["RateLimit-Policy"]!, /^"per_minute"; q=1000; w=60; pk=:[A-Za-z0-9+/=]+:$/);
      assert.equal(warm.headers["RateLimit-Policy"], cold.headers["RateLimit-Policy"]);
      assert.match(warm.headers.RateLimit!, /^"per_minute"; r=\d+; t=\d+$/);

      // A small limit leases one use at a time: every use asks the shared counter.
      const tight = await db.service.createApiKeys({ title: "tight", type: "secret", created_by: "u", rate_limits: [{ name: "burst", limit: 3, duration: 60 }] });
      const answers: Call[] = [];
      for (let i = 0; i < 5; i++) answers.push(await settled(middleware, { authorization: basic(tight.token) }));
      assert.deepEqual(
        answers.map((made) => [made.sync, made.outcome?.error?.type]),
        [[false, undefined], [false, undefined], [false, undefined], [false, "rate_limited"], [false, "rate_limited"]],
      );
    });

    it("a key with a usage quota is always counted in the store", async () => {
      const quota = await db.service.createApiKeys({ title: "q", type: "secret", created_by: "u", remaining: 2 });
      const middleware = auth(db.service);
      const answers: Call[] = [];
      for (let i = 0; i < 3; i++) answers.push(await settled(middleware, { authorization: basic(quota.token) }));
      assert.deepEqual(
        answers.map((made) => [made.sync, made.outcome?.error?.type]),
        [[false, undefined], [false, undefined], [false, "usage_exceeded"]],
      );
      assert.equal(answers[1]!.req.api_key?.remaining, 0);
    });
  },
  ["pglite"],
);

forEachBackend(
  "the warm path across instances",
  (db) => {
    const redis = redisPerTest();

    it("a revocation on another instance stops the synchronous answer as soon as its message arrives", async () => {
      // A memory ttl far longer than the test: only the invalidation message can end the warm entry.
      const options = { redis: REDIS_URL, cache: { redisPrefix: redis.prefix, ttl: 600_000 } };
      const [a, b] = [await db.open(options), await db.open(options)];
      const key = await a.createApiKeys({ title: "k", type: "secret", created_by: "u" });
      const middleware = auth(a);
      await settled(middleware, { authorization: basic(key.token) });
      assert.equal(call(middleware, { authorization: basic(key.token) }).sync, true);

      await b.revoke(key.id, { revoked_by: "u" });
      await until(() => !call(middleware, { authorization: basic(key.token) }).sync, "the warm entry to go");
      const after = await settled(middleware, { authorization: basic(key.token) });
      assert.equal(after.outcome?.error?.type, "unauthorized");
      const warmAgain = call(middleware, { authorization: basic(key.token) });
      assert.equal(warmAgain.sync, true);
      assert.equal(warmAgain.outcome?.error?.type, "unauthorized");
    });
  },
  ["postgres"],
);

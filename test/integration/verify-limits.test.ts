// Rate limits and quotas through verifyApiKey, as apps meet them: two service instances on one
// database and one Redis, concurrent requests, and the one-time token of the reference's
// password-reset case.
import assert from "node:assert/strict";
import type { ApiKeyService } from "../../lib/service";
import type { VerifyCode } from "../../lib/types";
import { forEachBackend } from "../helpers/backends";
import { REDIS_URL, connectRedis, deletePrefix, testPrefix } from "../helpers/redis";

const quiet = { warn: () => {}, error: () => {} };

function count(codes: VerifyCode[]): Partial<Record<VerifyCode, number>> {
  const counts: Partial<Record<VerifyCode, number>> = {};
  for (const code of codes) counts[code] = (counts[code] ?? 0) + 1;
  return counts;
}

forEachBackend("verifyApiKey with rate limits and quotas, two instances on one Redis", (db) => {
  let prefix = "";
  let a: ApiKeyService;
  let b: ApiKeyService;

  beforeEach(async function () {
    const probe = await connectRedis(this);
    probe?.disconnect();
    prefix = testPrefix();
    const open = () => db.open({ redis: REDIS_URL, cache: { redisPrefix: prefix }, logger: quiet });
    [a, b] = await Promise.all([open(), open()]);
  });
  afterEach(async function () {
    const redis = await connectRedis(this);
    if (redis) await deletePrefix(redis, prefix);
    redis?.disconnect();
  });

  it("admits exactly `remaining` of many concurrent verifications across both instances", async function () {
    this.timeout(60_000);
    const key = await a.createApiKeys({ title: "quota", type: "secret", created_by: "u", remaining: 100 });
    const results = await Promise.all(Array.from({ length: 300 }, (_, i) => (i % 2 ? a : b).verifyApiKey(key.token, { type: "secret" })));
    assert.deepEqual(count(results.map((result) => result.code)), { valid: 100, usage_exceeded: 200 });
    assert.equal((await a.retrieveApiKey(key.id)).remaining, 0);
  });

  it("admits a rate limit's worth of concurrent verifications across both instances, and answers the window", async () => {
    const key = await a.createApiKeys({
      title: "limited",
      type: "secret",
      created_by: "u",
      rate_limits: [{ name: "per_minute", limit: 10, duration: 60 }],
    });
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => (i % 2 ? a : b).verifyApiKey(key.token)));
    assert.deepEqual(count(results.map((result) => result.code)), { valid: 10, rate_limited: 20 });
    const refused = results.find((result) => result.code === "rate_limited")!;
    assert.equal(refused.rate_limit?.name, "per_minute");
    assert.equal(refused.rate_limit?.remaining, 0);
  });

  it("authenticates a one-time token (expires_in 900, remaining 1) exactly once, even at the same instant on both instances", async () => {
    const key = await a.createApiKeys({ title: "password reset", type: "secret", created_by: "u", expires_in: 900, remaining: 1 });
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).authenticate(key.token)));
    assert.equal(answers.filter(Boolean).length, 1);
    assert.equal(await a.authenticate(key.token), false);
  });

  it("never authenticates a one-time token after its 15 minutes, unused or not", async () => {
    const key = await a.createApiKeys({ title: "password reset", type: "secret", created_by: "u", expires_in: 900, remaining: 1 });
    db.clock.advance(900_000);
    assert.equal((await b.verifyApiKey(key.token)).code, "expired");
    assert.equal((await a.retrieveApiKey(key.id)).remaining, 1, "a refused verification consumes nothing");
  });

  it("consumes nothing for a refused verification: a missing scope leaves the quota and the window alone", async () => {
    const key = await a.createApiKeys({
      title: "scoped",
      type: "secret",
      created_by: "u",
      scopes: ["orders:read"],
      remaining: 2,
      rate_limits: [{ name: "w", limit: 2, duration: 60 }],
    });
    for (let i = 0; i < 5; i++) assert.equal((await a.verifyApiKey(key.token, { scopes: ["orders:write"] })).code, "forbidden");
    const first = await b.verifyApiKey(key.token, { scopes: ["orders:read"], cost: 2 });
    assert.equal(first.code, "valid");
    assert.equal(first.remaining, 0);
    assert.equal(first.api_key?.remaining, 0);
    assert.equal((await a.verifyApiKey(key.token)).code, "rate_limited");
  });
});

// The usage-limits engine as the service will call it once a key is verified: two engines (two
// app instances) on one Redis and one database, rate limits first, then the quota, refunds on
// refusal, events, and a quota that no Redis restart can lose.
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import type { EventBatch } from "../../lib/events";
import type { Logger } from "../../lib/logger";
import type { ApiKeyStore } from "../../lib/store";
import { UsageLimits } from "../../lib/usage-limits";
import { KnexApiKeyStore } from "../../store/knex-store";
import { RateLimiters } from "../../store/rate-limiters";
import { forEachBackend } from "../helpers/backends";
import { PrivateRedis, REDIS_URL, deletePrefix, freePort, serviceClient, testPrefix, until } from "../helpers/redis";
import { unreachableDatabase } from "../helpers/services";

const quiet: Logger = { warn: () => {}, error: () => {} };



forEachBackend("usage limits, two instances on one Redis", (db) => {
  let prefix: string;
  let clients: Redis[];
  let events: EventBatch[];
  let engines: UsageLimits[];
  const engine = (store: ApiKeyStore, client: Redis) =>
    new UsageLimits({
      store,
      rateLimits: new RateLimiters({ redis: client, prefix, timeout: 5000, logger: quiet, now: Date.now }),
      now: db.clock.now,
      emit: (event) => void events.push(event),
      logger: quiet,
    });

  beforeEach(async () => {
    prefix = testPrefix();
    events = [];
    clients = [serviceClient(REDIS_URL), serviceClient(REDIS_URL)];
    await until(() => clients.every((client) => client.status === "ready"), "Redis");
    engines = clients.map((client) => engine(new KnexApiKeyStore(db.knex, db.schema), client));
  });
  afterEach(async () => {
    await deletePrefix(clients[0]!, prefix);
    for (const client of clients) client.disconnect();
  });

  async function keyWith(remaining: number | null) {
    const key = await db.service.createApiKeys({ title: "limited", type: "secret", created_by: "u" });
    await db.table("api_key").where({ id: key.id }).update({ remaining });
    return key.id;
  }

  it("300 concurrent uses against remaining 100: exactly 100 admitted, the rest usage_exceeded and refunded", async function () {
    this.timeout(120_000);
    const id = await keyWith(100);
    const key = { id, remaining: 100, rate_limits: [{ name: "minute", limit: 1000, duration: 60 }] };
    const results = await Promise.all(Array.from({ length: 300 }, (_, i) => engines[i % 2]!.consume(key)));
    assert.equal(results.filter((result) => result.admitted).length, 100);
    assert.ok(results.filter((result) => !result.admitted).every((result) => !result.admitted && result.code === "usage_exceeded" && result.remaining === 0));
    // The refused uses gave back what they took from the rate limit.
    assert.equal(await clients[0]!.get(`${prefix}rl:1000:60:${id}`), "100");
    assert.deepEqual(events, [{ name: "api_key.usage_exceeded", payload: { id } }]);
  });

  it("a rate limit refuses first and takes nothing from the quota", async () => {
    const id = await keyWith(10);
    const key = { id, remaining: 10, rate_limits: [{ name: "minute", limit: 3, duration: 60 }] };
    const results = await Promise.all(Array.from({ length: 6 }, (_, i) => engines[i % 2]!.consume(key)));
    assert.equal(results.filter((result) => result.admitted).length, 3);
    const refused = results.find((result) => !result.admitted);
    assert.ok(refused && !refused.admitted && refused.code === "rate_limited" && refused.rate_limit?.name === "minute");
    assert.equal(Number((await db.table("api_key").select("remaining").where({ id }).first()).remaining), 7);
  });

  it("cost is taken from the rate limits and the quota alike; a refill sends its event", async () => {
    const id = await keyWith(4);
    const key = { id, remaining: 4, refill: { amount: 6, interval: "day" as const }, rate_limits: [{ name: "hour", limit: 100, duration: 3600 }] };
    const first = await engines[0]!.consume(key, 3);
    assert.ok(first.admitted);
    assert.equal(first.remaining, 1);
    assert.equal(first.rate_limit?.remaining, 97);
    const second = await engines[1]!.consume(key, 3);
    assert.ok(!second.admitted && second.code === "usage_exceeded" && second.remaining === 1);
    db.clock.advance(86_400_000);
    const third = await engines[1]!.consume(key, 3);
    assert.ok(third.admitted && third.remaining === 3);
    assert.deepEqual(events, [{ name: "api_key.refilled", payload: { id, remaining: 6 } }]);
    assert.equal(await clients[0]!.get(`${prefix}rl:100:3600:${id}`), "6");
  });
}, ["postgres", "pglite", "mariadb", "sqlite"]);

describe("usage limits: keys without limits", () => {
  it("never touch Redis or the database", async () => {
    const database = unreachableDatabase();
    const client = new Redis("redis://127.0.0.1:1", { lazyConnect: true, enableOfflineQueue: false, retryStrategy: () => null });
    try {
      const limits = new UsageLimits({
        store: new KnexApiKeyStore(database),
        rateLimits: new RateLimiters({ redis: client, logger: quiet, now: Date.now }),
        now: () => new Date(),
        emit: () => assert.fail("no event"),
        logger: quiet,
      });
      assert.deepEqual(await limits.consume({ id: "apk_free", rate_limits: [], remaining: null, refill: null }), { admitted: true });
      assert.deepEqual(await limits.consume({ id: "apk_free" }, 5), { admitted: true });
    } finally {
      client.disconnect();
      await database.destroy();
    }
  });
});

forEachBackend("usage limits across a Redis restart", (db) => {
  let redis: PrivateRedis;
  let client: Redis | undefined;
  beforeEach(async () => {
    redis = new PrivateRedis(await freePort());
    await redis.start();
  });
  afterEach(async () => {
    client?.disconnect();
    await redis.stop();
  });

  it("loses no quota: it lives in the database; rate limits count per instance meanwhile", async function () {
    this.timeout(60_000);
    client = serviceClient(redis.url);
    await until(() => client!.status === "ready", "Redis");
    const limits = new UsageLimits({
      store: new KnexApiKeyStore(db.knex, db.schema),
      rateLimits: new RateLimiters({ redis: client, prefix: "p:", timeout: 5000, logger: quiet, now: Date.now }),
      now: db.clock.now,
      emit: () => {},
      logger: quiet,
    });
    const key = await db.service.createApiKeys({ title: "q", type: "secret", created_by: "u" });
    await db.table("api_key").where({ id: key.id }).update({ remaining: 10 });
    const limited = { id: key.id, remaining: 10, rate_limits: [{ name: "minute", limit: 100, duration: 60 }] };
    const use = async (n: number) => (await Promise.all(Array.from({ length: n }, () => limits.consume(limited)))).filter((r) => r.admitted).length;

    assert.equal(await use(4), 4);
    await redis.stop();
    await until(() => client!.status !== "ready", "the client to notice");
    assert.equal(await use(3), 3, "Redis down: the quota still counts, in the database");
    await redis.start();
    await until(() => client!.status === "ready", "the client to reconnect");
    assert.equal(await use(10), 3);
  });
}, ["postgres", "sqlite"]);

// The Redis tier shared by two instances: invalidations reach the other within the bound, no
// plaintext secret in Redis, a slow fill that raced a revocation is not kept. Each suite runs on
// one Redis and on a Redis Cluster of three masters.
import assert from "node:assert/strict";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import knexFactory, { type Knex } from "knex";
import { initialize } from "../../setup/initialize";
import type { ApiKeyService } from "../../lib/service";
import { hashToken } from "../../lib/tokens";
import { forEachBackend } from "../helpers/backends";
import { redisNames } from "../../store/cache/redis-names";
import { REDIS_URL, redisPerTest, testPrefix } from "../helpers/redis";
import { onEveryRedis } from "../helpers/redis-topologies";
import { POSTGRES_URL } from "../helpers/services";
import { TcpProxy } from "../helpers/tcp-proxy";

const REPETITIONS = 50;
const BOUND_MS = 100;

/** Polls `check` until it holds, failing past the propagation bound; returns the time it took. */
async function withinBound(check: () => Promise<boolean>, label: string): Promise<number> {
  const start = performance.now();
  while (!(await check())) {
    if (performance.now() - start > BOUND_MS) assert.fail(`${label}: not seen within ${BOUND_MS} ms`);
    await sleep(1);
  }
  return performance.now() - start;
}

onEveryRedis("Redis tier", (redis) => forEachBackend(
  "with two instances",
  (db) => {
    let prefix = "";
    let a: ApiKeyService;
    let b: ApiKeyService;
    const open = () => db.open({ redis: redis().option, cache: { redisPrefix: prefix } });
    const entryOf = (token: string) => redisNames(prefix, redis().cluster).entry(hashToken(token));

    beforeEach(async () => {
      prefix = testPrefix();
      [a, b] = [await open(), await open()];
    });
    afterEach(async () => {
      await redis().deletePrefix(prefix);
    });

    async function scenario(label: string, run: (rep: number) => Promise<number>): Promise<void> {
      const delays: number[] = [];
      for (let rep = 0; rep < REPETITIONS; rep++) delays.push(await run(rep));
      delays.sort((x, y) => x - y);
      console.log(`      ${label}: median ${delays[REPETITIONS >> 1]!.toFixed(1)} ms, max ${delays.at(-1)!.toFixed(1)} ms`);
    }

    it(`revocation through A is seen by B within ${BOUND_MS} ms, ${REPETITIONS} times`, async () => {
      await scenario("revoke", async (rep) => {
        const key = await a.createApiKeys({ title: `k${rep}`, type: "secret", created_by: "u" });
        assert.ok((await a.authenticate(key.token)) && (await b.authenticate(key.token)), "both warm");
        await a.revoke(key.id, { revoked_by: "u" });
        assert.equal(await a.authenticate(key.token), false, "the revoking instance at once");
        return withinBound(async () => (await b.authenticate(key.token)) === false, `revoke ${rep}`);
      });
    });

    it(`roll through A retires the old key on B within ${BOUND_MS} ms, or at the end of its grace period`, async () => {
      await scenario("roll", async (rep) => {
        const key = await a.createApiKeys({ title: `k${rep}`, type: "secret", created_by: "u" });
        assert.ok(await b.authenticate(key.token));
        const next = await a.roll(key.id, { revoked_by: "u" });
        const took = await withinBound(async () => (await b.authenticate(key.token)) === false, `roll ${rep}`);
        assert.ok(await b.authenticate(next.token));
        return took;
      });
      const key = await a.createApiKeys({ title: "grace", type: "secret", created_by: "u" });
      assert.ok(await b.authenticate(key.token));
      await a.roll(key.id, { revoked_by: "u", revoke_in: 30 });
      await sleep(BOUND_MS);
      assert.ok(await b.authenticate(key.token), "still inside the grace period");
      db.clock.advance(30_000);
      assert.equal(await b.authenticate(key.token), false, "at the end of the grace period");
    });

    it(`title and sales channel changes through A reach B within ${BOUND_MS} ms`, async () => {
      await scenario("links", async (rep) => {
        const key = await a.createApiKeys({ title: `k${rep}`, type: "publishable", created_by: "u" });
        assert.deepEqual((await b.authenticatePublishable(key.token) || undefined)?.sales_channel_ids, []);
        await a.updateLinks(key.id, { add: [`sc_${rep}`] });
        return withinBound(async () => {
          const match = await b.authenticatePublishable(key.token);
          return match !== false && match.sales_channel_ids[0] === `sc_${rep}`;
        }, `links ${rep}`);
      });
      const key = await a.createApiKeys({ title: "before", type: "secret", created_by: "u" });
      assert.equal((await b.authenticate(key.token) || undefined)?.title, "before");
      await a.updateApiKeys(key.id, { title: "after" });
      await withinBound(async () => (await b.authenticate(key.token) || undefined)?.title === "after", "update");
    });

    it(`deletion through A drops the key's entries everywhere within ${BOUND_MS} ms`, async () => {
      await scenario("delete", async (rep) => {
        const key = await a.createApiKeys({ title: `k${rep}`, type: "publishable", created_by: "u" });
        await b.authenticatePublishable(key.token);
        await a.revoke(key.id, { revoked_by: "u" });
        await withinBound(async () => (await b.authenticatePublishable(key.token)) === false, `revoke before delete ${rep}`);
        const entry = entryOf(key.token);
        assert.equal(await redis().admin.exists(entry), 1, "B cached the revoked key in Redis");
        await a.deleteApiKeys(key.id);
        assert.equal(await redis().admin.exists(entry), 0, "the shared entry is gone");
        return withinBound(async () => (await b.authenticatePublishable(key.token)) === false, `delete ${rep}`);
      });
    });

    it("never stores a plaintext secret in a Redis key or value", async () => {
      const keys = await a.createApiKeys(
        Array.from({ length: 5 }, (_, i) => ({ title: `k${i}`, type: "secret" as const, created_by: "u" })),
      );
      for (const key of keys) assert.ok(await b.authenticate(key.token));
      let dump = "";
      const admin = redis().admin;
      for (const name of await redis().keys(prefix)) dump += `${name}\n${(await admin.type(name)) === "string" ? await admin.get(name) : ""}\n`;
      assert.ok(dump.includes(keys[0]!.id), "the dump holds the entries");
      for (const key of keys) {
        assert.equal(dump.includes(key.token), false);
        assert.equal(dump.includes(key.token.slice(3, 39)), false);
      }
    });
  },
  ["postgres"],
));

forEachBackend(
  "Redis tier with the app's own client",
  (db) => {
    const shared = redisPerTest();
    const prefix = () => shared.prefix;

    it("closes only the Redis connections it opened", async () => {
      const { Redis: RedisClient } = await import("ioredis");
      const appClient = new RedisClient(REDIS_URL);
      try {
        const service = await initialize({ database: db.knex, schema: db.schema, redis: appClient, cache: { redisPrefix: prefix() } });
        const key = await service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
        assert.ok(await service.authenticate(key.token));
        assert.equal(await appClient.exists(`${prefix()}key:${hashToken(key.token)}`), 1, "the app's client was used");
        const connections = async () => String(await shared.client.client("LIST")).split("\n").filter(Boolean).length;
        const before = await connections();
        await service.close();
        await sleep(50);
        assert.equal(appClient.status, "ready");
        const after = await connections();
        assert.equal(before - after, 1, "only the subscriber we opened was closed");
      } finally {
        appClient.disconnect();
      }
    });
  },
  ["postgres"],
);

onEveryRedis("Redis tier", (redis) => forEachBackend(
  "under a racing revocation",
  (db) => {
    let prefix = "";
    let proxy: TcpProxy;
    let slowKnex: Knex;

    beforeEach(async () => {
      prefix = testPrefix();
      proxy = new TcpProxy({ host: "127.0.0.1", port: Number(new URL(POSTGRES_URL).port || 5432) });
      const port = await proxy.listen();
      const url = new URL(POSTGRES_URL);
      url.port = String(port);
      slowKnex = knexFactory({ client: "pg", connection: url.toString(), pool: { min: 1, max: 2 } });
      await slowKnex.raw("select 1");
    });
    afterEach(async () => {
      await slowKnex.destroy();
      await proxy.close();
      await redis().deletePrefix(prefix);
    });

    for (const memory of [true, false]) {
      it(`a slow fill that raced a revocation is not kept (in-process tier ${memory ? "on" : "off"})`, async () => {
        const fast = await db.open({ redis: redis().option, cache: { redisPrefix: prefix } });
        const slow = await initialize({
          database: slowKnex,
          schema: db.schema,
          runMigrations: false,
          now: db.clock.now,
          redis: redis().option,
          cache: { redisPrefix: prefix, memory },
        });
        try {
          const key = await fast.createApiKeys({ title: "k", type: "secret", created_by: "u" });
          proxy.responseDelay = 300;
          const racing = slow.authenticate(key.token); // reads the row now, hears back in 300 ms
          await sleep(100);
          await fast.revoke(key.id, { revoked_by: "u" });
          const answer = await racing;
          proxy.responseDelay = 0;
          // With the in-process tier, the invalidation aborts the fill and the lookup is made again.
          if (memory) assert.equal(answer, false);
          const cached = await redis().admin.get(redisNames(prefix, redis().cluster).entry(hashToken(key.token)));
          // The entry's JSON follows its signature header.
          assert.ok(cached === null || JSON.parse(cached.slice(cached.indexOf("{"))).api_key.revoked_at, `no live entry in Redis: ${cached}`);
          assert.equal(await slow.authenticate(key.token), false);
          const third = await db.open({ redis: redis().option, cache: { redisPrefix: prefix } });
          assert.equal(await third.authenticate(key.token), false);
        } finally {
          await slow.close();
        }
      });
    }
  },
  ["postgres"],
));

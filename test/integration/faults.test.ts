import assert from "node:assert/strict";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import knexFactory, { type Knex } from "knex";
import { Redis } from "ioredis";
import request from "supertest";
import { initialize } from "../../setup/initialize";
import type { ApiKeyService } from "../../lib/service";
import { hashToken } from "../../lib/tokens";
import { forEachBackend } from "../helpers/backends";
import { rejectsWith } from "../helpers/assertions";
import { createApp } from "../helpers/create-app";
import { apiKeyMigrations } from "../../store/migrations";
import { PrivateRedis, REDIS_URL, freePort, redisPerTest, testPrefix } from "../helpers/redis";
import { POSTGRES_URL } from "../helpers/services";
import { TcpProxy } from "../helpers/tcp-proxy";

function captureLogger() {
  const lines: string[] = [];
  return { lines, logger: { warn: (message: string) => lines.push(message), error: (message: string) => lines.push(message) } };
}

forEachBackend(
  "Redis outage",
  (db) => {
    let server: PrivateRedis;

    beforeEach(async () => {
      server = new PrivateRedis(await freePort());
      await server.start();
    });
    afterEach(async () => {
      await server.stop();
    });

    it("keeps authenticating from the database while a private Redis is killed and restarted", async function () {
      this.timeout(30_000);
      const prefix = testPrefix();
      const L1_TTL = 500;
      const logs = [captureLogger(), captureLogger()];
      const [a, b] = await Promise.all(
        logs.map(({ logger }) => db.open({ redis: server.url, cache: { redisPrefix: prefix, ttl: L1_TTL }, logger })),
      ) as [ApiKeyService, ApiKeyService];
      const [valid, doomed] = await a.createApiKeys([
        { title: "valid", type: "secret", created_by: "u" },
        { title: "doomed", type: "secret", created_by: "u" },
      ]);
      assert.ok((await b.authenticate(doomed!.token)) && (await b.authenticate(valid!.token)));

      // Traffic with the valid key on both instances for the whole test; no request may fail.
      let stop = false;
      let requests = 0;
      const failures: string[] = [];
      const traffic = (async () => {
        while (!stop) {
          for (const instance of [a, b]) {
            try {
              if (!(await instance.authenticate(valid!.token))) failures.push("rejected");
            } catch (error) {
              failures.push(String(error));
            }
            requests++;
          }
          // Let the clock pass L1's ttl now and then, so lookups keep reaching the lower tiers.
          db.clock.advance(50);
          await sleep(5);
        }
      })();

      await sleep(300);
      await server.stop();
      await sleep(300);

      // Revoked during the outage: B cannot hear about it, and must stop accepting the key
      // within the stated bound, the in-process ttl.
      await a.revoke(doomed!.id, { revoked_by: "u" });
      assert.equal(await a.authenticate(doomed!.token), false);
      const start = performance.now();
      while ((await b.authenticate(doomed!.token)) !== false) {
        assert.ok(performance.now() - start < L1_TTL + 500, "B kept accepting a key revoked during the outage");
        await sleep(5);
      }

      await sleep(300);
      await server.start();
      // After the restart, lookups fill the shared tier again.
      const probe = new Redis(server.url);
      try {
        const fresh = await a.createApiKeys({ title: "fresh", type: "secret", created_by: "u" });
        const entry = `${prefix}key:${hashToken(fresh.token)}`;
        const back = performance.now();
        while ((await probe.exists(entry)) === 0) {
          assert.ok(performance.now() - back < 5000, "the shared cache was not used again after Redis came back");
          await b.authenticate(fresh.token);
          db.clock.advance(L1_TTL + 1);
          await sleep(50);
        }
      } finally {
        probe.disconnect();
      }
      stop = true;
      await traffic;

      assert.deepEqual(failures, []);
      assert.ok(requests > 100, `${requests} requests`);
      for (const { lines } of logs) {
        assert.equal(lines.filter((line) => /Redis is unavailable/.test(line)).length, 1, lines.join("\n"));
        assert.equal(lines.filter((line) => /Redis is back/.test(line)).length, 1, lines.join("\n"));
      }
    });
  },
  ["postgres"],
);

forEachBackend(
  "Redis down at boot",
  (db) => {
    let server: PrivateRedis;

    beforeEach(async () => {
      server = new PrivateRedis(await freePort()); // not started yet
    });
    afterEach(async () => {
      await server.stop();
    });

    it("subscribes once Redis is up, and from then on hears invalidations", async function () {
      this.timeout(30_000);
      const prefix = testPrefix();
      const early = await db.open({ redis: server.url, cache: { redisPrefix: prefix }, logger: captureLogger().logger });
      const key = await early.createApiKeys({ title: "k", type: "secret", created_by: "u" });
      assert.ok(await early.authenticate(key.token), "works from the database without Redis");

      await server.start();
      const late = await db.open({ redis: server.url, cache: { redisPrefix: prefix }, logger: captureLogger().logger });
      const probe = new Redis(server.url);
      try {
        const subscribers = async () => Number(((await probe.pubsub("NUMSUB", `${prefix}invalidate`)) as [string, number])[1]);
        const start = performance.now();
        while ((await subscribers()) < 2) {
          assert.ok(performance.now() - start < 10_000, "the instance that booted without Redis never subscribed");
          await sleep(20);
        }
      } finally {
        probe.disconnect();
      }
      await late.revoke(key.id, { revoked_by: "u" });
      const start = performance.now();
      // The clock stands still, so only the invalidation can drop the key from the early instance's memory.
      while ((await early.authenticate(key.token)) !== false) {
        assert.ok(performance.now() - start < 5_000, "the early instance did not hear the revocation");
        await sleep(5);
      }
    });
  },
  ["postgres"],
);

forEachBackend(
  "database outage",
  (db) => {
    let proxy: TcpProxy;
    let proxied: Knex;

    beforeEach(async () => {
      proxy = new TcpProxy({ host: "127.0.0.1", port: Number(new URL(POSTGRES_URL).port || 5432) });
      const url = new URL(POSTGRES_URL);
      url.port = String(await proxy.listen());
      proxied = knexFactory({
        client: "pg",
        connection: url.toString(),
        acquireConnectionTimeout: 1000,
        log: { warn: () => {}, error: () => {} },
      });
    });
    afterEach(async () => {
      await proxied.destroy();
      await proxy.close();
    });

    it("keeps recently verified keys working for cache.staleIfError, answers 503 for the rest, and recovers by itself", async function () {
      this.timeout(30_000);
      const { lines, logger } = captureLogger();
      const service = await initialize({
        database: proxied,
        schema: db.schema,
        runMigrations: false,
        now: db.clock.now,
        logger,
        cache: { ttl: 1000, staleIfError: 10_000 },
      });
      try {
        const [secret, publishable, unknownYet] = await service.createApiKeys([
          { title: "s", type: "secret", created_by: "u" },
          { title: "p", type: "publishable", created_by: "u" },
          { title: "never looked up", type: "secret", created_by: "u" },
        ]);
        const app = createApp("express5", { service });
        const basic = (token: string) => `Basic ${token}`;
        assert.equal((await request(app).get("/admin").set("Authorization", basic(secret!.token))).status, 200);
        assert.equal((await request(app).get("/store").set("x-publishable-api-key", publishable!.token)).status, 200);

        proxy.cut();
        db.clock.advance(2000); // past the ttl: every lookup now tries the database and fails
        assert.equal((await request(app).get("/admin").set("Authorization", basic(secret!.token))).status, 200);
        assert.equal((await request(app).get("/store").set("x-publishable-api-key", publishable!.token)).status, 200);
        const unknown = await request(app).get("/admin").set("Authorization", basic(unknownYet!.token));
        assert.deepEqual([unknown.status, unknown.body], [503, { type: "unavailable", message: "The API key store is unavailable" }]);

        db.clock.advance(9_500); // past ttl + staleIfError
        assert.equal((await request(app).get("/admin").set("Authorization", basic(secret!.token))).status, 503);

        proxy.restore();
        assert.equal((await request(app).get("/admin").set("Authorization", basic(secret!.token))).status, 200);
        assert.equal((await request(app).get("/admin").set("Authorization", basic(unknownYet!.token))).status, 200);
        assert.deepEqual(
          lines.filter((line) => /key store/.test(line)),
          ["express-api-keys: the key store is unavailable; serving recently verified keys", "express-api-keys: the key store is back"],
        );
      } finally {
        await service.close();
      }
    });
  },
  ["postgres"],
);

forEachBackend(
  "deployment secret out of reach",
  (db) => {
    const shared = redisPerTest();

    it("authenticates from the database without Redis until the secret can be read, saying so once each way", async () => {
      const keys = await db.service.createApiKeys([
        { title: "a", type: "secret", created_by: "u" },
        { title: "b", type: "secret", created_by: "u" },
      ]);
      // The secret table out of reach (as if dropped by mistake and later restored from a backup):
      // tokens cannot be checked against their tag meanwhile, so they are looked up on their checksum.
      const saved = await db.table("api_key_secret").select<{ name: string; value: string }[]>("name", "value");
      await db.knex.schema.withSchema(db.schema!).dropTable("api_key_secret");
      const { lines, logger } = captureLogger();
      const service = await db.open({ redis: REDIS_URL, runMigrations: false, cache: { redisPrefix: shared.prefix }, logger });
      await rejectsWith(service.createApiKeys({ title: "c", type: "secret", created_by: "u" }), "unknown_error", "An unknown error occurred.");
      db.clock.advance(1);
      for (const key of keys) assert.ok(await service.authenticate(key.token));
      assert.equal(await shared.client.exists(`${shared.prefix}key:${hashToken(keys[0]!.token)}`), 0, "nothing written to Redis");

      const [, secretTable] = await apiKeyMigrations({ schema: db.schema }).getMigrations([]);
      await secretTable!.up(db.knex);
      await db.table("api_key_secret").insert(saved);
      db.clock.advance(1_000); // past the retry pause
      db.clock.advance(5_001); // past cache.ttl: the next lookup goes to the lower tiers
      assert.ok(await service.authenticate(keys[0]!.token));
      assert.equal(await shared.client.exists(`${shared.prefix}key:${hashToken(keys[0]!.token)}`), 1, "Redis used again");
      assert.deepEqual(
        lines.filter((line) => /deployment secret/.test(line)),
        [
          "express-api-keys: cannot read the deployment secret; the Redis tier is skipped until it can be read",
          "express-api-keys: the deployment secret was read; using the shared cache again (after 1 failure)",
        ],
      );
    });
  },
  ["postgres"],
);

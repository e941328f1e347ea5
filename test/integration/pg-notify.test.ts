// Invalidations over PostgreSQL LISTEN/NOTIFY, with no Redis: on the shared PostgreSQL, in a
// schema of this suite's own (the channel is named after it, so no other run hears it). The
// test clock stands still, so in-process entries never expire: only a notification can make an
// instance refuse a key it has cached.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import knexFactory, { type Knex } from "knex";
import type { ApiKeyService } from "../../lib/service";
import { channelName } from "../../store/cache/pg-notify";
import { forEachBackend } from "../helpers/backends";
import { REDIS_URL, connectRedis, deletePrefix, testPrefix } from "../helpers/redis";
import { POSTGRES_URL } from "../helpers/services";

const BOUND_MS = 100;
const REPETITIONS = 30;

function captureLogger() {
  const lines: string[] = [];
  return { lines, logger: { warn: (message: string) => lines.push(message), error: (message: string) => lines.push(message) } };
}

/** Polls `check` until it holds, failing past `bound` milliseconds; returns the time it took. */
async function within(bound: number, check: () => Promise<boolean>, label: string): Promise<number> {
  const start = performance.now();
  while (!(await check())) {
    if (performance.now() - start > bound) assert.fail(`${label}: not seen within ${bound} ms`);
    await sleep(1);
  }
  return performance.now() - start;
}

forEachBackend(
  "invalidations over LISTEN/NOTIFY",
  (db) => {
    /** A Knex on the shared server whose connections carry `name`, so a test can find them in pg_stat_activity. */
    let named: Knex[] = [];
    function namedKnex(name: string): Knex {
      const url = new URL(POSTGRES_URL);
      url.searchParams.set("application_name", name);
      const knex = knexFactory({ client: "pg", connection: url.toString() });
      named.push(knex);
      return knex;
    }
    afterEach(async () => {
      await Promise.all(named.map((knex) => knex.destroy()));
      named = [];
    });

    /** The backends of `name`'s listening connections. */
    async function listeners(name: string): Promise<number[]> {
      const { rows } = await db.knex.raw<{ rows: { pid: number }[] }>(
        "select pid from pg_stat_activity where application_name = ? and query like 'listen %'",
        [name],
      );
      return rows.map((row) => row.pid);
    }

    it(`a revocation through A reaches B within ${BOUND_MS} ms, ${REPETITIONS} times`, async () => {
      const [a, b] = [await db.open(), await db.open()];
      const delays: number[] = [];
      for (let rep = 0; rep < REPETITIONS; rep++) {
        const key = await a.createApiKeys({ title: `k${rep}`, type: "secret", created_by: "u" });
        assert.ok((await a.authenticate(key.token)) && (await b.authenticate(key.token)), "both warm");
        await a.revoke(key.id, { revoked_by: "u" });
        assert.equal(await a.authenticate(key.token), false, "the revoking instance at once");
        delays.push(await within(BOUND_MS, async () => (await b.authenticate(key.token)) === false, `revoke ${rep}`));
      }
      delays.sort((x, y) => x - y);
      console.log(`      revoke: median ${delays[REPETITIONS >> 1]!.toFixed(1)} ms, max ${delays.at(-1)!.toFixed(1)} ms`);
    });

    it("a change of links through A reaches B's publishable key", async () => {
      const [a, b] = [await db.open(), await db.open()];
      const key = await a.createApiKeys({ title: "before", type: "publishable", created_by: "u" });
      assert.deepEqual((await b.authenticatePublishable(key.token) || undefined)?.sales_channel_ids, []);
      await a.updateLinks(key.id, { add: ["sc_1"] });
      await within(BOUND_MS, async () => (await b.authenticatePublishable(key.token) || undefined)?.sales_channel_ids[0] === "sc_1", "links");
    });

    it("a dropped listening connection comes back, resyncs, and hears again", async function () {
      this.timeout(20_000);
      const name = `b_${randomBytes(4).toString("hex")}`;
      const { lines, logger } = captureLogger();
      const a = await db.open();
      const b = await db.open({ database: namedKnex(name), logger });
      const [missed, later] = await a.createApiKeys([
        { title: "revoked while B is not listening", type: "secret", created_by: "u" },
        { title: "revoked once B listens again", type: "secret", created_by: "u" },
      ]);
      assert.ok((await b.authenticate(missed!.token)) && (await b.authenticate(later!.token)));

      const [pid] = await listeners(name);
      assert.ok(pid, "B listens on a connection of its own");
      await db.knex.raw("select pg_terminate_backend(?)", [pid]);
      // Sent while B may not be listening: B must learn of it by resyncing when it is back.
      await a.revoke(missed!.id, { revoked_by: "u" });
      const recovered = await within(2_000, async () => (await b.authenticate(missed!.token)) === false, "the revocation B may have missed");
      await within(2_000, async () => (await listeners(name)).some((other) => other !== pid), "B listening again");

      await a.revoke(later!.id, { revoked_by: "u" });
      await within(BOUND_MS, async () => (await b.authenticate(later!.token)) === false, "a revocation after the return");
      assert.deepEqual(
        lines.filter((line) => /PostgreSQL/.test(line)),
        [
          "express-api-keys: cannot listen for invalidations on PostgreSQL; changes made elsewhere reach this instance within cache.ttl until it can",
          "express-api-keys: listening for invalidations on PostgreSQL again (after 1 failure)",
        ],
      );
      console.log(`      refused ${recovered.toFixed(1)} ms after the listening connection was killed`);
    });

    it("ignores messages that are not ours, says so once, and keeps hearing", async () => {
      const { lines, logger } = captureLogger();
      // Every instance on the channel hears the junk: only those of this test listen, each with a logger of its own.
      await db.service.close();
      const [a, b] = [await db.open({ logger: captureLogger().logger }), await db.open({ logger })];
      const key = await a.createApiKeys({ title: "k", type: "secret", created_by: "u" });
      assert.ok(await b.authenticate(key.token));
      const channel = channelName(db.schema!);
      for (const junk of ["", "not json", "[1]", JSON.stringify(["A".repeat(64)]), "[".repeat(5_000)]) {
        await db.knex.raw("select pg_notify(?, ?)", [channel, junk]);
      }
      await a.revoke(key.id, { revoked_by: "u" });
      await within(BOUND_MS, async () => (await b.authenticate(key.token)) === false, "the revocation after the junk");
      assert.deepEqual(lines, ["express-api-keys: ignored a message on the PostgreSQL invalidation channel that is not one of ours"]);
    });

    it("opens no listening connection when Redis carries invalidations", async function () {
      const redis = await connectRedis(this);
      const prefix = testPrefix();
      const name = `r_${randomBytes(4).toString("hex")}`;
      try {
        const service: ApiKeyService = await db.open({ database: namedKnex(name), redis: REDIS_URL, cache: { redisPrefix: prefix } });
        assert.ok(await service.listApiKeys());
        assert.deepEqual(await listeners(name), []);
      } finally {
        if (redis) await deletePrefix(redis, prefix);
        redis?.disconnect();
      }
    });
  },
  ["postgres"],
);

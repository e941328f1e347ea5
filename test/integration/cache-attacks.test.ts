// Attacks by someone who can read and write the shared Redis but holds neither the database nor
// the pepper: forged, replayed, tampered and foreign cache entries, garbage on the
// invalidation channel, and floods of unknown tokens. A raw ioredis client plays the attacker, under the
// test's own prefix.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { inspect } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import type { Redis } from "ioredis";
import { Redis as RedisClient } from "ioredis";
import { initialize } from "../../setup/initialize";
import { policyDefaults } from "../../lib/columns";
import type { FoundEntry } from "../../lib/key-lookup-cache";
import { RedisTier } from "../../store/cache/redis";
import type { ApiKeysOptions } from "../../setup/options";
import type { ApiKeyService } from "../../lib/service";
import { hashToken, redactToken } from "../../lib/tokens";
import { TestClock, forEachBackend } from "../helpers/backends";
import { REDIS_URL, redisPerTest } from "../helpers/redis";

function captureLogger() {
  const lines: string[] = [];
  const log = (message: string, ...details: unknown[]) => lines.push([message, ...details.map((d) => inspect(d))].join(" "));
  return { lines, logger: { warn: log, error: log } };
}

const selects = (queries: string[]) => queries.filter((sql) => /^select\b/i.test(sql.trim())).length;

/** Past the in-process tiers' life (cache.ttl 5 s, unknown tokens 1 s), well within cache.redisTtl (60 s). */
const PAST_MEMORY_MS = 5_001;

/** The JSON part of a stored entry, whatever comes before it. */
function splitEntry(text: string): [head: string, json: Record<string, unknown>] {
  const start = text.indexOf("{");
  return [text.slice(0, start), JSON.parse(text.slice(start)) as Record<string, unknown>];
}

async function keysUnder(redis: Redis, prefix: string): Promise<string[]> {
  const names: string[] = [];
  let cursor = "0";
  do {
    const [next, found] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 500);
    cursor = next;
    names.push(...found);
  } while (cursor !== "0");
  return names.sort();
}

forEachBackend(
  "Redis entries an attacker wrote",
  (db) => {
    const shared = redisPerTest();
    const entryName = (token: string) => `${shared.prefix}key:${hashToken(token)}`;
    const open = (options: ApiKeysOptions = {}) =>
      db.open({ redis: REDIS_URL, cache: { redisPrefix: shared.prefix }, logger: captureLogger().logger, ...options });
    const refusals = (lines: string[]) => lines.filter((line) => /entr(y|ies) read from Redis/.test(line)).length;

    /** Waits (bounded) until `service` no longer accepts `token`: the invalidation has reached it. */
    async function untilRefused(service: ApiKeyService, token: string): Promise<void> {
      for (let attempt = 0; (await service.authenticate(token)) !== false; attempt++) {
        assert.ok(attempt < 2000, "the invalidation never arrived");
        await sleep(1);
      }
    }

    it("serves a legitimate entry from Redis: no store query", async () => {
      const [a, b] = [await open(), await open()];
      db.clock.advance(1);
      const key = await a.createApiKeys({ title: "k", type: "secret", created_by: "u" });
      assert.ok(await a.authenticate(key.token));
      assert.equal(await shared.client.exists(entryName(key.token)), 1);
      const { result, queries } = await db.countQueries(() => b.authenticate(key.token));
      assert.equal(result && result.id, key.id);
      assert.equal(queries.length, 0, queries.join("\n"));
    });

    it("refuses an entry forged for a fresh checksum-valid token", async () => {
      const { lines, logger } = captureLogger();
      const service = await open({ logger });
      db.clock.advance(1);
      const token = await db.unissuedToken("secret", { service });
      const now = db.clock.now();
      const forged = JSON.stringify({
        found: true,
        api_key: {
          id: "apk_01FORGED0000000000000000",
          token: "",
          redacted: redactToken(token),
          title: "forged",
          type: "secret",
          last_used_at: null,
          created_by: "attacker",
          created_at: now,
          updated_at: now,
          deleted_at: null,
          revoked_by: null,
          revoked_at: null,
        },
        sales_channel_ids: [],
      });
      const t = now.getTime();
      // The bare entry, and the signed form with a made-up MAC.
      for (const text of [forged, `v1:${t}:${t + 30_000}:${"ab".repeat(32)}:${forged}`]) {
        await shared.client.set(entryName(token), text, "PX", 60_000);
        assert.equal(await service.authenticate(token), false, text.slice(0, 100));
        assert.equal(await shared.client.exists(entryName(token)), 0, "the refused entry was deleted");
        db.clock.advance(PAST_MEMORY_MS);
      }
      assert.equal(refusals(lines), 1, lines.join("\n"));

      // A minute without refusals, then a good entry: the run is reported over, once.
      db.clock.advance(60_000);
      const key = await service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
      assert.ok(await service.authenticate(key.token));
      db.clock.advance(PAST_MEMORY_MS);
      assert.ok(await service.authenticate(key.token));
      assert.ok(await service.authenticate(await db.unissuedToken("secret", { service })) === false);
      assert.equal(lines.filter((line) => /entries read from Redis verify again/.test(line)).length, 1, lines.join("\n"));
    });

    it("refuses a saved entry replayed after its key was revoked", async () => {
      const { lines, logger } = captureLogger();
      const [a, b] = [await open(), await open({ logger })];
      db.clock.advance(1);
      const key = await a.createApiKeys({ title: "k", type: "secret", created_by: "u" });
      assert.ok(await b.authenticate(key.token));
      const saved = await shared.client.get(entryName(key.token));
      assert.ok(saved, "B filled Redis");

      db.clock.advance(2_000);
      await a.revoke(key.id, { revoked_by: "u" });
      await untilRefused(b, key.token);
      await shared.client.set(entryName(key.token), saved, "PX", 60_000);
      db.clock.advance(PAST_MEMORY_MS);

      assert.equal(await b.authenticate(key.token), false, "an instance that heard the revocation");
      await shared.client.set(entryName(key.token), saved, "PX", 60_000);
      assert.equal(await a.authenticate(key.token), false, "the revoking instance");
      await shared.client.set(entryName(key.token), saved, "PX", 60_000);
      const late = captureLogger();
      const c = await open({ logger: late.logger });
      assert.equal(await c.authenticate(key.token), false, "an instance started after the revocation");
      assert.equal(refusals(lines), 1, lines.join("\n"));
      // Older than what the late instance can vouch for: refused without suspicion.
      assert.equal(refusals(late.lines), 0, late.lines.join("\n"));
    });

    it("refuses an entry whose content was changed: revoked_at cleared, or the id swapped", async () => {
      const { lines, logger } = captureLogger();
      const [a, b] = [await open(), await open({ logger })];
      db.clock.advance(1);
      const [revoked, other, victim] = await a.createApiKeys([
        { title: "revoked", type: "secret", created_by: "u" },
        { title: "other", type: "secret", created_by: "u" },
        { title: "victim", type: "secret", created_by: "u" },
      ]);
      await a.revoke(revoked!.id, { revoked_by: "u" });
      db.clock.advance(1);
      assert.equal(await b.authenticate(revoked!.token), false);
      assert.ok(await b.authenticate(victim!.token));
      db.clock.advance(PAST_MEMORY_MS);
      // Untouched, both entries are served from Redis.
      const untouched = await db.countQueries(async () => [await b.authenticate(revoked!.token), await b.authenticate(victim!.token)]);
      assert.deepEqual([untouched.result[0], untouched.result[1] && untouched.result[1].id, untouched.queries.length], [false, victim!.id, 0]);

      const tamper = async (token: string, change: (api_key: Record<string, unknown>) => void) => {
        const [head, entry] = splitEntry((await shared.client.get(entryName(token)))!);
        change(entry.api_key as Record<string, unknown>);
        await shared.client.set(entryName(token), head + JSON.stringify(entry), "PX", 60_000);
      };
      await tamper(revoked!.token, (api_key) => {
        api_key.revoked_at = null;
        api_key.revoked_by = null;
      });
      await tamper(victim!.token, (api_key) => {
        api_key.id = other!.id;
      });
      db.clock.advance(PAST_MEMORY_MS);
      const { result, queries } = await db.countQueries(async () => [await b.authenticate(revoked!.token), await b.authenticate(victim!.token)]);
      assert.equal(result[0], false, "revoked_at cleared");
      assert.equal(result[1] && result[1].id, victim!.id, "id swapped");
      assert.equal(selects(queries), 2, "both were looked up in the database");
      assert.equal(refusals(lines), 1, lines.join("\n"));
    });

    it("refuses an entry signed under another deployment secret", async () => {
      const otherSchema = `${db.schema}_other`;
      await db.knex.raw("drop schema if exists ?? cascade", [otherSchema]);
      const stranger = await initialize({
        database: db.knex,
        schema: otherSchema,
        now: db.clock.now,
        redis: REDIS_URL,
        cache: { redisPrefix: shared.prefix },
        logger: captureLogger().logger,
      });
      try {
        const { lines, logger } = captureLogger();
        const service = await open({ logger });
        db.clock.advance(1);
        const key = await stranger.createApiKeys({ title: "elsewhere", type: "secret", created_by: "u" });
        assert.ok(await stranger.authenticate(key.token));
        assert.equal(await shared.client.exists(entryName(key.token)), 1, "the other deployment wrote its entry");
        assert.equal(await service.authenticate(key.token), false);
        assert.equal(refusals(lines), 0, "its token fails this deployment's tag before Redis is read");
        // Its entry, moved under the name of a token this deployment could have issued.
        const token = await db.unissuedToken("secret", { service });
        await shared.client.set(entryName(token), (await shared.client.get(entryName(key.token)))!, "PX", 60_000);
        assert.equal(await service.authenticate(token), false);
        assert.equal(refusals(lines), 1, lines.join("\n"));
      } finally {
        await stranger.close();
        await db.knex.raw("drop schema if exists ?? cascade", [otherSchema]);
      }
    });

    it("keeps the deployment secret out of Redis and out of the logs", async () => {
      const { lines, logger } = captureLogger();
      const [a, b] = [await open({ logger }), await open({ logger })];
      db.clock.advance(1);
      const keys = await a.createApiKeys([
        { title: "s", type: "secret", created_by: "u" },
        { title: "p", type: "publishable", created_by: "u" },
      ]);
      for (const key of keys) assert.ok(key.type === "secret" ? await b.authenticate(key.token) : await b.authenticatePublishable(key.token));
      await a.revoke(keys[0]!.id, { revoked_by: "u" });
      await shared.client.set(entryName(keys[1]!.token), "garbage", "PX", 60_000);
      await shared.client.publish(`${shared.prefix}invalidate`, "garbage");
      db.clock.advance(PAST_MEMORY_MS);
      await b.authenticatePublishable(keys[1]!.token);
      await untilRefused(b, keys[0]!.token);

      const [{ value }] = (await db.knex.withSchema(db.schema!).from("api_key_secret").select("value")) as [{ value: string }];
      const forms = [value, Buffer.from(value, "base64url").toString("hex"), Buffer.from(value, "base64url").toString("base64")];
      let dump = "";
      for (const name of await keysUnder(shared.client, shared.prefix)) dump += `${name} ${(await shared.client.type(name)) === "string" ? await shared.client.get(name) : ""}\n`;
      assert.ok(dump.includes(keys[1]!.id), "the dump holds the entries");
      for (const form of forms) {
        assert.equal(dump.includes(form), false, "in Redis");
        assert.equal(lines.join("\n").includes(form), false, "in the logs");
      }
    });
  },
  ["postgres"],
);

forEachBackend(
  "the invalidation channel under attack",
  (db) => {
    const shared = redisPerTest();

    it("ignores malformed messages, logs them once, and keeps serving and hearing invalidations", async () => {
      const { lines, logger } = captureLogger();
      const uncaught: unknown[] = [];
      const onUncaught = (error: unknown) => uncaught.push(error);
      process.on("uncaughtException", onUncaught);
      try {
        const a = await db.open({ redis: REDIS_URL, cache: { redisPrefix: shared.prefix }, logger });
        const b = await db.open({ redis: REDIS_URL, cache: { redisPrefix: shared.prefix }, logger: captureLogger().logger });
        const [key, doomed] = await a.createApiKeys([
          { title: "k", type: "secret", created_by: "u" },
          { title: "doomed", type: "secret", created_by: "u" },
        ]);
        assert.ok((await a.authenticate(key!.token)) && (await a.authenticate(doomed!.token)));
        const validKey = hashToken(key!.token);
        const garbage = [
          "not json",
          "",
          "null",
          "{}",
          '{"0":"x"}',
          "[1]",
          "[null]",
          '"*"',
          '["../other"]',
          JSON.stringify([validKey, 7]),
          JSON.stringify([validKey.toUpperCase()]),
          JSON.stringify(Array.from({ length: 20_000 }, () => validKey)),
          `${"[".repeat(30_000)}${"]".repeat(30_000)}`,
          `${"[".repeat(500_000)}${"]".repeat(500_000)}`,
        ];
        for (const message of garbage) await shared.client.publish(`${shared.prefix}invalidate`, message);
        // Messages arrive in order: once B's revocation is heard, every message above was handled.
        await b.revoke(doomed!.id, { revoked_by: "u" });
        for (let attempt = 0; (await a.authenticate(doomed!.token)) !== false; attempt++) {
          assert.ok(attempt < 2000, "A no longer hears invalidations");
          await sleep(1);
        }
        const { result, queries } = await db.countQueries(() => a.authenticate(key!.token));
        assert.equal(result && result.id, key!.id);
        assert.equal(queries.length, 0, "no malformed message dropped the key");
        assert.deepEqual(uncaught, []);
        assert.equal(lines.filter((line) => /invalidation channel/.test(line)).length, 1, lines.join("\n"));
      } finally {
        process.off("uncaughtException", onUncaught);
      }
    });
  },
  ["postgres"],
);

forEachBackend(
  "a flood of unknown tokens",
  (db) => {
    const shared = redisPerTest();

    for (const memory of [true, false]) {
      it(`writes nothing to Redis (in-process tier ${memory ? "on" : "off"})`, async () => {
        const service = await db.open({ redis: REDIS_URL, cache: { redisPrefix: shared.prefix, memory }, logger: captureLogger().logger });
        const key = await service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
        assert.ok(await service.authenticate(key.token));
        const before = await keysUnder(shared.client, shared.prefix);
        const [secrets, publishables] = [await db.unissuedTokens("secret", 300, { service }), await db.unissuedTokens("publishable", 300, { service })];
        for (let i = 0; i < 300; i++) {
          assert.equal(await service.authenticate(secrets[i]!), false);
          assert.equal(await service.authenticatePublishable(publishables[i]!), false);
        }
        assert.deepEqual(await keysUnder(shared.client, shared.prefix), before);
      });
    }
  },
  ["postgres"],
);

describe("the Redis tier's memory of invalidations", () => {
  const shared = redisPerTest();

  function entryFor(id: string, at: Date): FoundEntry {
    const api_key = {
      id,
      token: "",
      redacted: "sk_abc***xyz",
      title: id,
      type: "secret" as const,
      last_used_at: null,
      created_by: "u",
      created_at: at,
      updated_at: at,
      deleted_at: null,
      revoked_by: null,
      revoked_at: null,
      ...policyDefaults(),
      token_format: 2 as const,
    };
    return { found: true, api_key, sales_channel_ids: [] };
  }

  it("past its bound, refuses everything written before the invalidations it forgot", async () => {
    const clock = new TestClock();
    const client = new RedisClient(REDIS_URL);
    const key = randomBytes(32);
    const tier = new RedisTier(client, false, {
      prefix: shared.prefix,
      ttl: 60_000,
      timeout: 5_000,
      logger: captureLogger().logger,
      now: clock.now,
      signingKey: async () => key,
      maxRemembered: 2,
    });
    try {
      await tier.start(() => {}, () => {});
      clock.advance(1);
      const cacheKeys = ["a", "b", "c"].map((c) => c.repeat(64));
      const fill = async (cacheKey: string) => tier.write(cacheKey, entryFor(`apk_${cacheKey.slice(0, 4)}`, clock.now()), (await tier.read(cacheKey))!);
      for (const cacheKey of cacheKeys) await fill(cacheKey);
      for (const cacheKey of cacheKeys) assert.ok((await tier.read(cacheKey))?.entry, "served before any invalidation");
      const saved = await Promise.all(cacheKeys.map((cacheKey) => shared.client.get(`${shared.prefix}key:${cacheKey}`)));

      for (const cacheKey of cacheKeys) {
        clock.advance(1);
        await tier.invalidate([cacheKey]); // the third pushes the first out of memory
      }
      for (const [i, cacheKey] of cacheKeys.entries()) await shared.client.set(`${shared.prefix}key:${cacheKey}`, saved[i]!, "PX", 60_000);
      for (const cacheKey of cacheKeys) assert.equal((await tier.read(cacheKey))?.entry, undefined, `${cacheKey.slice(0, 4)} put back`);

      clock.advance(1);
      await fill(cacheKeys[0]!);
      assert.ok((await tier.read(cacheKeys[0]!))?.entry, "an entry written after the floor is served");
    } finally {
      await tier.close();
      client.disconnect();
    }
  });
});

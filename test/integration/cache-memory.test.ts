import assert from "node:assert/strict";
import knexFactory, { type Knex } from "knex";
import { initialize } from "../../setup/initialize";
import { forEachBackend } from "../helpers/backends";
import { POSTGRES_URL } from "../helpers/services";
import { TcpProxy } from "../helpers/tcp-proxy";

function captureLogger() {
  const lines: string[] = [];
  return { lines, logger: { warn: (message: string) => lines.push(message), error: (message: string) => lines.push(message) } };
}

const selects = (queries: string[]) => queries.filter((sql) => /^select\b/i.test(sql.trim())).length;

forEachBackend("in-process cache", (db) => {
  it("serves a verified key from memory: the second lookup sends no query", async () => {
    const key = await db.service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
    const first = await db.countQueries(() => db.service.authenticate(key.token));
    const second = await db.countQueries(() => db.service.authenticate(key.token));
    assert.ok(first.result && second.result);
    assert.deepEqual([selects(first.queries), second.queries.length], [1, 0]);
  });

  it("caches unknown well-formed tokens too", async () => {
    const token = await db.unissuedToken("secret");
    const first = await db.countQueries(() => db.service.authenticate(token));
    const again = await db.countQueries(() => db.service.authenticate(token));
    assert.deepEqual([first.result, again.result, first.queries.length, again.queries.length], [false, false, 1, 0]);
  });

  it("shares one store lookup among concurrent misses for one token", async () => {
    const key = await db.service.createApiKeys({ title: "k", type: "publishable", created_by: "u" });
    const { result, queries } = await db.countQueries(() =>
      Promise.all(Array.from({ length: 25 }, () => db.service.authenticatePublishable(key.token))),
    );
    assert.ok(result.every((match) => match && match.api_key.id === key.id));
    assert.equal(queries.length, 1);
  });

  it("asks the store again once the entry is older than cache.ttl", async () => {
    const service = await db.open({ cache: { ttl: 1000 } });
    const key = await service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
    await service.authenticate(key.token);
    db.clock.advance(999);
    assert.equal((await db.countQueries(() => service.authenticate(key.token))).queries.length, 0);
    db.clock.advance(2);
    assert.equal((await db.countQueries(() => service.authenticate(key.token))).queries.length, 1);
  });

  it("applies a scheduled revocation at its instant, even to a cached key", async () => {
    const key = await db.service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
    await db.service.revoke(key.id, { revoked_by: "u", revoke_in: 3 });
    assert.ok(await db.service.authenticate(key.token));
    db.clock.advance(3000);
    const { result, queries } = await db.countQueries(() => db.service.authenticate(key.token));
    assert.deepEqual([result, queries.length], [false, 0]);
  });

  it("drops changed keys at once in the instance that changed them", async () => {
    const key = await db.service.createApiKeys({ title: "old", type: "publishable", created_by: "u" });
    assert.deepEqual((await db.service.authenticatePublishable(key.token) || undefined)?.sales_channel_ids, []);
    await db.service.updateLinks(key.id, { add: ["sc_1"] });
    await db.service.updateApiKeys(key.id, { title: "new" });
    const match = await db.service.authenticatePublishable(key.token);
    assert.ok(match);
    assert.deepEqual([match.api_key.title, match.sales_channel_ids], ["new", ["sc_1"]]);
    await db.service.revoke(key.id, { revoked_by: "u" });
    assert.equal(await db.service.authenticatePublishable(key.token), false);
  });

  it("keeps at most cache.max keys", async () => {
    const service = await db.open({ cache: { max: 50 } });
    const keys = await service.createApiKeys(Array.from({ length: 60 }, (_, i) => ({ title: `k${i}`, type: "secret" as const, created_by: "u" })));
    for (const key of keys) assert.ok(await service.authenticate(key.token));
    assert.equal((await db.countQueries(() => service.authenticate(keys[0]!.token))).queries.length, 1, "evicted");
  });

  it("keeps valid keys cached through a flood of unknown tokens larger than cache.max", async () => {
    const service = await db.open({ cache: { max: 50 } });
    const key = await service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
    assert.ok(await service.authenticate(key.token));
    for (const token of await db.unissuedTokens("secret", 200, { service })) assert.equal(await service.authenticate(token), false);
    const { result, queries } = await db.countQueries(() => service.authenticate(key.token));
    assert.equal(result && result.id, key.id);
    assert.equal(queries.length, 0, "still cached");
  });

  it("remembers unknown tokens for cache.negativeTtl only, and at most cache.negativeMax of them", async () => {
    const service = await db.open({ cache: { negativeTtl: 1000, negativeMax: 10 } });
    const token = await db.unissuedToken("secret", { service });
    await service.authenticate(token);
    db.clock.advance(999);
    assert.equal((await db.countQueries(() => service.authenticate(token))).queries.length, 0, "remembered");
    db.clock.advance(2);
    assert.equal((await db.countQueries(() => service.authenticate(token))).queries.length, 1, "forgotten after its ttl");
    for (const other of await db.unissuedTokens("secret", 10, { service })) await service.authenticate(other);
    assert.equal((await db.countQueries(() => service.authenticate(token))).queries.length, 1, "pushed out by newer ones");
  });

  it("with cache: false, asks the store every time", async () => {
    const service = await db.open({ cache: false });
    const key = await service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
    const { queries } = await db.countQueries(async () => {
      for (let i = 0; i < 5; i++) assert.ok(await service.authenticate(key.token));
    });
    assert.equal(selects(queries), 5);
  });

  it("returns keys that callers cannot use to change the cache: read-only, and the channels a copy", async () => {
    const key = await db.service.createApiKeys({ title: "k", type: "publishable", created_by: "u" });
    const match = await db.service.authenticatePublishable(key.token);
    assert.ok(match);
    assert.throws(() => (match.api_key.title = "tampered"), TypeError);
    match.sales_channel_ids.push("sc_evil");
    const again = await db.service.authenticatePublishable(key.token);
    assert.ok(again);
    assert.deepEqual([again.api_key.title, again.sales_channel_ids], ["k", []]);
  });
});

forEachBackend(
  "in-process cache and a lookup in flight",
  (db) => {
    let proxy: TcpProxy;
    let slowKnex: Knex;

    beforeEach(async () => {
      proxy = new TcpProxy({ host: "127.0.0.1", port: Number(new URL(POSTGRES_URL).port || 5432) });
      const url = new URL(POSTGRES_URL);
      url.port = String(await proxy.listen());
      // One connection, opened before the test holds the proxy.
      slowKnex = knexFactory({ client: "pg", connection: url.toString(), pool: { min: 1, max: 1 } });
      await slowKnex.raw("select 1");
    });
    afterEach(async () => {
      proxy.release();
      await slowKnex.destroy();
      await proxy.close();
    });

    it("makes an invalidated lookup again instead of answering from the stale entry, and reports no outage", async () => {
      const { lines, logger } = captureLogger();
      const service = await initialize({
        database: slowKnex,
        schema: db.schema,
        runMigrations: false,
        now: db.clock.now,
        logger,
        cache: { ttl: 1000 },
      });
      try {
        const key = await service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
        assert.ok(await service.authenticate(key.token));
        db.clock.advance(1001); // the memory entry is stale: the next lookup refreshes it from the store

        const held = proxy.hold();
        const lookup = service.authenticate(key.token);
        await held; // the store has answered "active"; the answer is on its way
        // Revoked meanwhile, through the same service, on a connection the proxy does not hold.
        await db.knex.transaction((trx) => service.revoke(key.id, { revoked_by: "u" }, { transaction: trx }));
        proxy.release();

        assert.equal(await lookup, false, "answered from a read made after the revocation");
        assert.equal(await service.authenticate(key.token), false);
        assert.deepEqual(lines.filter((line) => /unavailable/.test(line)), [], lines.join("\n"));
      } finally {
        await service.close();
      }
    });
  },
  ["postgres"],
);

forEachBackend(
  "cache and app transactions",
  (db) => {
    it("drops a key changed in the app's transaction again when it commits", async () => {
      const key = await db.service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
      const trx = await db.knex.transaction();
      await db.service.revoke(key.id, { revoked_by: "u" }, { transaction: trx });
      // Before the commit, other connections still see the key as active, and may cache it.
      assert.ok(await db.service.authenticate(key.token));
      await trx.commit();
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(await db.service.authenticate(key.token), false);
    });
  },
  ["postgres"],
);

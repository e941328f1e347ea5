// Read replicas, on a private PostgreSQL primary with a streaming replica (one pair for the
// whole suite, a schema per test). Replay is paused on demand to make the replica lag, and a TCP
// proxy in front of the replica cuts it or holds its answers. Services read the replica through
// that proxy, so the test sees every query each server receives.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import knexFactory, { type Knex } from "knex";
import { initialize } from "../../setup/initialize";
import type { ApiKeysOptions } from "../../setup/options";
import type { ApiKeyService } from "../../lib/service";
import { runMigrations } from "../../store/migrations";
import { REDIS_URL, connectRedis, deletePrefix, testPrefix } from "../helpers/redis";
import { ReplicaCluster } from "../helpers/replica-cluster";
import { TcpProxy } from "../helpers/tcp-proxy";

const BOUND_MS = 100;
const TIMEOUT_MS = 200;

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

/** The statements on our key table that `knex` sends while `work` runs. */
async function keyQueries<T>(knex: Knex, work: () => Promise<T>): Promise<{ result: T; queries: string[] }> {
  const queries: string[] = [];
  const listener = (query: { sql: string }) => {
    if (query.sql.includes('"api_key"')) queries.push(query.sql);
  };
  knex.on("query", listener);
  try {
    return { result: await work(), queries };
  } finally {
    knex.removeListener("query", listener);
  }
}

describe("read replica", function () {
  this.timeout(30_000);
  let cluster: ReplicaCluster | undefined;
  let proxy: TcpProxy;
  /** The services' way to the replica, through the proxy. */
  let replica: Knex;
  let schema = "";
  let opened: ApiKeyService[] = [];

  before(async function () {
    this.timeout(60_000);
    cluster = await ReplicaCluster.start(this);
    proxy = new TcpProxy({ host: "127.0.0.1", port: cluster!.replicaPort });
    replica = knexFactory({
      client: "pg",
      connection: cluster!.url(await proxy.listen()),
      acquireConnectionTimeout: 2_000,
      log: { warn: () => {}, error: () => {} },
    });
  });
  after(async () => {
    await replica?.destroy();
    await proxy?.close();
    await cluster?.stop();
  });

  beforeEach(async () => {
    schema = `t_${randomBytes(6).toString("hex")}`;
    await runMigrations(cluster!.primary, { schema });
    await cluster!.caughtUp();
  });
  afterEach(async () => {
    proxy.release();
    proxy.restore();
    await Promise.all(opened.map((service) => service.close()));
    opened = [];
    await cluster!.resumeReplay();
    await cluster!.primary.raw("drop schema ?? cascade", [schema]);
  });

  /** A service on the cluster: the primary as `database`, the replica (through the proxy) as `readDatabase`. */
  async function open(options: ApiKeysOptions = {}): Promise<ApiKeyService> {
    const service = await initialize({
      database: cluster!.primary,
      readDatabase: replica,
      readDatabaseTimeout: TIMEOUT_MS,
      schema,
      runMigrations: false,
      logger: captureLogger().logger,
      ...options,
    });
    opened.push(service);
    return service;
  }

  /** Lists keys on `service` until the replica answers: a service reads the primary until it knows how far the replica must be. */
  async function replicaInUse(service: ApiKeyService): Promise<void> {
    await within(2_000, async () => (await keyQueries(replica, () => service.listApiKeys())).queries.length > 0, "lists on the replica");
  }

  /** As replicaInUse, for the lookups of a service with no memory tier (each one reaches the store). */
  async function replicaServesLookups(service: ApiKeyService, token: string): Promise<void> {
    await within(2_000, async () => (await keyQueries(replica, () => service.authenticate(token))).queries.length > 0, "lookups on the replica");
  }

  it("sends lookups that miss the caches, lists and retrieves to the replica once it has caught up, and writes to the primary", async () => {
    const a = await open();
    const [key, other] = await a.createApiKeys([
      { title: "k", type: "secret", created_by: "u" },
      { title: "other", type: "secret", created_by: "u" },
    ]);
    await cluster!.caughtUp();
    // No memory tier: every lookup misses the caches.
    const b = await open({ cache: { memory: false } });
    await replicaServesLookups(b, other!.token);

    const onPrimary = keyQueries(cluster!.primary, () => keyQueries(replica, () => b.authenticate(key!.token)));
    const { result: { result: found, queries: fromReplica }, queries: fromPrimary } = await onPrimary;
    assert.equal(found && found.id, key!.id);
    assert.equal(fromReplica.length, 1, "the lookup went to the replica");
    assert.deepEqual(fromPrimary, [], "and not to the primary");

    const retrieved = await keyQueries(replica, () => b.retrieveApiKey(key!.id));
    assert.deepEqual([retrieved.result.id, retrieved.queries.length], [key!.id, 1]);

    const revoked = await keyQueries(replica, () => b.revoke(key!.id, { revoked_by: "u" }));
    assert.deepEqual(revoked.queries, [], "a change reads and writes the primary only");
  });

  it("authenticates a key created a moment ago on another instance at once, however far the replica lags", async () => {
    const [a, b] = [await open(), await open()];
    await Promise.all([replicaInUse(a), replicaInUse(b)]);
    await cluster!.pauseReplay();
    const [secret, publishable] = await a.createApiKeys([
      { title: "s", type: "secret", created_by: "u" },
      { title: "p", type: "publishable", created_by: "u" },
    ]);
    const stale = await cluster!.replica(`${schema}.api_key`).whereIn("id", [secret!.id, publishable!.id]);
    assert.deepEqual(stale, [], "the replica does not have them");

    assert.equal((await b.authenticate(secret!.token) || undefined)?.id, secret!.id);
    assert.equal((await b.authenticatePublishable(publishable!.token) || undefined)?.api_key.id, publishable!.id);
    assert.equal((await b.retrieveApiKey(secret!.id)).id, secret!.id, "retrieve asks the primary after the replica's not found");
    assert.deepEqual((await a.listApiKeys()).map((key) => key.id).sort(), [secret!.id, publishable!.id].sort(), "the creator lists its own writes");
  });

  it("reads everything from the primary, saying so once, when `readDatabase` is no streaming replica", async () => {
    const { lines, logger } = captureLogger();
    const b = await open({ readDatabase: cluster!.primary, logger });
    const key = await b.createApiKeys({ title: "k", type: "secret", created_by: "u" });
    for (let i = 0; i < 5; i++) {
      assert.equal((await b.listApiKeys())[0]?.id, key.id);
      await sleep(60);
    }
    assert.deepEqual(lines, [
      "express-api-keys: `readDatabase` is not a PostgreSQL streaming replica (pg_last_wal_replay_lsn() is null); every read goes to `database`",
    ]);
  });

  it("refuses `readDatabase` beside a database that is not a PostgreSQL server, or one that is not pg", async () => {
    await assert.rejects(initialize({ database: "sqlite://memory", readDatabase: cluster!.url(cluster!.replicaPort) }), {
      name: "TypeError",
      message: /^express-api-keys: `readDatabase` needs `database` on PostgreSQL/,
    });
    const sqlite = knexFactory({ client: "better-sqlite3", connection: { filename: ":memory:" }, useNullAsDefault: true });
    try {
      await assert.rejects(initialize({ database: cluster!.primary, schema, runMigrations: false, readDatabase: sqlite }), {
        name: "TypeError",
        message: /^express-api-keys: `readDatabase` must be a pg Knex instance or a postgres:\/\/ URL/,
      });
    } finally {
      await sqlite.destroy();
    }
  });

  for (const carrier of ["Redis", "LISTEN/NOTIFY"] as const) {
    it(`refuses a revoked key on every instance within ${BOUND_MS} ms while the replica lags, and never caches it again (${carrier})`, async function () {
      this.timeout(20_000);
      const redis = carrier === "Redis" ? await connectRedis(this) : undefined;
      const prefix = testPrefix();
      // A short in-process ttl, so that lookups keep going past the memory tier while the replica lags.
      const options: ApiKeysOptions = { cache: { ttl: 50, redisPrefix: prefix }, ...(redis ? { redis: REDIS_URL } : { redis: false }) };
      try {
        const [a, b, c] = [await open(options), await open(options), await open(options)];
        const key = await a.createApiKeys({ title: "k", type: "secret", created_by: "u" });
        await cluster!.caughtUp();
        for (const instance of [b, c]) {
          await replicaInUse(instance);
          assert.ok(await instance.authenticate(key.token), "warm");
        }
        await cluster!.pauseReplay();
        await a.revoke(key.id, { revoked_by: "u" });
        assert.equal(await a.authenticate(key.token), false);
        for (const instance of [b, c]) await within(BOUND_MS, async () => (await instance.authenticate(key.token)) === false, "refused");

        // Many in-process ttls later, with lookups going past the memory tier all along.
        const until = performance.now() + 600;
        while (performance.now() < until) {
          for (const instance of [a, b, c]) assert.equal(await instance.authenticate(key.token), false, "accepted again from the lagging replica");
          await sleep(5);
        }
        const late = await open(options);
        assert.equal(await late.authenticate(key.token), false, "an instance started after the revocation");
        const [row] = (await cluster!.replica(`${schema}.api_key`).where({ id: key.id })) as { revoked_at: Date | null }[];
        assert.equal(row!.revoked_at, null, "the replica still lags: it has the key as active");
      } finally {
        if (redis) await deletePrefix(redis, prefix);
        redis?.disconnect();
      }
    });
  }

  it(`costs a replica that is slow or down its ${TIMEOUT_MS} ms timeout, then the primary serves, and the replica is used again once it is back`, async function () {
    this.timeout(20_000);
    const { lines, logger } = captureLogger();
    const [a, b] = [await open(), await open({ logger, cache: { memory: false } })];
    const [slow, down, after] = await a.createApiKeys(
      ["slow", "down", "after"].map((title) => ({ title, type: "secret" as const, created_by: "u" })),
    );
    await cluster!.caughtUp();
    await replicaServesLookups(b, slow!.token);

    void proxy.hold();
    let start = performance.now();
    assert.equal((await b.authenticate(slow!.token) || undefined)?.id, slow!.id);
    const slowTook = performance.now() - start;
    assert.ok(slowTook >= TIMEOUT_MS - 5 && slowTook < TIMEOUT_MS + 150, `answered after the timeout (${slowTook.toFixed(0)} ms)`);
    start = performance.now();
    assert.equal(((await b.listApiKeys({ id: down!.id }))[0])?.id, down!.id);
    assert.ok(performance.now() - start < 100, "the next read does not wait for the replica again");

    proxy.release();
    proxy.cut();
    await sleep(1_100); // past the pause after a failure: the next read tries the replica again
    start = performance.now();
    const tried = proxy.connections;
    assert.equal((await b.listApiKeys({ id: down!.id }))[0]?.id, down!.id);
    assert.ok(proxy.connections > tried, "the replica was tried");
    assert.ok(performance.now() - start < TIMEOUT_MS + 150, "a replica that refuses connections costs at most its timeout");

    proxy.restore();
    await sleep(1_100);
    await replicaServesLookups(b, after!.token);
    assert.deepEqual(
      lines.filter((line) => /read replica/.test(line)).map((line) => line.replace(/ \(after \d+ failures?\)$/, "")),
      [
        `express-api-keys: the read replica failed or did not answer within ${TIMEOUT_MS} ms; reading from \`database\` and trying the replica again every second`,
        "express-api-keys: the read replica answers again",
      ],
    );
  });
});

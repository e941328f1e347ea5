import assert from "node:assert/strict";
import { DEFAULT_EMBEDDED_DIRECTORY, resolveOptions } from "../../setup/options";
import { MemoryApiKeyStore } from "../../testing/memory-store";

describe("initialize options", () => {
  it("prefers the option, then DATABASE_URL, then the embedded directory", () => {
    const env = { DATABASE_URL: "postgres://env/db" };
    assert.equal(resolveOptions({ database: "pglite://memory" }, env).database, "pglite://memory");
    assert.equal(resolveOptions({}, env).database, "postgres://env/db");
    assert.equal(resolveOptions({}, {}).database, `pglite://${DEFAULT_EMBEDDED_DIRECTORY}`);
  });

  it("treats undefined, {} and a null-prototype object alike", () => {
    const strip = (o: ReturnType<typeof resolveOptions>) => ({ ...o, now: typeof o.now });
    const base = strip(resolveOptions(undefined, {}));
    assert.deepEqual(strip(resolveOptions({}, {})), base);
    assert.deepEqual(strip(resolveOptions(Object.create(null) as object, {})), base);
    assert.equal(base.runMigrations, true);
    assert.equal(base.lastUsedFlushInterval, 10_000);
    assert.equal(resolveOptions(undefined, {}).logger, console);
  });

  it("keeps a deliberate false instead of replacing it with the default", () => {
    assert.equal(resolveOptions({ runMigrations: false }, {}).runMigrations, false);
    assert.equal(resolveOptions({ cache: false }, {}).cache, false);
    const cache = resolveOptions({ cache: { staleIfError: 0 } }, {}).cache;
    assert.equal(cache === false ? "off" : cache.staleIfError, 0);
  });

  it("takes Redis from the option, then REDIS_URL; false turns it off", () => {
    const env = { REDIS_URL: "redis://env:6379" };
    assert.equal(resolveOptions({ redis: "redis://opt:6379" }, env).redis, "redis://opt:6379");
    assert.equal(resolveOptions({}, env).redis, "redis://env:6379");
    assert.equal(resolveOptions({ redis: false }, env).redis, undefined);
    assert.equal(resolveOptions({}, {}).redis, undefined);
  });

  it("takes Cluster nodes or Sentinels from the option, then REDIS_CLUSTER_NODES or REDIS_SENTINELS with REDIS_SENTINEL_NAME", () => {
    const nodes = [
      { host: "10.0.0.1", port: 7000 },
      { host: "redis-2.internal", port: 7001 },
      { host: "::1", port: 7002 },
    ];
    const list = "10.0.0.1:7000, redis-2.internal:7001,[::1]:7002";
    assert.deepEqual(resolveOptions({}, { REDIS_CLUSTER_NODES: list }).redis, { cluster: nodes });
    assert.deepEqual(resolveOptions({ redis: { clusterNodes: list.split(",") } }, {}).redis, { cluster: nodes });
    assert.deepEqual(resolveOptions({}, { REDIS_SENTINELS: list, REDIS_SENTINEL_NAME: "main" }).redis, { sentinels: nodes, name: "main" });
    assert.deepEqual(resolveOptions({ redis: { sentinels: ["s:26379"], sentinelName: "opt" } }, { REDIS_SENTINEL_NAME: "env" }).redis, {
      sentinels: [{ host: "s", port: 26379 }],
      name: "opt",
    });
    assert.deepEqual(resolveOptions({ redis: { sentinels: ["s:26379"], sentinelName: undefined } }, { REDIS_SENTINEL_NAME: "env" }).redis, {
      sentinels: [{ host: "s", port: 26379 }],
      name: "env",
    });
    // The option wins, and the environment it overrides is not read, even when it is ambiguous.
    const ambiguous = { REDIS_URL: "redis://env:6379", REDIS_CLUSTER_NODES: "bad" };
    assert.equal(resolveOptions({ redis: "redis://opt:6379" }, ambiguous).redis, "redis://opt:6379");
    assert.equal(resolveOptions({ redis: false }, ambiguous).redis, undefined);
  });

  it("tells an ioredis Cluster from a Redis client, and keeps a Cluster's keys of one token in one slot", () => {
    // As ioredis makes them: both have `duplicate` and a `cluster` command; a Cluster also has `nodes`.
    const client = (isCluster: boolean) => ({ isCluster, duplicate() {}, cluster() {}, ...(isCluster ? { nodes() {} } : {}) }) as never;
    for (const isCluster of [false, true]) {
      const redis = client(isCluster);
      assert.equal(resolveOptions({ redis }, {}).redis, redis);
      assert.equal(resolveOptions({ redis, cache: { redisPrefix: "{apikey}:" } }, {}).redis, redis);
    }
    // A stray brace splits a token's keys over two slots: refused on a Cluster, harmless on one Redis.
    assert.ok(resolveOptions({ redis: client(false), cache: { redisPrefix: "a{b" } }, {}).redis);
    for (const redis of [client(true), { clusterNodes: ["h:1"] }]) {
      for (const redisPrefix of ["a{b", "a{}b:"]) {
        assert.throws(() => resolveOptions({ redis, cache: { redisPrefix } }, {}), /`cache.redisPrefix`/);
      }
    }
    assert.throws(() => resolveOptions({}, { REDIS_CLUSTER_NODES: "h:1", API_KEYS_REDIS_PREFIX: "x{" }), /`cache.redisPrefix`/);
  });

  it("takes the read replica from the option, then DATABASE_READ_URL beside the database store only; false turns it off", () => {
    const env = { DATABASE_READ_URL: "postgres://replica/db" };
    assert.equal(resolveOptions({ readDatabase: "postgresql://opt/db" }, env).readDatabase, "postgresql://opt/db");
    assert.equal(resolveOptions({}, env).readDatabase, "postgres://replica/db");
    assert.equal(resolveOptions({ readDatabase: false }, env).readDatabase, undefined);
    assert.equal(resolveOptions({}, {}).readDatabase, undefined);
    const store = new MemoryApiKeyStore();
    assert.equal(resolveOptions({ store }, env).readDatabase, undefined, "a custom store reads where it likes");
    assert.equal(resolveOptions({}, {}).readDatabaseTimeout, 250);
    assert.equal(resolveOptions({ readDatabaseTimeout: 50 }, {}).readDatabaseTimeout, 50);
  });

  it("takes the pepper, the schema and the Redis prefix from the option, then the environment, then the default", () => {
    const env = { API_KEYS_PEPPER: "env-pepper", API_KEYS_SCHEMA: "env_schema", API_KEYS_REDIS_PREFIX: "env:" };
    const prefix = (resolved: ReturnType<typeof resolveOptions>) => (resolved.cache === false ? "off" : resolved.cache.redisPrefix);

    const given = resolveOptions({ pepper: "opt-pepper", schema: "opt_schema", cache: { redisPrefix: "opt:" } }, env);
    assert.deepEqual([given.pepper, given.schema, prefix(given)], ["opt-pepper", "opt_schema", "opt:"]);
    const fromEnv = resolveOptions({ cache: { ttl: 100 } }, env);
    assert.deepEqual([fromEnv.pepper, fromEnv.schema, prefix(fromEnv)], ["env-pepper", "env_schema", "env:"]);
    assert.equal(prefix(resolveOptions({}, env)), "env:");
    const defaults = resolveOptions({}, {});
    assert.deepEqual([defaults.pepper, defaults.schema, prefix(defaults)], [undefined, undefined, "apikey:"]);
    // A deliberate empty prefix is an explicit option, not a missing one.
    assert.equal(prefix(resolveOptions({ cache: { redisPrefix: "" } }, env)), "");
    assert.equal(resolveOptions({ cache: false }, env).cache, false);
  });

  it("fills cache defaults in one place", () => {
    assert.deepEqual(resolveOptions({ cache: { ttl: 100, max: undefined } }, {}).cache, {
      memory: true,
      max: 10_000,
      maxSize: 16 * 1024 * 1024,
      ttl: 100,
      staleIfError: 60_000,
      negativeMax: 10_000,
      negativeTtl: 1_000,
      redisTtl: 60_000,
      redisPrefix: "apikey:",
      redisTimeout: 250,
    });
  });

  it("throws a TypeError naming the option for unknown or malformed options", () => {
    const cases: [unknown, RegExp][] = [
      [{ databse: "x" }, /unknown option `databse`/],
      [{ schema: "bad-name;" }, /`schema`/],
      [{ runMigrations: "yes" }, /`runMigrations`/],
      [{ pepper: 5 }, /`pepper`/],
      [{ pepper: "" }, /`pepper` must not be empty/],
      [{ now: Date.now() }, /`now`/],
      [{ lastUsedFlushInterval: 0 }, /`lastUsedFlushInterval`/],
      [{ lastUsedFlushInterval: Infinity }, /`lastUsedFlushInterval`/],
      [{ lastUsedFlushInterval: "10s" }, /`lastUsedFlushInterval`/],
      [{ logger: { warn() {} } }, /`logger`/],
      [{ redis: 6379 }, /`redis`/],
      [{ redis: { duplicate: 1 } }, /`redis`/],
      [{ redis: { clusterNodes: [] } }, /`redis.clusterNodes` must list host:port/],
      [{ redis: { clusterNodes: "h:1" } }, /`redis.clusterNodes`/],
      [{ redis: { clusterNodes: ["h:0"] } }, /`redis.clusterNodes`/],
      [{ redis: { clusterNodes: ["h:1"], sentinels: ["h:2"] } }, /`redis` must be/],
      [{ redis: { sentinels: ["h"], sentinelName: "m" } }, /`redis.sentinels`/],
      [{ redis: { sentinels: ["h:1"] } }, /master's name/],
      [{ redis: { sentinels: ["h:1"], sentinelName: "" } }, /master's name/],
      [{ cache: "lru" }, /`cache`/],
      [{ cache: { ttl: 0 } }, /`cache.ttl`/],
      [{ cache: { tll: 5 } }, /unknown option `cache.tll`/],
      [{ cache: { staleIfError: -1 } }, /`cache.staleIfError`/],
      [{ cache: { negativeMax: 0 } }, /`cache.negativeMax`/],
      [{ cache: { negativeTtl: Infinity } }, /`cache.negativeTtl`/],
      [{ cache: { memory: "yes" } }, /`cache.memory`/],
      [{ readDatabase: "mysql://replica/db" }, /`readDatabase` must be a pg Knex instance, a postgres:\/\/ URL/],
      [{ readDatabase: 5 }, /`readDatabase`/],
      [{ readDatabase: "postgres://replica/db", store: new MemoryApiKeyStore() }, /`readDatabase` belongs to the database store/],
      [{ readDatabaseTimeout: 0 }, /`readDatabaseTimeout`/],
      [5, /takes an object/],
    ];
    const envCases: [NodeJS.ProcessEnv, RegExp][] = [
      [{ API_KEYS_SCHEMA: "bad-name;" }, /`API_KEYS_SCHEMA` must be a plain SQL identifier/],
      [{ API_KEYS_SCHEMA: "" }, /`API_KEYS_SCHEMA`/],
      [{ API_KEYS_PEPPER: "" }, /`API_KEYS_PEPPER` is set but empty/],
      [{ REDIS_URL: "redis://h:1", REDIS_CLUSTER_NODES: "h:1" }, /set one of `REDIS_URL`, `REDIS_CLUSTER_NODES`, `REDIS_SENTINELS`/],
      [{ REDIS_CLUSTER_NODES: "h:1,", REDIS_SENTINELS: "h:2" }, /not `REDIS_CLUSTER_NODES` and `REDIS_SENTINELS`/],
      [{ REDIS_CLUSTER_NODES: "h:1,h" }, /`REDIS_CLUSTER_NODES` must list host:port/],
      [{ REDIS_SENTINELS: "h:1" }, /`REDIS_SENTINEL_NAME`/],
      [{ REDIS_SENTINELS: "h:99999", REDIS_SENTINEL_NAME: "m" }, /`REDIS_SENTINELS`/],
      [{ DATABASE_READ_URL: "sqlite://replica.db" }, /`DATABASE_READ_URL` must be a postgres:\/\/ URL/],
    ];
    for (const [env, message] of envCases) {
      assert.throws(
        () => resolveOptions({}, env),
        (error: unknown) => error instanceof TypeError && /^express-api-keys: /.test(error.message) && message.test(error.message),
      );
    }
    // An explicit option wins, so a bad variable it overrides is never read.
    assert.equal(resolveOptions({ schema: "ok" }, { API_KEYS_SCHEMA: "bad-name;" }).schema, "ok");
    for (const [options, message] of cases) {
      assert.throws(
        () => resolveOptions(options as never, {}),
        (error: unknown) => error instanceof TypeError && /^express-api-keys: /.test(error.message) && message.test(error.message),
      );
    }
  });
});

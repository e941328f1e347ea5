import assert from "node:assert/strict";
import { DEFAULT_EMBEDDED_DIRECTORY, resolveOptions } from "../../lib/options";

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
      [{ cache: "lru" }, /`cache`/],
      [{ cache: { ttl: 0 } }, /`cache.ttl`/],
      [{ cache: { tll: 5 } }, /unknown option `cache.tll`/],
      [{ cache: { staleIfError: -1 } }, /`cache.staleIfError`/],
      [{ cache: { negativeMax: 0 } }, /`cache.negativeMax`/],
      [{ cache: { negativeTtl: Infinity } }, /`cache.negativeTtl`/],
      [{ cache: { memory: "yes" } }, /`cache.memory`/],
      [5, /takes an object/],
    ];
    for (const [options, message] of cases) {
      assert.throws(
        () => resolveOptions(options as never, {}),
        (error: unknown) => error instanceof TypeError && /^express-api-keys: /.test(error.message) && message.test(error.message),
      );
    }
  });
});

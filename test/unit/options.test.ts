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

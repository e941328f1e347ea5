// Opening MySQL/MariaDB and SQLite from their URLs, and what only some dialects need: boots
// racing on a fresh database, time zones, foreign keys left off, configuration errors.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import knexFactory, { type Knex } from "knex";
import { initialize } from "../../setup/initialize";
import type { ApiKeyService } from "../../lib/service";
import type { ApiKeyDTO } from "../../lib/types";
import { assertDriverInstalled } from "../../store/connect";
import { TestClock } from "../helpers/backends";
import { MARIADB_URL, POSTGRES_URL, connectMariadb, connectPostgres } from "../helpers/services";

const execFileAsync = promisify(execFile);

function freshName(): string {
  return `t_boot_${randomBytes(6).toString("hex")}`;
}

/** Several services opening the same fresh database from its URL at once, each with its own pool. */
async function bootTogether(database: string, schema: string | undefined, count = 3): Promise<void> {
  const services = await Promise.all(Array.from({ length: count }, () => initialize({ database, schema, redis: false, cache: false })));
  try {
    const keys = await Promise.all(services.map((service, i) => service.createApiKeys({ title: `k${i}`, type: "secret", created_by: "u" })));
    for (const [i, key] of keys.entries()) assert.ok(await services[(i + 1) % count]!.authenticate(key.token));
  } finally {
    await Promise.all(services.map((service) => service.close()));
  }
}

describe("MySQL/MariaDB from a mysql:// URL", () => {
  let admin: Knex | undefined;
  before(async function () {
    admin = await connectMariadb(this);
  });
  after(async () => {
    await admin?.destroy();
  });

  it("lets several services boot at once on a fresh database", async () => {
    const database = freshName();
    try {
      await bootTogether(MARIADB_URL, database);
      const [{ name }] = (await admin!.select({ name: "name" }).from(`${database}.api_key_migrations`)) as [{ name: string }];
      assert.equal(name, "20261123000000_create_api_key");
    } finally {
      await admin!.raw("drop database if exists ??", [database]);
    }
  });

  it("takes mariadb:// too", async () => {
    const database = freshName();
    try {
      const service = await initialize({ database: MARIADB_URL.replace(/^mysql:/, "mariadb:"), schema: database, redis: false });
      assert.deepEqual(await service.listApiKeys(), []);
      await service.close();
    } finally {
      await admin!.raw("drop database if exists ??", [database]);
    }
  });

  it("keeps instants exact whatever the process's time zone, as UTC", async () => {
    const database = freshName();
    const zone = process.env.TZ;
    let writer: ApiKeyService | undefined;
    let reader: ApiKeyService | undefined;
    try {
      const clock = new TestClock();
      clock.advance(1000 - (clock.now().getTime() % 1000) + 789);
      process.env.TZ = "Asia/Tokyo";
      writer = await initialize({ database: MARIADB_URL, schema: database, redis: false, cache: false, now: clock.now });
      const key = await writer.createApiKeys({ title: "k", type: "secret", created_by: "u" });
      await writer.revoke(key.id, { revoked_by: "u", revoke_in: 3600 });
      await writer.close();
      // Another process, in another zone, reads the same rows.
      process.env.TZ = "America/Los_Angeles";
      reader = await initialize({ database: MARIADB_URL, schema: database, redis: false, cache: false });
      const read = await reader.retrieveApiKey(key.id);
      assert.equal(read.created_at.getTime(), clock.now().getTime());
      assert.equal(read.revoked_at!.getTime(), clock.now().getTime() + 3_600_000);
      assert.deepEqual((await reader.listApiKeys({ created_at: clock.now() })).map((k: ApiKeyDTO) => k.id), [key.id]);
      // Stored as UTC wall-clock time, so SQL that reads the column sees the real instant too.
      const [{ stored }] = (await admin!.select({ stored: admin!.raw("date_format(created_at, '%Y-%m-%dT%H:%i:%s.%fZ')") }).from(`${database}.api_key`)) as [
        { stored: string },
      ];
      assert.equal(stored.replace(/(\.\d{3})\d{3}Z$/, "$1Z"), clock.now().toISOString());
    } finally {
      if (zone === undefined) delete process.env.TZ;
      else process.env.TZ = zone;
      await reader?.close();
      await writer?.close();
      await admin!.raw("drop database if exists ??", [database]);
    }
  });
});

describe("PostgreSQL from a postgres:// URL", () => {
  let admin: Knex | undefined;
  before(async function () {
    admin = await connectPostgres(this);
  });
  after(async () => {
    await admin?.destroy();
  });

  it("lets several services boot at once on a fresh schema", async () => {
    const schema = freshName();
    try {
      await bootTogether(POSTGRES_URL, schema);
    } finally {
      await admin!.raw("drop schema if exists ?? cascade", [schema]);
    }
  });
});

describe("SQLite from a sqlite:// URL", () => {
  let directory = "";
  beforeEach(() => {
    directory = mkdtempSync(path.join(tmpdir(), "express-api-keys-sqlite-"));
  });
  afterEach(() => {
    rmSync(directory, { recursive: true, force: true });
  });

  it("lets several processes boot at once on a fresh file", async function () {
    this.timeout(60_000);
    // Processes, not Knex instances in this one: better-sqlite3 waits for a lock synchronously,
    // so a second connection in the process that holds the lock would wait for itself.
    const database = `sqlite://${path.join(directory, "keys.db")}`;
    const script = `
      const { initialize } = require("./setup/initialize.ts");
      initialize({ database: process.argv[1], redis: false }).then(async (service) => {
        const key = await service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
        await service.close();
        console.log(key.token);
      }, (error) => { console.log(String(error)); process.exitCode = 1; });
    `;
    const cwd = path.resolve(__dirname, "../..");
    const runs = await Promise.allSettled(
      Array.from({ length: 4 }, () => execFileAsync(process.execPath, ["--import", "tsx", "-e", script, database], { cwd })),
    );
    const tokens = runs.map((run) => (run.status === "fulfilled" ? run.value.stdout.trim() : String(run.reason)));
    for (const token of tokens) assert.match(token, /^sk_/);
    const service = await initialize({ database, redis: false });
    try {
      for (const token of tokens) assert.ok(await service.authenticate(token));
    } finally {
      await service.close();
    }
  });

  it("keeps keys in the file across a restart, timestamps to the millisecond", async () => {
    const database = `sqlite://${path.join(directory, "nested", "keys.db")}`;
    const clock = new TestClock();
    clock.advance(1000 - (clock.now().getTime() % 1000) + 7);
    const first = await initialize({ database, redis: false, now: clock.now });
    const key = await first.createApiKeys({ title: "k", type: "publishable", created_by: "u" });
    await first.updateLinks(key.id, { add: ["sc_1"] });
    await first.close();
    const second = await initialize({ database, redis: false });
    try {
      const read = await second.retrieveApiKey(key.id);
      assert.ok(read.created_at instanceof Date);
      assert.equal(read.created_at.getTime(), clock.now().getTime());
      assert.deepEqual(await second.authenticatePublishable(key.token).then((match) => match && match.sales_channel_ids), ["sc_1"]);
    } finally {
      await second.close();
    }
  });

  it("refuses a `schema`, which SQLite does not have, as a TypeError", async () => {
    for (const runMigrations of [true, false]) {
      await assert.rejects(initialize({ database: "sqlite://memory", schema: "auth", runMigrations, redis: false }), {
        name: "TypeError",
        message: "express-api-keys: `schema` is not supported on sqlite, which has no schemas; use a separate database file instead.",
      });
    }
    await assert.rejects(initialize({ database: "sqlite://", redis: false }), { name: "TypeError", message: /sqlite:\/\/ needs a file path/ });
  });

  it("deletes a key's links on an app's own Knex whose connections turn foreign keys off", async () => {
    const knex = knexFactory({
      client: "better-sqlite3",
      connection: { filename: ":memory:" },
      useNullAsDefault: true,
      pool: {
        afterCreate(connection: { pragma(source: string): unknown }, done: (error: Error | null, connection: unknown) => void) {
          connection.pragma("foreign_keys = OFF");
          done(null, connection);
        },
      },
    });
    try {
      const service = await initialize({ database: knex, redis: false });
      const key = await service.createApiKeys({ title: "p", type: "publishable", created_by: "u" });
      await service.updateLinks(key.id, { add: ["sc_1", "sc_2"] });
      await service.revoke(key.id, { revoked_by: "u" });
      await service.deleteApiKeys(key.id);
      await service.close();
      assert.deepEqual(await knex("api_key_link").select("*"), []);
    } finally {
      await knex.destroy();
    }
  });
});

describe("database configuration errors", () => {
  it("refuses a Knex of a client the store does not run on, as a TypeError", async () => {
    const knex = knexFactory({ client: "mssql" });
    await assert.rejects(initialize({ database: knex, redis: false }), {
      name: "TypeError",
      message: "express-api-keys: `database` is a Knex instance of client mssql; the supported clients are pg, PGlite, mysql2 and better-sqlite3.",
    });
  });

  it("names the package to install when a driver is missing", async () => {
    assert.throws(() => assertDriverInstalled("mysql2", () => {
      throw Object.assign(new Error("Cannot find module 'mysql2'"), { code: "MODULE_NOT_FOUND" });
    }), { name: "TypeError", message: "express-api-keys: `database` needs the mysql2 package, which is not installed; run `npm install mysql2`." });
    // The same from a process where the optional drivers cannot be found.
    const script = `
      const Module = require("node:module");
      const resolve = Module._resolveFilename;
      Module._resolveFilename = function (request, ...rest) {
        if (request === "mysql2" || request === "better-sqlite3") throw Object.assign(new Error("Cannot find module " + request), { code: "MODULE_NOT_FOUND" });
        return resolve.call(this, request, ...rest);
      };
      const { openDatabase } = require("./store/connect.ts");
      (async () => {
        for (const url of ["mysql://root@127.0.0.1:1/x", "sqlite://memory"]) {
          await openDatabase(url).then(() => console.log("opened"), (error) => console.log(error.name + ": " + error.message));
        }
      })();
    `;
    const { stdout } = await execFileAsync(process.execPath, ["--import", "tsx", "-e", script], { cwd: path.resolve(__dirname, "../..") });
    assert.deepEqual(stdout.trim().split("\n"), [
      "TypeError: express-api-keys: `database` needs the mysql2 package, which is not installed; run `npm install mysql2`.",
      "TypeError: express-api-keys: `database` needs the better-sqlite3 package, which is not installed; run `npm install better-sqlite3`.",
    ]);
  });

  it("lists every scheme it takes when given another", async () => {
    await assert.rejects(initialize({ database: "mongodb://user:secret@127.0.0.1/x", redis: false }), {
      name: "TypeError",
      message: "express-api-keys: `database` must start with postgres://, postgresql://, pglite://, mysql://, mariadb:// or sqlite://; got scheme mongodb:",
    });
  });
});

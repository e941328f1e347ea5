import assert from "node:assert/strict";
import request from "supertest";
import { UNKNOWN_ERROR_MESSAGE } from "../../lib/errors";
import { initialize } from "../../setup/initialize";
import { generateToken } from "../../lib/tokens";
import { rejectsWith } from "../helpers/assertions";
import { forEachBackend } from "../helpers/backends";
import { EXPRESS_VERSIONS, FRAMEWORKS, adminRouterOn, createAdminApp, createApp, expressApp } from "../helpers/create-app";
import { unreachableDatabase } from "../helpers/services";

/** A logger that keeps what it is given, so tests can count reports and look at their causes. */
function captureLogger() {
  const errors: [string, unknown][] = [];
  const warnings: string[] = [];
  return {
    errors,
    warnings,
    logger: {
      warn: (message: string) => void warnings.push(message),
      error: (message: string, cause?: unknown) => void errors.push([message, cause]),
    },
  };
}

const UNKNOWN = { type: "unknown_error", message: UNKNOWN_ERROR_MESSAGE };

forEachBackend("unexpected failures", (db) => {
  it("a table renamed away is a 500 unknown_error with its cause logged once, not a 503 outage", async () => {
    const { errors, logger } = captureLogger();
    const service = await db.open({ logger });
    const token = await db.unissuedToken("secret", { service });
    await db.knex.raw("alter table ??.api_key rename to api_key_gone", [db.schema!]);

    await rejectsWith(service.listApiKeys(), "unknown_error", UNKNOWN_ERROR_MESSAGE);
    assert.equal(errors.length, 1);
    assert.equal((errors[0]![1] as { code?: string }).code, "42P01", "the real error reaches the log");

    for (const framework of FRAMEWORKS) {
      const res = await request(createApp(framework, { service })).get("/admin").set("Authorization", `Basic ${token}`);
      assert.deepEqual([res.status, res.body], [500, UNKNOWN], framework);
      assert.match(res.headers["content-type"] ?? "", /^application\/json/, framework);
    }
    assert.equal(errors.length, 1 + FRAMEWORKS.length, "one report per failed request, no more");
    for (const [message, cause] of errors) {
      assert.match(message, /^express-api-keys: /);
      assert.equal((cause as { code?: string }).code, "42P01");
    }
  });

  it("never serves a stale cached key over a failure that is no outage", async () => {
    const { logger, warnings } = captureLogger();
    const service = await db.open({ logger, cache: { ttl: 1000, staleIfError: 60_000 } });
    const key = await service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
    assert.ok(await service.authenticate(key.token));
    db.clock.advance(1500);
    await db.knex.raw("alter table ??.api_key rename to api_key_gone", [db.schema!]);
    await rejectsWith(service.authenticate(key.token), "unknown_error", UNKNOWN_ERROR_MESSAGE);
    assert.deepEqual(warnings, [], "a missing table is not reported as the store being unavailable");
  });

  it("logs the cause of an unexpected failure without a secret token the caller sent", async () => {
    const { errors, logger } = captureLogger();
    const service = await db.open({ logger });
    // A trigger whose error quotes the value it refused, as database errors often do.
    await db.knex.raw(
      `create function ??.refuse_title() returns trigger language plpgsql as $$
       begin raise exception 'title refused: %', new.title; end $$`,
      [db.schema!],
    );
    await db.knex.raw("create trigger refuse_title before insert on ??.api_key for each row execute function ??.refuse_title()", [db.schema!, db.schema!]);
    const token = generateToken("secret");
    await rejectsWith(service.createApiKeys({ title: `pasted x${token}`, type: "secret", created_by: "u" }), "unknown_error");
    const cause = errors[0]![1] as Error;
    assert.match(cause.message, /title refused: pasted xsk_\w{3}\*\*\*\w{3}$/);
    for (const text of [cause.message, cause.stack ?? ""]) assert.equal(text.includes(token.slice(3, 20)), false, text);
  });

  it("an unreachable database is a 503 unavailable, and no bug is logged", async () => {
    const { errors, logger } = captureLogger();
    const service = await initialize({ database: unreachableDatabase(), runMigrations: false, logger });
    try {
      await rejectsWith(service.listApiKeys(), "unavailable", "The API key store is unavailable");
      const res = await request(createApp("express5", { service })).get("/admin").set("Authorization", `Basic ${generateToken("secret")}`);
      assert.deepEqual([res.status, res.body], [503, { type: "unavailable", message: "The API key store is unavailable" }]);
      assert.deepEqual(errors, []);
    } finally {
      await service.close();
    }
  });

  it("the admin router answers a missing table with a 500 and an unreachable database with a 503, as JSON", async () => {
    const { errors, logger } = captureLogger();
    const service = await db.open({ logger });
    const [admin, publishable] = await service.createApiKeys([
      { title: "admin", type: "secret", created_by: "u" },
      { title: "p", type: "publishable", created_by: "u" },
    ]);
    await db.knex.raw("alter table ??.api_key_link rename to api_key_link_gone", [db.schema!]);
    const down = await initialize({ database: unreachableDatabase(), runMigrations: false, logger });
    try {
      for (const version of EXPRESS_VERSIONS) {
        const read = await request(createAdminApp(version, service)).get(`/admin/api-keys/${publishable!.id}`).set("Authorization", `Basic ${admin!.token}`);
        assert.deepEqual([read.status, read.body], [500, UNKNOWN], version);
        const outage = expressApp(version);
        outage.use("/keys", adminRouterOn(version, { service: down, actor: () => "admin" }));
        const list = await request(outage).get("/keys");
        assert.deepEqual([list.status, list.body], [503, { type: "unavailable", message: "The API key store is unavailable" }], version);
      }
      assert.equal(errors.length, EXPRESS_VERSIONS.length, "the missing table, once per request; the outage is no bug");
    } finally {
      await down.close();
    }
  });

  it("an exception inside the middleware (a throwing getToken) is a 500 unknown_error JSON, its cause logged", async () => {
    const { errors, logger } = captureLogger();
    const service = await db.open({ logger });
    const bug = new TypeError("Cannot read properties of undefined (reading 'authorization')");
    const getToken = () => {
      throw bug;
    };
    for (const framework of FRAMEWORKS) {
      const res = await request(createApp(framework, { service, getToken })).get("/admin");
      assert.deepEqual([res.status, res.body], [500, UNKNOWN], framework);
    }
    assert.equal(errors.length, FRAMEWORKS.length);
    for (const [, cause] of errors) assert.equal(cause, bug);
  });
},
// PostgreSQL's own SQL (renamed tables, plpgsql triggers); each test gets a schema of its own.
{ backends: ["postgres", "pglite"], freshSchema: true });

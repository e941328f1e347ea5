import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import request from "supertest";
import type { Condition } from "../../lib/filters";
import type { FilterableField } from "../../lib/columns";
import { forEachBackend } from "../helpers/backends";
import { createApp } from "../helpers/create-app";
import { KnexApiKeyStore } from "../../store/knex-store";

const ALL_ROWS = { order: [["id", "asc"]] as [FilterableField, "asc"][], withDeleted: true };
const byId = (id: string): Condition => ({ kind: "compare", field: "id", op: "=", value: id });

const basic = (token: string) => `Basic ${Buffer.from(`${token}:`).toString("base64")}`;
/** An UPDATE, or (SQLite) a WITH clause leading to one. */
const isUpdate = (sql: string) => /^(with\b[\s\S]*?\)\s*)?update\b/i.test(sql.trim());

forEachBackend(
  "last_used_at through the middleware",
  (db) => {
    it("1,000 authenticated requests reach the database as at most a few UPDATEs, and close() writes the last use", async function () {
      this.timeout(60_000);
      const key = await db.service.createApiKeys({ title: "busy", type: "secret", created_by: "u" });
      const app = createApp("express5", { service: db.service });
      const { queries } = await db.countQueries(async () => {
        for (let batch = 0; batch < 100; batch++) {
          const responses = await Promise.all(
            Array.from({ length: 10 }, () => request(app).get("/admin").set("Authorization", basic(key.token))),
          );
          assert.ok(responses.every((res) => res.status === 200));
        }
        await db.service.close();
      });
      const updates = queries.filter(isUpdate);
      assert.ok(updates.length >= 1 && updates.length <= 3, `${updates.length} UPDATE statements`);
      // The first ten requests miss the cache together and share one lookup; the rest are hits.
      assert.equal(queries.filter((sql) => /^select\b/i.test(sql.trim())).length, 1);
      const [row] = await new KnexApiKeyStore(db.knex, db.schema).find(byId(key.id), ALL_ROWS);
      assert.ok(row!.last_used_at instanceof Date);
      assert.equal(row!.last_used_at.getTime(), db.clock.now().getTime());
    });

    it("sends no write on the request path", async () => {
      const key = await db.service.createApiKeys({ title: "k", type: "publishable", created_by: "u" });
      const app = createApp("express5", { service: db.service });
      const { queries } = await db.countQueries(() => request(app).get("/store").set("x-publishable-api-key", key.token));
      assert.equal(queries.length, 1);
      assert.match(queries[0]!, /^select /);
    });
  },
  ["postgres"],
);

forEachBackend("last_used_at flushing", (db) => {
  async function lastUsed(id: string): Promise<Date | null> {
    const [row] = await new KnexApiKeyStore(db.knex, db.schema).find(byId(id), ALL_ROWS);
    return row!.last_used_at;
  }

  async function renameTable(from: string, to: string): Promise<void> {
    // PostgreSQL and SQLite take the new name without its schema; MySQL would move an
    // unqualified one to the connection's database.
    if (db.dialect.name === "mysql") await db.knex.raw("rename table ?? to ??", [db.qualified(from), db.qualified(to)]);
    else await db.knex.raw("alter table ?? rename to ??", [db.qualified(from), to]);
  }

  it("writes every key used since the last flush in one statement", async () => {
    const keys = await db.service.createApiKeys(
      Array.from({ length: 5 }, (_, i) => ({ title: `k${i}`, type: i % 2 ? ("publishable" as const) : ("secret" as const), created_by: "u" })),
    );
    for (const key of keys) {
      assert.ok(key.type === "secret" ? await db.service.authenticate(key.token) : await db.service.authenticatePublishable(key.token));
    }
    const { queries } = await db.countQueries(() => db.service.close());
    assert.equal(queries.filter(isUpdate).length, 1);
    for (const key of keys) assert.ok(await lastUsed(key.id), key.title);
  });

  it("flushes on its interval without waiting for close()", async () => {
    const service = await db.open({ lastUsedFlushInterval: 50 });
    const key = await service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
    await service.authenticate(key.token);
    for (let i = 0; i < 100 && !(await lastUsed(key.id)); i++) await sleep(20);
    assert.ok(await lastUsed(key.id));
  });

  it("never replaces a later use with an earlier one, whatever order instances flush in", async () => {
    const key = await db.service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
    const later = await db.open({ now: () => new Date(db.clock.now().getTime() + 60_000) });
    await later.authenticate(key.token);
    await db.service.authenticate(key.token);
    await later.close();
    await db.service.close();
    assert.equal((await lastUsed(key.id))!.getTime(), db.clock.now().getTime() + 60_000);
  });

  it("writes a batch too large for one statement in several, and never replaces a later use with an earlier one", async function () {
    this.timeout(60_000);
    const [older, newer, unused] = await db.service.createApiKeys(
      Array.from({ length: 3 }, (_, i) => ({ title: `k${i}`, type: "secret" as const, created_by: "u" })),
    );
    const store = new KnexApiKeyStore(db.knex, db.schema);
    const base = db.clock.now().getTime();
    await store.recordLastUsed([
      [older!.id, new Date(base + 10)],
      [newer!.id, new Date(base + 10)],
    ]);
    // 40,000 uses take 80,000 bind parameters: more than any of our databases allows in one statement.
    const uses: [string, Date][] = Array.from({ length: 40_000 }, (_, i) => [`apk_unknown_${i}`, new Date(base)]);
    uses.splice(5, 0, [older!.id, new Date(base + 5)]);
    uses.push([newer!.id, new Date(base + 20)], [unused!.id, new Date(base + 7)]);
    await store.recordLastUsed(uses);
    assert.equal((await lastUsed(older!.id))!.getTime(), base + 10, "an earlier use replaced a later one");
    assert.equal((await lastUsed(newer!.id))!.getTime(), base + 20);
    assert.equal((await lastUsed(unused!.id))!.getTime(), base + 7);
  });

  it("does not record failed authentications", async () => {
    const key = await db.service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
    await db.service.revoke(key.id, { revoked_by: "u" });
    assert.equal(await db.service.authenticate(key.token), false);
    await db.service.close();
    assert.equal(await lastUsed(key.id), null);
  });

  it("logs a failed flush and retries it, losing nothing", async () => {
    const warnings: string[] = [];
    const logger = { warn: (message: string) => warnings.push(message), error: (message: string) => warnings.push(message) };
    const service = await db.open({ lastUsedFlushInterval: 30, logger });
    const key = await service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
    await service.authenticate(key.token);
    // Rename the table under the recorder, so its flushes fail until it is back.
    await renameTable("api_key", "api_key_away");
    for (let i = 0; i < 100 && warnings.length === 0; i++) await sleep(10);
    await renameTable("api_key_away", "api_key");
    assert.match(warnings[0] ?? "", /could not record last_used_at for 1 keys; will retry/);
    assert.equal(warnings.some((w) => w.includes(key.token)), false);
    for (let i = 0; i < 100 && !(await lastUsed(key.id)); i++) await sleep(20);
    assert.ok(await lastUsed(key.id));
  });
});

import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import request from "supertest";
import type { ApiKeyDTO } from "../../lib/types";
import { forEachBackend } from "../helpers/backends";
import { createApp } from "../helpers/create-app";

const basic = (token: string) => `Basic ${Buffer.from(`${token}:`).toString("base64")}`;
const isUpdate = (sql: string) => /^update\b/i.test(sql.trim());

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
      const [row] = await db.knex.withSchema(db.schema).from("api_key").where({ id: key.id }).select("last_used_at");
      assert.ok(row.last_used_at instanceof Date);
      assert.equal(row.last_used_at.getTime(), db.clock.now().getTime());
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
    const [row] = await db.knex.withSchema(db.schema).from("api_key").where({ id }).select("last_used_at");
    return row.last_used_at as Date | null;
  }

  it("writes every key used since the last flush in one statement", async () => {
    const keys = (await db.service.createApiKeys(
      Array.from({ length: 5 }, (_, i) => ({ title: `k${i}`, type: i % 2 ? ("publishable" as const) : ("secret" as const), created_by: "u" })),
    )) as ApiKeyDTO[];
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
    await db.knex.raw("alter table ??.api_key rename to api_key_away", [db.schema]);
    for (let i = 0; i < 100 && warnings.length === 0; i++) await sleep(10);
    await db.knex.raw("alter table ??.api_key_away rename to api_key", [db.schema]);
    assert.match(warnings[0] ?? "", /could not record last_used_at for 1 keys; will retry/);
    assert.equal(warnings.some((w) => w.includes(key.token)), false);
    for (let i = 0; i < 100 && !(await lastUsed(key.id)); i++) await sleep(20);
    assert.ok(await lastUsed(key.id));
  });
});

import assert from "node:assert/strict";
import { forEachBackend } from "../helpers/backends";
import { rejectsWith } from "../helpers/assertions";

forEachBackend("roll", (db) => {
  it("revokes the old key and returns a successor with the same title, type, creator and links", async () => {
    const old = await db.service.createApiKeys({ title: "Storefront", type: "publishable", created_by: "alice" });
    await db.service.updateLinks(old.id, { add: ["sc_1", "sc_2"] });
    await db.service.updateLinks(old.id, { resource_type: "region", add: ["reg_eu"] });
    const next = await db.service.roll(old.id, { revoked_by: "bob" });
    assert.notEqual(next.id, old.id);
    assert.notEqual(next.token, old.token);
    assert.deepEqual([next.title, next.type, next.created_by, next.revoked_at], ["Storefront", "publishable", "alice", null]);
    assert.deepEqual(await db.service.listLinks(next.id), ["sc_1", "sc_2"]);
    assert.deepEqual(await db.service.listLinks(next.id, "region"), ["reg_eu"]);
    const revoked = await db.service.retrieveApiKey(old.id);
    assert.equal(revoked.revoked_by, "bob");
    assert.ok(revoked.revoked_at!.getTime() <= db.clock.now().getTime());
  });

  it("hands out a secret successor's plaintext once; the old key works until revoke_in", async () => {
    const old = await db.service.createApiKeys({ title: "CI", type: "secret", created_by: "alice" });
    const next = await db.service.roll(old.id, { revoked_by: "alice", revoke_in: 120 });
    assert.match(next.token, /^sk_/);
    assert.equal((await db.service.retrieveApiKey(next.id)).token, "");
    assert.ok(await db.service.authenticate(old.token), "grace period");
    assert.ok(await db.service.authenticate(next.token));
    db.clock.advance(120_000);
    assert.equal(await db.service.authenticate(old.token), false);
    assert.ok(await db.service.authenticate(next.token));
  });

  it("refuses revoked or scheduled keys, so a key has at most one successor", async () => {
    const key = await db.service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
    await db.service.roll(key.id, { revoked_by: "u", revoke_in: 60 });
    await rejectsWith(db.service.roll(key.id, { revoked_by: "u" }), "not_allowed", /already revoked or scheduled/);
    assert.equal((await db.service.listApiKeys({ title: "k" })).length, 2);
  });

  it("validates its input", async () => {
    const key = await db.service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
    await rejectsWith(db.service.roll("apk_missing", { revoked_by: "u" }), "not_found", 'ApiKey with id "apk_missing" not found');
    await rejectsWith(db.service.roll(key.id, {} as never), "invalid_data", /revoked_by/);
    await rejectsWith(db.service.roll(key.id, { revoked_by: "u", revoke_in: "1" } as never), "invalid_data", /revoke_in/);
    await rejectsWith(db.service.roll(7 as never, { revoked_by: "u" }), "invalid_data");
    assert.equal((await db.service.listApiKeys()).length, 1);
  });

  /** Makes every insert into api_key fail, through a trigger; returns what removes it. */
  async function failInserts(): Promise<() => Promise<void>> {
    const table = db.qualified("api_key");
    switch (db.dialect.name) {
      case "postgres": {
        const fn = db.qualified("fail_insert");
        await db.knex.raw("create function ??() returns trigger language plpgsql as $$ begin raise exception 'insert refused'; end $$", [fn]);
        await db.knex.raw("create trigger fail_insert before insert on ?? for each row execute function ??()", [table, fn]);
        return async () => void (await db.knex.raw("drop function ??() cascade", [fn]));
      }
      case "mysql": {
        const trigger = db.qualified("fail_insert");
        await db.knex.raw("create trigger ?? before insert on ?? for each row signal sqlstate '45000' set message_text = 'insert refused'", [trigger, table]);
        return async () => void (await db.knex.raw("drop trigger ??", [trigger]));
      }
      case "sqlite":
        await db.knex.raw("create trigger fail_insert before insert on ?? begin select raise(abort, 'insert refused'); end", [table]);
        return async () => void (await db.knex.raw("drop trigger fail_insert"));
    }
  }

  it("is atomic: a failure while creating the successor leaves the old key untouched", async () => {
    const old = await db.service.createApiKeys({ title: "explode", type: "publishable", created_by: "u" });
    await db.service.updateLinks(old.id, { add: ["sc_1"] });
    // A trigger that fails the successor's insert, after the old key's revocation was written.
    // A failed trigger is no outage: an unexpected error, logged once, and nothing is half-done.
    const logged: unknown[] = [];
    const service = await db.open({ logger: { warn: () => {}, error: (_message, cause) => void logged.push(cause) } });
    const removeTrigger = await failInserts();
    try {
      await rejectsWith(service.roll(old.id, { revoked_by: "u" }), "unknown_error");
    } finally {
      await removeTrigger();
    }
    assert.equal(logged.length, 1);
    const after = await db.service.listApiKeys();
    assert.deepEqual(after.map((k) => [k.id, k.revoked_at]), [[old.id, null]]);
    assert.deepEqual(await db.service.listLinks(old.id), ["sc_1"]);
  });

  it("concurrent rolls of one key produce exactly one successor", async () => {
    const key = await db.service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
    const other = await db.open();
    const results = await Promise.allSettled(
      Array.from({ length: 6 }, (_, i) => (i % 2 ? other : db.service).roll(key.id, { revoked_by: `r${i}` })),
    );
    const won = results.filter((r) => r.status === "fulfilled");
    assert.equal(won.length, 1);
    for (const lost of results.filter((r) => r.status === "rejected")) {
      assert.equal(lost.reason.type, "not_allowed");
    }
    const keys = await db.service.listApiKeys({ title: "k" });
    assert.equal(keys.length, 2);
    assert.equal(keys.filter((k) => k.revoked_at === null).length, 1);
  });
});

forEachBackend("links", (db) => {
  it("adds and removes sales channels on publishable keys, idempotently", async () => {
    const key = await db.service.createApiKeys({ title: "p", type: "publishable", created_by: "u" });
    assert.deepEqual(await db.service.updateLinks(key.id, { add: ["sc_2", "sc_1", "sc_1"] }), ["sc_1", "sc_2"]);
    assert.deepEqual(await db.service.updateLinks(key.id, { add: ["sc_2", "sc_3"], remove: ["sc_1", "sc_9"] }), ["sc_2", "sc_3"]);
    assert.deepEqual(await db.service.updateLinks(key.id, {}), ["sc_2", "sc_3"]);
    assert.deepEqual(await db.service.listLinks(key.id), ["sc_2", "sc_3"]);
    assert.deepEqual(await db.service.listLinks(key.id, "region"), []);
  });

  it("adds more links in one call than one insert can carry, and a roll copies them all", async () => {
    const key = await db.service.createApiKeys({ title: "p", type: "publishable", created_by: "u" });
    // SQLite takes at most 500 rows in one multi-row insert.
    const channels = Array.from({ length: 1200 }, (_, i) => `sc_${String(i).padStart(4, "0")}`);
    // At most 1,000 ids a call.
    await db.service.updateLinks(key.id, { add: channels.slice(0, 1000) });
    assert.equal((await db.service.updateLinks(key.id, { add: channels.slice(1000) })).length, 1200);
    const next = await db.service.roll(key.id, { revoked_by: "u" });
    assert.deepEqual(await db.service.listLinks(next.id), channels);
    const match = await db.service.authenticatePublishable(next.token);
    assert.ok(match);
    assert.deepEqual(match.sales_channel_ids, channels);
  });

  it("links revoked publishable keys too, as the reference does", async () => {
    const key = await db.service.createApiKeys({ title: "p", type: "publishable", created_by: "u" });
    await db.service.revoke(key.id, { revoked_by: "u" });
    assert.deepEqual(await db.service.updateLinks(key.id, { add: ["sc_1"] }), ["sc_1"]);
  });

  it("rejects secret keys, unknown keys and malformed changes", async () => {
    const secret = await db.service.createApiKeys({ title: "s", type: "secret", created_by: "u" });
    const key = await db.service.createApiKeys({ title: "p", type: "publishable", created_by: "u" });
    await rejectsWith(db.service.updateLinks(secret.id, { add: ["sc_1"] }), "invalid_data", "Sales channels can only be associated with publishable API keys");
    await rejectsWith(db.service.updateLinks(secret.id, { resource_type: "region", add: ["r"] }), "invalid_data", "Resources of type 'region' can only be associated with publishable API keys");
    await rejectsWith(db.service.updateLinks("apk_missing", { add: ["sc_1"] }), "not_found");
    await rejectsWith(db.service.listLinks("apk_missing"), "not_found");
    await rejectsWith(db.service.updateLinks(key.id, { add: "sc_1" } as never), "invalid_data", /field 'add'/);
    await rejectsWith(db.service.updateLinks(key.id, { add: [""] }), "invalid_data", /field 'add'/);
    await rejectsWith(db.service.updateLinks(key.id, { add: ["a"], remove: ["a"] }), "invalid_data", /both added and removed/);
    await rejectsWith(db.service.updateLinks(key.id, { add: ["a"], channels: [] } as never), "invalid_data", "Unrecognized fields: 'channels'");
    await rejectsWith(db.service.updateLinks(key.id, { resource_type: "" }), "invalid_data", /resource_type/);
    assert.deepEqual(await db.service.listLinks(key.id), []);
  });
});

forEachBackend("app transactions", (db) => {
  it("joins the app's transaction: a rollback undoes our writes", async () => {
    const kept = await db.service.createApiKeys({ title: "kept", type: "secret", created_by: "u" });
    const trx = await db.knex.transaction();
    const inside = await db.service.createApiKeys({ title: "inside", type: "publishable", created_by: "u" }, { transaction: trx });
    await db.service.updateLinks(inside.id, { add: ["sc_1"] }, { transaction: trx });
    await db.service.roll(kept.id, { revoked_by: "u" }, { transaction: trx });
    assert.equal((await db.service.listApiKeys({}, {}, { transaction: trx })).length, 3);
    await trx.rollback();
    const rows = await db.service.listApiKeys();
    assert.deepEqual(rows.map((k) => [k.title, k.revoked_at]), [["kept", null]]);
  });

  it("commits with the app's transaction", async () => {
    await db.knex.transaction(async (trx) => {
      await db.service.createApiKeys({ title: "a", type: "secret", created_by: "u" }, { transaction: trx });
    });
    assert.equal((await db.service.listApiKeys()).length, 1);
  });
});

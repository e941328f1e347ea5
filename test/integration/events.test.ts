import assert from "node:assert/strict";
import type { ApiKeyEventName, ApiKeyEvents } from "../../lib/events";
import type { ApiKeyService } from "../../lib/service";
import { forEachBackend } from "../helpers/backends";
import { rejectsWith } from "../helpers/assertions";

type Seen = { name: ApiKeyEventName; payload: ApiKeyEvents[ApiKeyEventName] }[];

function record(service: ApiKeyService): Seen {
  const seen: Seen = [];
  const names: ApiKeyEventName[] = ["api_key.created", "api_key.updated", "api_key.revoked", "api_key.rolled", "api_key.deleted"];
  for (const name of names) service.on(name, (payload) => void seen.push({ name, payload }));
  return seen;
}

forEachBackend("events", (db) => {
  it("reports every change, one event per key, with ids and actors and no secret", async () => {
    const seen = record(db.service);
    const [secret, publishable] = await db.service.createApiKeys([
      { title: "s", type: "secret", created_by: "alice" },
      { title: "p", type: "publishable", created_by: "alice" },
    ]);
    await db.service.updateApiKeys({ id: [secret!.id, publishable!.id] }, { title: "renamed" });
    await db.service.updateLinks(publishable!.id, { add: ["sc_1"] });
    const next = await db.service.roll(secret!.id, { revoked_by: "bob", revoke_in: 60 });
    await db.service.revoke(publishable!.id, { revoked_by: "carol" });
    await db.service.deleteApiKeys(publishable!.id);

    const now = db.clock.now().getTime();
    assert.deepEqual(seen, [
      { name: "api_key.created", payload: { id: secret!.id, type: "secret", title: "s", created_by: "alice" } },
      { name: "api_key.created", payload: { id: publishable!.id, type: "publishable", title: "p", created_by: "alice" } },
      { name: "api_key.updated", payload: { id: secret!.id, changed: ["title"] } },
      { name: "api_key.updated", payload: { id: publishable!.id, changed: ["title"] } },
      { name: "api_key.updated", payload: { id: publishable!.id, changed: ["links"] } },
      { name: "api_key.rolled", payload: { id: secret!.id, successor_id: next.id, revoked_by: "bob", revoked_at: new Date(now + 60_000) } },
      { name: "api_key.revoked", payload: { id: publishable!.id, revoked_by: "carol", revoked_at: new Date(now) } },
      { name: "api_key.deleted", payload: { id: publishable!.id } },
    ]);
    const text = JSON.stringify(seen);
    for (const token of [secret!.token, next.token]) assert.equal(text.includes(token.slice(3, 20)), false);
  });

  it("reports nothing for a failed call or a revocation that changed nothing", async () => {
    const key = await db.service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
    await db.service.revoke(key.id, { revoked_by: "u", revoke_in: 60 });
    const seen = record(db.service);
    await db.service.revoke(key.id, { revoked_by: "u", revoke_in: 120 });
    await rejectsWith(db.service.deleteApiKeys(key.id), "not_allowed");
    await rejectsWith(db.service.createApiKeys({ title: 5 } as never), "invalid_data");
    assert.deepEqual(seen, []);
  });

  it("keeps going when a listener throws, and logs it", async () => {
    const errors: string[] = [];
    const service = await db.open({ logger: { warn: () => {}, error: (message: string) => errors.push(message) } });
    let delivered = 0;
    service.on("api_key.created", () => {
      throw new Error("audit log down");
    });
    service.on("api_key.created", async () => {
      delivered++;
      throw new Error("async failure");
    });
    const key = await service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok(key.id);
    assert.equal(delivered, 1);
    assert.deepEqual(errors, [
      "express-api-keys: a listener for api_key.created failed",
      "express-api-keys: a listener for api_key.created failed",
    ]);
  });

  it("waits for the app's transaction: events after its commit, none after a rollback", async () => {
    const seen = record(db.service);
    const rolledBack = await db.knex.transaction();
    await db.service.createApiKeys({ title: "gone", type: "secret", created_by: "u" }, { transaction: rolledBack });
    await rolledBack.rollback();
    const committed = await db.knex.transaction();
    const kept = await db.service.createApiKeys({ title: "kept", type: "secret", created_by: "u" }, { transaction: committed });
    assert.deepEqual(seen, []);
    await committed.commit();
    // The outcome is confirmed with one query after the transaction ends.
    for (let i = 0; i < 200 && seen.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual((seen as Seen).map((event) => event.payload.id), [kept.id]);
  });
});

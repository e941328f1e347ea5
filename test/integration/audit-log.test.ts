// The stored audit log: one event per change to a key, written in the change's transaction,
// naming the actor and each changed field before and after, and never a token or a hash.
import assert from "node:assert/strict";
import type { AuditEvent } from "../../lib/audit-log";
import { hashToken } from "../../lib/tokens";
import { rejectsWith } from "../helpers/assertions";
import { forEachBackend } from "../helpers/backends";

forEachBackend("audit log", (db) => {
  const secret = (extra: object = {}, ctx?: object) =>
    db.service.createApiKeys({ title: "s", type: "secret", created_by: "u", ...extra }, ctx);

  /** Every token and hash made in a test, to look for in the audit table afterwards. */
  let secrets: string[] = [];
  beforeEach(() => {
    secrets = [];
  });
  const remember = (token: string) => {
    secrets.push(token, hashToken(token));
    return token;
  };

  afterEach(async function () {
    if (this.currentTest?.state !== "passed") return;
    const rows = (await db.table("api_key_audit_event").select("*")) as Record<string, unknown>[];
    const text = JSON.stringify(rows);
    for (const secret of secrets) assert.ok(!text.includes(secret), "the audit log holds a token or a hash");
  });

  it("records a creation with its actor and every field set, and no token", async () => {
    const key = await secret({ scopes: ["orders:read"], owner_id: "org_1", metadata: { team: "web" } }, { actor: "user_7" });
    remember(key.token);
    const [event, ...rest] = await db.service.listAuditEvents({ key_id: key.id });
    assert.equal(rest.length, 0);
    assert.equal(event!.action, "created");
    assert.equal(event!.actor_id, "user_7");
    assert.match(event!.id, /^aev_[0-9A-Z]{26}$/);
    assert.equal(event!.at.getTime(), db.clock.now().getTime());
    assert.deepEqual(event!.changes.title, { before: null, after: "s" });
    assert.deepEqual(event!.changes.scopes, { before: null, after: ["orders:read"] });
    assert.deepEqual(event!.changes.metadata, { before: null, after: { team: "web" } });
    assert.deepEqual(event!.changes.created_at, { before: null, after: key.created_at.toISOString() });
    for (const field of ["token", "updated_at", "last_used_at"]) assert.ok(!(field in event!.changes), field);
    assert.equal(event!.details, null);
  });

  it("stores what a caller says of a change as its details, and refuses details that are not a few strings", async () => {
    const key = await secret();
    remember(key.token);
    await db.service.revoke(key.id, { revoked_by: "ops" }, { actor: "ops", auditDetails: { ticket: "OPS-12", reason: "left the team" } });
    const [, revoked] = await db.service.listAuditEvents({ key_id: key.id });
    assert.deepEqual(revoked!.details, { ticket: "OPS-12", reason: "left the team" });
    for (const auditDetails of ["why", { n: 1 }, Object.fromEntries(Array.from({ length: 11 }, (_, i) => [`k${i}`, "v"])), { long: "x".repeat(2001) }]) {
      await rejectsWith(db.service.updateApiKeys(key.id, { title: "t" }, { auditDetails: auditDetails as never }), "invalid_data", /auditDetails/);
    }
  });

  it("records an update with only the fields it changed, before and after", async () => {
    const key = await secret({ title: "old", owner_id: "org_1" });
    remember(key.token);
    db.clock.advance(1000);
    await db.service.updateApiKeys(key.id, { title: "new", owner_id: "org_1", metadata: { a: 1 } }, { actor: "ops" });
    const [event] = await db.service.listAuditEvents({ key_id: key.id, action: "updated" });
    assert.deepEqual(event!.changes, { title: { before: "old", after: "new" }, metadata: { before: {}, after: { a: 1 } } });
    assert.equal(event!.actor_id, "ops");
  });

  it("records revoke, roll, soft delete, restore, links and delete, each in order", async () => {
    const key = await secret();
    remember(key.token);
    const publishable = await db.service.createApiKeys({ title: "p", type: "publishable", created_by: "u" });
    remember(publishable.token);
    db.clock.advance(1000);
    const successor = await db.service.roll(key.id, { revoked_by: "ops" }, { actor: "ops" });
    remember(successor.token);
    await db.service.updateLinks(publishable.id, { add: ["sc_1", "sc_2"] });
    await db.service.updateLinks(publishable.id, { remove: ["sc_1"] });
    await db.service.updateLinks(publishable.id, { remove: ["sc_9"] }); // changes nothing, records nothing
    await db.service.softDeleteApiKeys(publishable.id);
    await db.service.restoreApiKeys(publishable.id);
    await db.service.revoke(publishable.id, { revoked_by: "ops" });
    await db.service.deleteApiKeys(publishable.id);

    const rolled = await db.service.listAuditEvents({ key_id: [key.id, successor.id] });
    assert.deepEqual(rolled.map((event) => [event.action, event.key_id]), [["created", key.id], ["rolled", key.id], ["created", successor.id]]);
    assert.deepEqual(rolled[1]!.changes.successor_id, { before: null, after: successor.id });
    assert.deepEqual(rolled[1]!.changes.revoked_by, { before: null, after: "ops" });
    assert.equal(rolled[1]!.changes.revoked_at!.after, db.clock.now().toISOString());

    const trail = await db.service.listAuditEvents({ key_id: publishable.id });
    assert.deepEqual(trail.map((event) => event.action), ["created", "links_changed", "links_changed", "soft_deleted", "restored", "revoked", "deleted"]);
    assert.deepEqual(trail[1]!.changes, { "links.sales_channel": { before: [], after: ["sc_1", "sc_2"] } });
    assert.deepEqual(trail[2]!.changes, { "links.sales_channel": { before: ["sc_1", "sc_2"], after: ["sc_2"] } });
    assert.deepEqual(trail[3]!.changes, { deleted_at: { before: null, after: db.clock.now().toISOString() } });
    // A deleted key's last event keeps what it looked like.
    assert.deepEqual(trail[6]!.changes.title, { before: "p", after: null });
    assert.deepEqual(trail[6]!.changes.revoked_by, { before: "ops", after: null });
  });

  it("records the acting key as the actor when no actor is named", async () => {
    const admin = await secret({ title: "admin" });
    remember(admin.token);
    const made = await secret({ title: "made" }, { actingKey: admin.id });
    remember(made.token);
    await db.service.revoke(made.id, { revoked_by: admin.id }, { actingKey: admin.id, actor: "user_9" });
    const events = await db.service.listAuditEvents({ key_id: made.id });
    assert.deepEqual(events.map((event) => [event.action, event.actor_id]), [["created", admin.id], ["revoked", "user_9"]]);
    const [unattributed] = await db.service.listAuditEvents({ key_id: admin.id });
    assert.equal(unattributed!.actor_id, null);
  });

  it("stores no event for a change that fails, and no change whose event fails", async () => {
    const key = await secret({ title: "kept" });
    remember(key.token);
    // The change is refused: nothing is recorded.
    await rejectsWith(db.service.deleteApiKeys(key.id), "not_allowed");
    // The event cannot be made (a malformed actor): the change, already written, is rolled back with it.
    await rejectsWith(db.service.updateApiKeys(key.id, { title: "lost" }, { actor: 42 as unknown as string }), "invalid_data", /actor/);
    assert.equal((await db.service.retrieveApiKey(key.id)).title, "kept");
    // An app's transaction that rolls back takes the change and its event with it.
    let madeId: string | undefined;
    await assert.rejects(
      db.knex.transaction(async (trx) => {
        const made = await db.service.createApiKeys({ title: "rolled back", type: "secret", created_by: "u" }, { transaction: trx });
        remember(made.token);
        madeId = made.id;
        throw new Error("the app gives up");
      }),
      /the app gives up/,
    );
    assert.deepEqual(await db.service.listAuditEvents({ key_id: madeId! }), []);
    assert.deepEqual((await db.service.listAuditEvents()).map((event) => event.key_id), [key.id]);
  });

  it("filters by key, actor, action and time, pages, orders, and counts", async () => {
    const start = db.clock.now();
    const a = await secret({ title: "a" }, { actor: "alice" });
    db.clock.advance(60_000);
    const b = await secret({ title: "b" }, { actor: "bob" });
    db.clock.advance(60_000);
    await db.service.updateApiKeys(a.id, { title: "a2" }, { actor: "bob" });
    remember(a.token);
    remember(b.token);
    const ids = (events: AuditEvent[]) => events.map((event) => `${event.action}:${event.key_id === a.id ? "a" : "b"}`);
    assert.deepEqual(ids(await db.service.listAuditEvents()), ["created:a", "created:b", "updated:a"]);
    assert.deepEqual(ids(await db.service.listAuditEvents({ actor_id: "bob" })), ["created:b", "updated:a"]);
    assert.deepEqual(ids(await db.service.listAuditEvents({ action: ["updated"] })), ["updated:a"]);
    assert.deepEqual(ids(await db.service.listAuditEvents({ at: { $gt: start, $lt: db.clock.now().toISOString() } })), ["created:b"]);
    assert.deepEqual(ids(await db.service.listAuditEvents({ at: start })), ["created:a"]);
    assert.deepEqual(ids(await db.service.listAuditEvents({}, { order: { at: "DESC" }, skip: 1, take: 1 })), ["created:b"]);
    const [page, count] = await db.service.listAndCountAuditEvents({ key_id: a.id }, { take: 1 });
    assert.deepEqual([ids(page), count], [["created:a"], 2]);
  });

  it("refuses malformed queries with invalid_data", async () => {
    const bad: [unknown, unknown][] = [
      ["not an object", undefined],
      [{ nope: 1 }, undefined],
      [{ action: "exploded" }, undefined],
      [{ key_id: 42 }, undefined],
      [{ key_id: [""] }, undefined],
      [{ at: "yesterday" }, undefined],
      [{ at: { $ne: new Date() } }, undefined],
      [{}, { order: { id: "ASC" } }],
      [{}, { order: { at: "sideways" } }],
      [{}, { take: -1 }],
      [{}, { skip: 1.5 }],
      [{}, { select: ["id"] }],
    ];
    for (const [filters, config] of bad) {
      await rejectsWith(db.service.listAuditEvents(filters as never, config as never), "invalid_data");
    }
  });
});

// Key policy through the service: the new fields on create, update and roll, their validation,
// verifyApiKey's codes, expiry through every cache tier, and soft delete and restore.
import assert from "node:assert/strict";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import type { ApiKeyEventName, ApiKeyEvents } from "../../lib/events";
import type { ApiKeyService } from "../../lib/service";
import { hashToken } from "../../lib/tokens";
import type { ApiKeyDTO } from "../../lib/types";
import { rejectsWith } from "../helpers/assertions";
import { forEachBackend } from "../helpers/backends";
import { REDIS_URL, redisPerTest } from "../helpers/redis";

const DEFAULTS = { expires_at: null, owner_id: null, scopes: [], metadata: {}, rate_limits: [], remaining: null, refill: null };

function collect<E extends ApiKeyEventName>(service: ApiKeyService, name: E): ApiKeyEvents[E][] {
  const seen: ApiKeyEvents[E][] = [];
  service.on(name, (payload) => void seen.push(payload));
  return seen;
}

forEachBackend("key policy", (db) => {
  const secret = (extra: object = {}) => db.service.createApiKeys({ title: "s", type: "secret", created_by: "u", ...extra });

  it("creates keys with every policy field, reads them back as given, and defaults the rest", async () => {
    const expires_at = new Date(db.clock.now().getTime() + 3_600_000);
    const policy = {
      expires_at,
      scopes: ["orders:read", "orders:*", "orders:read"],
      owner_id: "org_42",
      metadata: { plan: "pro", nested: { list: [1, "two", null, true] } },
      rate_limits: [{ name: "per_minute", limit: 60, duration: 60 }],
      remaining: 10,
      refill: { amount: 10, interval: "day" as const },
    };
    const key = await secret(policy);
    const expected = { ...policy, scopes: ["orders:read", "orders:*"] };
    for (const [field, value] of Object.entries(expected)) assert.deepEqual(key[field as keyof ApiKeyDTO], value, field);
    const read = await db.service.retrieveApiKey(key.id);
    assert.deepEqual(read, { ...key, token: "" });
    const plain = await secret();
    for (const [field, value] of Object.entries(DEFAULTS)) assert.deepEqual(plain[field as keyof ApiKeyDTO], value, field);
    // expires_in is seconds from the service's clock.
    const soon = await secret({ expires_in: 900, remaining: 1 });
    assert.equal(soon.expires_at!.getTime(), db.clock.now().getTime() + 900_000);
    assert.equal(soon.remaining, 1);
    // What the caller passed stays theirs.
    policy.metadata.nested.list.push("later");
    assert.deepEqual((await db.service.retrieveApiKey(key.id)).metadata, { plan: "pro", nested: { list: [1, "two", null, true] } });
  });

  it("refuses malformed policy fields with invalid_data naming the field", async () => {
    const past = new Date(db.clock.now().getTime() - 1);
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    const cases: [object, RegExp][] = [
      [{ expires_at: past }, /'expires_at' must be in the future/],
      [{ expires_at: db.clock.now() }, /'expires_at' must be in the future/],
      [{ expires_at: "tomorrow" }, /field 'expires_at'/],
      [{ expires_at: "10000-01-01T00:00:00Z" }, /field 'expires_at'/],
      [{ expires_in: 0 }, /field 'expires_in'/],
      [{ expires_in: -5 }, /field 'expires_in'/],
      [{ expires_in: "60" }, /field 'expires_in'/],
      [{ expires_in: 60, expires_at: new Date(db.clock.now().getTime() + 60_000) }, /'expires_at' and 'expires_in' cannot both be given/],
      [{ scopes: "orders:read" }, /field 'scopes'/],
      [{ scopes: ["Orders:read"] }, /Invalid scope in field 'scopes': 'Orders:read'/],
      [{ scopes: ["orders:"] }, /field 'scopes'/],
      [{ scopes: ["orders:re*"] }, /field 'scopes'/],
      [{ scopes: [`a:${"b".repeat(100)}`] }, /field 'scopes'/],
      [{ scopes: Array.from({ length: 101 }, (_, i) => `s${i}`) }, /at most 100/],
      [{ owner_id: "" }, /field 'owner_id'/],
      [{ owner_id: "o".repeat(256) }, /field 'owner_id'/],
      [{ owner_id: 7 }, /field 'owner_id'/],
      [{ metadata: [1] }, /field 'metadata'/],
      [{ metadata: "x" }, /field 'metadata'/],
      [{ metadata: { when: new Date() } }, /'metadata' must be plain JSON/],
      [{ metadata: { f: () => 1 } }, /'metadata' must be plain JSON/],
      [{ metadata: { n: Number.NaN } }, /'metadata' must be plain JSON/],
      [{ metadata: { n: Infinity } }, /'metadata' must be plain JSON/],
      [{ metadata: { u: undefined } }, /'metadata' must be plain JSON/],
      [{ metadata: cycle }, /cycle/],
      [{ metadata: { big: "x".repeat(4096) } }, /'metadata' is \d+ bytes/],
      [{ rate_limits: [{ name: "a", limit: 0, duration: 1 }] }, /field 'rate_limits'/],
      [{ rate_limits: [{ name: "a", limit: 1, duration: 1 }, { name: "a", limit: 2, duration: 2 }] }, /same name/],
      [{ remaining: -1 }, /field 'remaining'/],
      [{ remaining: 1.5 }, /field 'remaining'/],
      [{ refill: { amount: 1, interval: "week" } }, /field 'refill'/],
    ];
    for (const [extra, message] of cases) await rejectsWith(secret(extra), "invalid_data", message);
    await rejectsWith(
      db.service.createApiKeys({ title: "p", type: "publishable", created_by: "u", scopes: ["orders:read"] }),
      "invalid_data",
      "Field 'scopes' is only allowed on secret keys",
    );
    // Just under the bound is fine; so is an empty scope list on a publishable key.
    await secret({ metadata: { big: "x".repeat(4096 - 10) } });
    await db.service.createApiKeys({ title: "p", type: "publishable", created_by: "u", scopes: [] });
    assert.equal((await db.service.listApiKeys()).length, 2, "nothing else was created");
  });

  it("updates policy fields, clears expiry and owner with null, and reports what changed", async () => {
    const updated = collect(db.service, "api_key.updated");
    const key = await secret({ owner_id: "org_1", expires_in: 60 });
    const later = new Date(db.clock.now().getTime() + 7_200_000);
    const changed = await db.service.updateApiKeys(key.id, { expires_at: later.toISOString(), scopes: ["*"], metadata: { a: 1 }, remaining: 5 });
    assert.equal(changed.expires_at!.getTime(), later.getTime());
    assert.deepEqual([changed.scopes, changed.metadata, changed.remaining, changed.owner_id, changed.title], [["*"], { a: 1 }, 5, "org_1", "s"]);
    const cleared = await db.service.updateApiKeys(key.id, { expires_at: null, owner_id: null });
    assert.deepEqual([cleared.expires_at, cleared.owner_id], [null, null]);
    assert.deepEqual(await db.service.retrieveApiKey(key.id), cleared);
    assert.deepEqual(updated.map((event) => event.changed), [["expires_at", "scopes", "metadata", "remaining"], ["expires_at", "owner_id"]]);
    const publishable = await db.service.createApiKeys({ title: "p", type: "publishable", created_by: "u" });
    await rejectsWith(db.service.updateApiKeys(publishable.id, { scopes: ["a"] }), "invalid_data", /only allowed on secret keys/);
    await rejectsWith(db.service.updateApiKeys(key.id, { expires_at: new Date(0) }), "invalid_data", /must be in the future/);
    await rejectsWith(db.service.updateApiKeys(key.id, { type: "publishable" } as never), "invalid_data", "Unrecognized fields: 'type'");
  });

  it("filters by owner_id like title and by expires_at with the operator map", async () => {
    const t = db.clock.now().getTime();
    await secret({ title: "a", owner_id: "org_1", expires_at: new Date(t + 1000) });
    await secret({ title: "b", owner_id: "org_2", expires_at: new Date(t + 5000) });
    await secret({ title: "c" });
    const titles = async (filters: object) => (await db.service.listApiKeys(filters)).map((key) => key.title);
    assert.deepEqual(await titles({ owner_id: "org_1" }), ["a"]);
    assert.deepEqual(await titles({ owner_id: { $like: "org_%" } }), ["a", "b"]);
    assert.deepEqual(await titles({ owner_id: null }), ["c"]);
    assert.deepEqual(await titles({ expires_at: { $lte: new Date(t + 1000) } }), ["a"]);
    assert.deepEqual(await titles({ expires_at: { $gt: new Date(t + 1000).toISOString() } }), ["b"]);
    assert.deepEqual(await titles({ expires_at: { $exists: false } }), ["c"]);
    await rejectsWith(db.service.listApiKeys({ scopes: "x" } as never), "invalid_data", /unknown field/);
    await rejectsWith(db.service.listApiKeys({}, { order: { metadata: "ASC" } as never }), "invalid_data", /cannot order by 'metadata'/);
  });

  it("verifies with a code for every outcome, never throwing on a string", async () => {
    const t = db.clock.now().getTime();
    const live = await secret({ scopes: ["orders:*", "products:read"] });
    const revoked = await secret();
    await db.service.revoke(revoked.id, { revoked_by: "u" });
    const expiring = await secret({ expires_at: new Date(t + 10_000) });
    const pub = await db.service.createApiKeys({ title: "p", type: "publishable", created_by: "u" });
    await db.service.updateLinks(pub.id, { add: ["sc_1"] });

    const ok = await db.service.verifyApiKey(live.token);
    assert.deepEqual([ok.valid, ok.code, ok.api_key?.id, ok.api_key?.token], [true, "valid", live.id, ""]);
    assert.equal(ok.sales_channel_ids, undefined);
    assert.equal((await db.service.verifyApiKey(live.token, { type: "secret", scopes: ["orders:read:own", "products:read"] })).code, "valid");
    const forbidden = await db.service.verifyApiKey(live.token, { scopes: ["orders:read", "users:read", "products:write"] });
    assert.deepEqual([forbidden.valid, forbidden.code, forbidden.missing_scopes], [false, "forbidden", ["users:read", "products:write"]]);
    assert.equal(forbidden.api_key?.id, live.id);
    assert.deepEqual(await db.service.verifyApiKey(live.token, { type: "publishable" }), { valid: false, code: "not_found" });
    assert.deepEqual(await db.service.verifyApiKey(pub.token, { type: "secret" }), { valid: false, code: "not_found" });
    const pubResult = await db.service.verifyApiKey(pub.token);
    assert.deepEqual([pubResult.code, pubResult.sales_channel_ids], ["valid", ["sc_1"]]);
    // A publishable key has no scopes, so it is refused whenever one is required.
    assert.equal((await db.service.verifyApiKey(pub.token, { scopes: ["orders:read"] })).code, "forbidden");
    assert.equal((await db.service.verifyApiKey(revoked.token)).code, "revoked");
    assert.equal((await db.service.verifyApiKey(expiring.token)).code, "valid");
    db.clock.advance(10_000);
    const expired = await db.service.verifyApiKey(expiring.token);
    assert.deepEqual([expired.valid, expired.code, expired.api_key?.id], [false, "expired", expiring.id]);
    assert.equal(await db.service.authenticate(expiring.token), false);
    for (const junk of ["", "sk_", `${live.token}x`, `${live.token.slice(0, -1)}${live.token.endsWith("A") ? "B" : "A"}`, "\u0000", "x".repeat(10_000), live.token.toUpperCase(), 7 as never, null as never]) {
      assert.deepEqual(await db.service.verifyApiKey(junk), { valid: false, code: "not_found" });
    }
    await rejectsWith(db.service.verifyApiKey(live.token, { scopes: ["orders:*"] }), "invalid_data", /required scope/);
    await rejectsWith(db.service.verifyApiKey(live.token, { cost: -1 }), "invalid_data", /'cost'/);
    await rejectsWith(db.service.verifyApiKey(live.token, { type: "admin" } as never), "invalid_data", /'type'/);
  });

  it("records last use only for valid verifications", async () => {
    const key = await secret({ scopes: ["a:read"] });
    await db.service.verifyApiKey(key.token, { scopes: ["b:read"] });
    const other = await db.open();
    await db.service.close();
    assert.equal((await other.retrieveApiKey(key.id)).last_used_at, null, "a forbidden verification is no use");
    const third = await db.open();
    db.clock.advance(1000);
    assert.equal((await third.verifyApiKey(key.token, { scopes: ["a:read"] })).code, "valid");
    await third.close();
    assert.equal((await other.retrieveApiKey(key.id)).last_used_at?.getTime(), db.clock.now().getTime());
  });

  it("refuses a cached key from the instant it expires, and after an update shortens its life", async () => {
    const t = db.clock.now().getTime();
    const key = await secret({ expires_at: new Date(t + 60_000) });
    assert.ok(await db.service.authenticate(key.token), "now in the memory tier");
    db.clock.advance(59_999);
    assert.ok(await db.service.authenticate(key.token));
    db.clock.advance(1);
    assert.equal(await db.service.authenticate(key.token), false);

    const other = await secret({ expires_at: new Date(t + 600_000) });
    assert.ok(await db.service.authenticate(other.token));
    await db.service.updateApiKeys(other.id, { expires_at: new Date(db.clock.now().getTime() + 1000) });
    db.clock.advance(1000);
    assert.equal((await db.service.verifyApiKey(other.token)).code, "expired");
  });

  it("rolls a key into a successor with every policy field", async () => {
    const policy = {
      expires_at: new Date(db.clock.now().getTime() + 3_600_000),
      scopes: ["orders:read"],
      owner_id: "org_9",
      metadata: { k: "v" },
      rate_limits: [{ name: "burst", limit: 5, duration: 1 }],
      remaining: 3,
      refill: { amount: 3, interval: "month" as const },
    };
    const old = await secret(policy);
    const successor = await db.service.roll(old.id, { revoked_by: "u" });
    for (const [field, value] of Object.entries(policy)) assert.deepEqual(successor[field as keyof ApiKeyDTO], value, field);
    assert.deepEqual((await db.service.verifyApiKey(successor.token, { scopes: ["orders:read"] })).code, "valid");
    const expiring = await secret({ expires_in: 1 });
    db.clock.advance(1000);
    await rejectsWith(db.service.roll(expiring.id, { revoked_by: "u" }), "not_allowed", /has expired/);
  });

  it("soft-deletes and restores keys: hidden and refused meanwhile, working again after", async () => {
    const deletedEvents = collect(db.service, "api_key.soft_deleted");
    const restoredEvents = collect(db.service, "api_key.restored");
    const [a, b] = [await secret(), await secret({ expires_in: 60 })];
    assert.ok(await db.service.authenticate(a.token), "cached");
    assert.deepEqual(await db.service.softDeleteApiKeys([b.id, "apk_unknown", a.id, a.id]), { api_key_id: [b.id, a.id] });
    assert.deepEqual(deletedEvents.map((event) => event.id).sort(), [a.id, b.id].sort());
    assert.equal(deletedEvents[0]!.deleted_at.getTime(), db.clock.now().getTime());
    assert.deepEqual(await db.service.verifyApiKey(a.token), { valid: false, code: "not_found" });
    assert.deepEqual(await db.service.listApiKeys(), []);
    await rejectsWith(db.service.retrieveApiKey(a.id), "not_found");
    const hidden = await db.service.retrieveApiKey(a.id, { withDeleted: true });
    assert.equal(hidden.deleted_at?.getTime(), db.clock.now().getTime());
    assert.deepEqual(await db.service.softDeleteApiKeys(a.id), { api_key_id: [] }, "already soft-deleted");

    db.clock.advance(60_000);
    assert.deepEqual(await db.service.restoreApiKeys([a.id, b.id, "apk_unknown"]), { api_key_id: [a.id, b.id] });
    assert.deepEqual(restoredEvents.map((event) => event.id).sort(), [a.id, b.id].sort());
    assert.ok(await db.service.authenticate(a.token), "restored");
    assert.equal((await db.service.verifyApiKey(b.token)).code, "expired", "expired while deleted");
    assert.equal((await db.service.retrieveApiKey(a.id)).deleted_at, null);
    assert.deepEqual(await db.service.restoreApiKeys(a.id), { api_key_id: [] }, "not soft-deleted");
    assert.deepEqual(await db.service.softDeleteApiKeys([]), { api_key_id: [] });
    await rejectsWith(db.service.softDeleteApiKeys([""]), "invalid_data");
  });
});

forEachBackend(
  "key policy with Redis",
  (db) => {
    const shared = redisPerTest();
    const BOUND_MS = 100;

    it("never keeps a Redis entry past the key's expires_at", async () => {
      const service = await db.open({ redis: REDIS_URL, cache: { redisPrefix: shared.prefix } });
      const key = await service.createApiKeys({ title: "k", type: "secret", created_by: "u", expires_in: 5 });
      assert.ok(await service.authenticate(key.token));
      const ttl = await shared.client.pttl(`${shared.prefix}key:${hashToken(key.token)}`);
      assert.ok(ttl > 0 && ttl <= 5000, `entry TTL ${ttl} ms, key expires in 5000 ms`);
    });

    it(`a soft delete through one instance is seen by another within ${BOUND_MS} ms, and a restore too`, async () => {
      const a = await db.open({ redis: REDIS_URL, cache: { redisPrefix: shared.prefix } });
      const b = await db.open({ redis: REDIS_URL, cache: { redisPrefix: shared.prefix } });
      const key = await a.createApiKeys({ title: "k", type: "secret", created_by: "u" });
      assert.ok((await a.authenticate(key.token)) && (await b.authenticate(key.token)), "both warm");
      const within = async (check: () => Promise<boolean>, label: string) => {
        const start = performance.now();
        while (!(await check())) {
          if (performance.now() - start > BOUND_MS) assert.fail(`${label}: not seen within ${BOUND_MS} ms`);
          await sleep(1);
        }
      };
      await a.softDeleteApiKeys(key.id);
      assert.equal(await a.authenticate(key.token), false, "the deleting instance at once");
      await within(async () => (await b.authenticate(key.token)) === false, "soft delete");
      await a.restoreApiKeys(key.id);
      assert.ok(await a.authenticate(key.token), "the restoring instance at once");
      await within(async () => (await b.authenticate(key.token)) !== false, "restore");
    });
  },
  ["postgres", "sqlite"],
);

// Numbers mean what they say on every store: quotas up to 2^53 - 1 held and counted exactly,
// anything larger refused as bad input, and the bounds of rate limits enforced.
import assert from "node:assert/strict";
import request from "supertest";
import { MAX_LEASE } from "../../lib/quota-leases";
import { forEachBackend } from "../helpers/backends";
import { createAdminApp } from "../helpers/create-app";

const MAX = Number.MAX_SAFE_INTEGER;
const DAY_MS = 86_400_000;

forEachBackend("numbers at their edges", (db) => {
  const secret = (policy: object) => db.service.createApiKeys({ title: "k", type: "secret", created_by: "u", ...policy });

  it("holds and decrements a quota of 2^53 - 1 exactly", async () => {
    const key = await secret({ remaining: MAX });
    assert.equal((await db.service.retrieveApiKey(key.id)).remaining, MAX);
    // An instance of its own: it leases units (MAX_LEASE of them here) and gives back what it did not spend when it closes.
    const instance = await db.open();
    const used = await instance.verifyApiKey(key.token, { cost: 2 });
    assert.deepEqual([used.code, used.remaining], ["valid", MAX - 2]);
    assert.equal((await db.service.retrieveApiKey(key.id)).remaining, MAX - MAX_LEASE, "a lease is taken from the row");
    await instance.close();
    assert.equal((await db.service.retrieveApiKey(key.id)).remaining, MAX - 2, "and what was not spent is back, exactly");
    await db.service.updateApiKeys(key.id, { remaining: MAX - 1 });
    assert.equal((await db.service.retrieveApiKey(key.id)).remaining, MAX - 1);
  });

  it("refills a quota to 2^53 - 1, and every later use works", async () => {
    const key = await secret({ remaining: 0, refill: { amount: MAX, interval: "day" } });
    assert.equal((await db.service.verifyApiKey(key.token)).code, "usage_exceeded");
    db.clock.advance(DAY_MS);
    const first = await db.service.verifyApiKey(key.token);
    assert.deepEqual([first.code, first.remaining], ["valid", MAX - 1]);
    const second = await db.service.verifyApiKey(key.token);
    assert.deepEqual([second.code, second.remaining], ["valid", MAX - 2]);
  });

  it("refuses 2^53 and beyond as bad input, in the service and over HTTP, changing nothing", async () => {
    await assert.rejects(secret({ remaining: MAX + 1 }), { type: "invalid_data" });
    await assert.rejects(secret({ remaining: 0, refill: { amount: 2 ** 60, interval: "month" } }), { type: "invalid_data" });
    const key = await secret({ remaining: 5 });
    await assert.rejects(db.service.updateApiKeys(key.id, { remaining: MAX + 1 }), { type: "invalid_data" });
    const app = createAdminApp("express5", db.service);
    const root = await secret({});
    const res = await request(app).post(`/admin/api-keys/${key.id}`).set("Authorization", `Basic ${Buffer.from(`${root.token}:`).toString("base64")}`).send({ remaining: 2 ** 53 });
    assert.deepEqual([res.status, res.body.type], [400, "invalid_data"], res.text);
    assert.equal((await db.service.retrieveApiKey(key.id)).remaining, 5);
  });

  it("takes at most 10 rate limits, names of at most 64 characters, and windows of at most 366 days", async () => {
    const rule = (i: number, duration = 60) => ({ name: `w${i}`, limit: 1, duration });
    const ten = Array.from({ length: 10 }, (_, i) => rule(i));
    assert.equal((await secret({ rate_limits: ten })).rate_limits.length, 10);
    await assert.rejects(secret({ rate_limits: [...ten, rule(10)] }), { type: "invalid_data", message: /at most 10/ });
    assert.equal((await secret({ rate_limits: [{ name: "n".repeat(64), limit: 1, duration: 1 }] })).rate_limits[0]!.name.length, 64);
    await assert.rejects(secret({ rate_limits: [{ name: "n".repeat(65), limit: 1, duration: 1 }] }), { type: "invalid_data" });
    assert.equal((await secret({ rate_limits: [rule(0, 366 * 86_400)] })).rate_limits[0]!.duration, 366 * 86_400);
    await assert.rejects(secret({ rate_limits: [rule(0, 366 * 86_400 + 1)] }), { type: "invalid_data" });
  });
});

// Usage quotas through leases (lib/quota-leases.ts): two service instances on one database
// share a large quota with a database write per lease, not per use, and never admit more than
// the quota; what they leased and did not spend goes back when they close.
import assert from "node:assert/strict";
import { MAX_LEASE, leaseSize } from "../../lib/quota-leases";
import { forEachBackend } from "../helpers/backends";

forEachBackend("usage quotas through leases", (db) => {
  it("two instances admit at most the quota, write once per lease, and give back what they did not spend", async function () {
    this.timeout(60_000);
    // A large quota: leases of 1 % of what is left (at most MAX_LEASE units), so a handful of writes.
    const large = await db.service.createApiKeys({ title: "metered", type: "secret", created_by: "u", remaining: 100_000 });
    // A small one, run past its end: leases shrink to single units, and nothing more is admitted.
    const small = await db.service.createApiKeys({ title: "small", type: "secret", created_by: "u", remaining: 150 });
    const [a, b] = [await db.open({ redis: false }), await db.open({ redis: false })];
    const run = (token: string, uses: number) => db.countQueries(() => Promise.all(Array.from({ length: uses }, (_, i) => (i % 2 ? a : b).verifyApiKey(token))));
    const quotaWrites = (queries: string[]) => queries.filter((sql) => /^update/i.test(sql) && sql.includes("remaining")).length;

    const many = await run(large.token, 1100);
    assert.ok(many.result.every((answer) => answer.valid));
    assert.ok(quotaWrites(many.queries) <= 10, `${quotaWrites(many.queries)} quota writes for 1100 uses`);

    const past = await run(small.token, 300);
    const admitted = past.result.filter((answer) => answer.valid).length;
    assert.ok(admitted <= 150, `${admitted} admitted of 150`);
    assert.ok(past.result.every((answer) => answer.valid || answer.code === "usage_exceeded"));

    await a.close();
    await b.close();
    assert.equal((await db.service.retrieveApiKey(large.id)).remaining, 100_000 - 1100, "every unit leased and not spent is back");
    assert.equal((await db.service.retrieveApiKey(small.id)).remaining! + admitted, 150);
  });

  it("an edit of the quota takes effect: units leased before it are not spent against the new value", async function () {
    this.timeout(30_000);
    const key = await db.service.createApiKeys({ title: "edited", type: "secret", created_by: "u", remaining: 5000 });
    assert.equal((await db.service.verifyApiKey(key.token)).remaining, 4999);
    assert.equal(leaseSize(5000, 1), 50);
    // An edit at a later instant than the lease (a key's version is its updated_at).
    db.clock.advance(1000);
    await db.service.updateApiKeys(key.id, { remaining: 2 });
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push(await db.service.verifyApiKey(key.token));
    assert.deepEqual(answers.map((answer) => answer.code), ["valid", "valid", "usage_exceeded", "usage_exceeded"]);
    assert.ok(MAX_LEASE >= 50);
  });
});

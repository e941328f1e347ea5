// consumeQuota, the store's half of usage quotas, on every SQL backend and on the in-memory
// example store: exact under concurrency from two store instances, refills once per UTC day or
// month (with an injected clock), and nothing taken when refused.
import assert from "node:assert/strict";
import type { Knex } from "knex";
import { MemoryApiKeyStore } from "../../testing/memory-store";
import { initialize } from "../../setup/initialize";
import type { QuotaRefill } from "../../lib/quota";
import type { ApiKeyService } from "../../lib/service";
import type { ApiKeyStore } from "../../lib/store";
import { KnexApiKeyStore } from "../../store/knex-store";
import { TestClock, forEachBackend } from "../helpers/backends";
import { connectMariadb, connectPostgres } from "../helpers/services";

interface QuotaFixture {
  /** Two store instances on the same data, as two app instances would have. */
  stores(): [ApiKeyStore, ApiKeyStore];
  clock(): TestClock;
  /** A new key with this quota, created at the clock's time. */
  keyWith(remaining: number | null): Promise<string>;
  /** The quota as stored. */
  stored(id: string): Promise<number | null>;
  softDelete(id: string): Promise<void>;
}

const MS_PER_DAY = 86_400_000;

/** Milliseconds from `now` to the next UTC midnight. */
function untilMidnight(now: Date): number {
  return Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1) - now.getTime();
}

function quotaTests(fixture: QuotaFixture): void {
  const consume = (store: ApiKeyStore, id: string, cost = 1, refill?: QuotaRefill) => store.consumeQuota!(id, cost, fixture.clock().now(), refill);

  it("300 concurrent uses against a quota of 100 from two store instances admit exactly 100", async function () {
    this.timeout(120_000);
    const id = await fixture.keyWith(100);
    const [a, b] = fixture.stores();
    const results = await Promise.all(Array.from({ length: 300 }, (_, i) => consume(i % 2 ? a : b, id)));
    assert.equal(results.filter((result) => result.admitted).length, 100);
    // Every admitted use saw a different quota left: none was counted twice.
    const left = results.filter((result) => result.admitted).map((result) => result.remaining);
    assert.equal(new Set(left).size, 100);
    assert.deepEqual(results.find((result) => !result.admitted), { admitted: false, remaining: 0, refilled: false });
    assert.equal(await fixture.stored(id), 0);
  });

  it("a cost above what is left is refused and takes nothing; a cost that fits takes it all", async () => {
    const id = await fixture.keyWith(5);
    const [store] = fixture.stores();
    assert.deepEqual(await consume(store, id, 3), { admitted: true, remaining: 2, refilled: false });
    assert.deepEqual(await consume(store, id, 3), { admitted: false, remaining: 2, refilled: false });
    assert.deepEqual(await consume(store, id, 2), { admitted: true, remaining: 0, refilled: false });
    assert.equal(await fixture.stored(id), 0);
  });

  it("a key with no quota is admitted and nothing is written; unknown and soft-deleted keys are refused", async () => {
    const [store] = fixture.stores();
    const unlimited = await fixture.keyWith(null);
    assert.deepEqual(await consume(store, unlimited), { admitted: true, remaining: null, refilled: false });
    assert.equal(await fixture.stored(unlimited), null);
    assert.equal((await consume(store, "apk_unknown")).admitted, false);
    const deleted = await fixture.keyWith(10);
    await fixture.softDelete(deleted);
    assert.equal((await consume(store, deleted)).admitted, false);
  });

  it("a daily refill sets the quota back once, at the first use of the next UTC day, from either instance", async () => {
    const refill: QuotaRefill = { amount: 5, interval: "day" };
    const id = await fixture.keyWith(2);
    const [a, b] = fixture.stores();
    // The creation counts as the day's refill: the initial quota is used first.
    assert.deepEqual(await consume(a, id, 1, refill), { admitted: true, remaining: 1, refilled: false });
    assert.deepEqual(await consume(b, id, 1, refill), { admitted: true, remaining: 0, refilled: false });
    assert.equal((await consume(a, id, 1, refill)).admitted, false);
    fixture.clock().advance(untilMidnight(fixture.clock().now()) - 1);
    assert.equal((await consume(a, id, 1, refill)).admitted, false, "still the same day");
    fixture.clock().advance(1);
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => consume(i % 2 ? a : b, id, 1, refill)));
    assert.equal(results.filter((result) => result.refilled).length, 1);
    assert.equal(results.filter((result) => result.admitted).length, 5);
    assert.equal(await fixture.stored(id), 0);
    fixture.clock().advance(MS_PER_DAY);
    assert.deepEqual(await consume(b, id, 2, refill), { admitted: true, remaining: 3, refilled: true });
  });

  it("returnQuota gives back leased units, unless the key was edited or refilled since they were taken", async () => {
    const [store] = fixture.stores();
    if (!store.returnQuota) return;
    const versionOf = async (id: string) => (await store.find({ kind: "compare", field: "id", op: "=", value: id }, { order: [["id", "asc"]], withDeleted: true }))[0]!.updated_at;
    const id = await fixture.keyWith(10);
    const takenAt = fixture.clock().now();
    await consume(store, id, 6);
    await store.returnQuota(id, 2, takenAt, await versionOf(id));
    assert.equal(await fixture.stored(id), 6);
    const edited = new Date((await versionOf(id)).getTime() + 1000);
    await store.update([id], { updated_at: edited });
    await store.returnQuota(id, 2, takenAt, new Date(edited.getTime() - 1000));
    assert.equal(await fixture.stored(id), 6, "an edit since: the units are not added to what was set");

    const daily: QuotaRefill = { amount: 5, interval: "day" };
    const refilled = await fixture.keyWith(5);
    const leasedAt = fixture.clock().now();
    await consume(store, refilled, 3, daily);
    fixture.clock().advance(untilMidnight(fixture.clock().now()));
    assert.deepEqual(await consume(store, refilled, 1, daily), { admitted: true, remaining: 4, refilled: true });
    await store.returnQuota(refilled, 2, leasedAt, await versionOf(refilled));
    assert.equal(await fixture.stored(refilled), 4, "refilled since: yesterday's units stay gone");
  });

  it("a monthly refill waits for the first of the next UTC month", async () => {
    const refill: QuotaRefill = { amount: 3, interval: "month" };
    const id = await fixture.keyWith(1);
    const [store] = fixture.stores();
    assert.deepEqual(await consume(store, id, 1, refill), { admitted: true, remaining: 0, refilled: false });
    const now = fixture.clock().now();
    const nextMonth = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1);
    fixture.clock().advance(nextMonth - now.getTime() - 1);
    assert.deepEqual(await consume(store, id, 1, refill), { admitted: false, remaining: 0, refilled: false });
    fixture.clock().advance(1);
    assert.deepEqual(await consume(store, id, 1, refill), { admitted: true, remaining: 2, refilled: true });
    assert.deepEqual(await consume(store, id, 1, refill), { admitted: true, remaining: 1, refilled: false });
  });
}

forEachBackend("consumeQuota", (db) => {
  let second: Knex | undefined;
  let stores: [ApiKeyStore, ApiKeyStore];
  before(async function () {
    // A second connection pool where the backend is a server, so the two instances race for real.
    if (db.name === "postgres") second = await connectPostgres(this);
    if (db.name === "mariadb") second = await connectMariadb(this);
  });
  after(async () => {
    await second?.destroy();
  });
  beforeEach(() => {
    stores = [new KnexApiKeyStore(db.knex, db.schema), new KnexApiKeyStore(second ?? db.knex, db.schema)];
  });
  quotaTests({
    stores: () => stores,
    clock: () => db.clock,
    async keyWith(remaining) {
      const key = await db.service.createApiKeys({ title: "quota", type: "secret", created_by: "u" });
      await db.table("api_key").where({ id: key.id }).update({ remaining });
      return key.id;
    },
    async stored(id) {
      const row = (await db.table("api_key").select("remaining").where({ id }).first()) as { remaining: number | string | null };
      return row.remaining === null ? null : Number(row.remaining);
    },
    async softDelete(id) {
      await db.table("api_key").where({ id }).update({ deleted_at: db.clock.now() });
    },
  });
});

describe("consumeQuota [memory store]", () => {
  let memory: MemoryApiKeyStore;
  let service: ApiKeyService;
  let clock: TestClock;
  beforeEach(async () => {
    clock = new TestClock();
    memory = new MemoryApiKeyStore();
    service = await initialize({ store: memory, now: clock.now, redis: false });
  });
  afterEach(() => service.close());
  quotaTests({
    // One store object is shared state already; two references race through its lock.
    stores: () => [memory, memory],
    clock: () => clock,
    async keyWith(remaining) {
      const key = await service.createApiKeys({ title: "quota", type: "secret", created_by: "u" });
      await memory.update([key.id], { remaining });
      return key.id;
    },
    async stored(id) {
      const [record] = await memory.find({ kind: "and", items: [{ kind: "in", field: "id", values: [id], negated: false }] }, { order: [["id", "asc"]], withDeleted: true });
      return (record as { remaining?: number | null } | undefined)?.remaining ?? null;
    },
    async softDelete(id) {
      await memory.update([id], { deleted_at: clock.now() });
    },
  });
});

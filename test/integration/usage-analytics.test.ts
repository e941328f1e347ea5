// Verification analytics: every verification counted per key, hour and code in memory, written
// in batches that add up, so that the counts of every instance sum exactly.
import assert from "node:assert/strict";
import type { ApiKeyService } from "../../lib/service";
import { KnexApiKeyStore } from "../../store/knex-store";
import { VERIFY_CODES, type VerifyCode, type VerifyOptions } from "../../lib/types";
import type { UsageRow } from "../../lib/usage-analytics";
import { rejectsWith } from "../helpers/assertions";
import { forEachBackend } from "../helpers/backends";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** Rows as getUsage answers them, built from counts of (key, bucket start, code). */
function rowsOf(expected: Map<string, number>, size: number): UsageRow[] {
  const rows = new Map<string, UsageRow>();
  for (const [name, count] of expected) {
    const [key, hour, code] = name.split("|") as [string, string, VerifyCode];
    const time = new Date(Math.floor(Number(hour) / size) * size).toISOString();
    const row = rows.get(`${time}|${key}`) ?? { key_id: key === "" ? null : key, time, ...(Object.fromEntries(VERIFY_CODES.map((c) => [c, 0])) as Record<VerifyCode, number>) };
    row[code] += count;
    rows.set(`${time}|${key}`, row);
  }
  return [...rows.values()].sort((a, b) => a.time.localeCompare(b.time) || (a.key_id ?? "").localeCompare(b.key_id ?? ""));
}

forEachBackend("verification analytics", (db) => {
  it("counts a known mix from two instances exactly, by hour and by day, once they close", async () => {
    // Flushes only at close(): every count must survive until then and be written once.
    const [a, b] = [await db.open({ lastUsedFlushInterval: 3_600_000 }), await db.open({ lastUsedFlushInterval: 3_600_000 })];
    const expected = new Map<string, number>();
    const verify = async (service: ApiKeyService, token: string, code: VerifyCode, keyId: string | null, options?: VerifyOptions) => {
      const result = await service.verifyApiKey(token, options);
      assert.equal(result.code, code, `${token.slice(0, 8)}: ${code}`);
      const hour = Math.floor(db.clock.now().getTime() / HOUR) * HOUR;
      const name = `${keyId ?? ""}|${hour}|${code}`;
      expected.set(name, (expected.get(name) ?? 0) + 1);
    };
    const create = (extra: object = {}) => db.service.createApiKeys({ title: "k", type: "secret", created_by: "u", ...extra });
    const valid = await create({ scopes: ["orders:read"] });
    const revoked = await create();
    await db.service.revoke(revoked.id, { revoked_by: "u" });
    const expiring = await create({ expires_at: new Date(db.clock.now().getTime() + 1000) });
    const limited = await create({ rate_limits: [{ name: "hour", limit: 1, duration: 3600 }] });
    const quota = await create({ remaining: 1 });
    const unknown = await db.unissuedToken("secret");
    db.clock.advance(2000);

    for (const round of [0, 1]) {
      for (const service of [a, b]) {
        for (let i = 0; i < 3; i++) await verify(service, valid.token, "valid", valid.id);
        await verify(service, valid.token, "forbidden", valid.id, { scopes: ["orders:write"] });
        await verify(service, revoked.token, "revoked", revoked.id);
        await verify(service, expiring.token, "expired", expiring.id);
        await verify(service, unknown, "not_found", null);
        await verify(service, "sk_not-even-a-token", "not_found", null);
      }
      if (round === 0) {
        await verify(a, limited.token, "valid", limited.id);
        await verify(a, limited.token, "rate_limited", limited.id);
        await verify(b, quota.token, "valid", quota.id);
        await verify(a, quota.token, "usage_exceeded", quota.id);
      }
      db.clock.advance(HOUR);
    }
    assert.deepEqual(await db.service.getUsage({ from: new Date(0) }), [], "nothing is written before a flush");
    await Promise.all([a.close(), b.close()]);

    const all = { from: new Date(db.clock.now().getTime() - 3 * HOUR) };
    assert.deepEqual(await db.service.getUsage(all), rowsOf(expected, HOUR));
    assert.deepEqual(await db.service.getUsage({ ...all, granularity: "day" }), rowsOf(expected, DAY));
    const ofValid = new Map([...expected].filter(([name]) => name.startsWith(`${valid.id}|`)));
    assert.deepEqual(await db.service.getUsage({ ...all, key_id: valid.id }), rowsOf(ofValid, HOUR));
  });

  it("adds what several flushes and instances write for the same hour", async () => {
    const key = await db.service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
    for (let run = 0; run < 3; run++) {
      const service = await db.open();
      for (let i = 0; i <= run; i++) await service.verifyApiKey(key.token);
      await service.close();
    }
    const [row, ...rest] = await db.service.getUsage({ key_id: key.id });
    assert.equal(rest.length, 0);
    assert.equal(row!.valid, 6);
    assert.equal(row!.time, new Date(Math.floor(db.clock.now().getTime() / HOUR) * HOUR).toISOString());
  });

  it("answers an owner's keys, a range, and refuses malformed queries", async () => {
    const mine = await db.service.createApiKeys({ title: "mine", type: "secret", created_by: "u", owner_id: "org_1" });
    const theirs = await db.service.createApiKeys({ title: "theirs", type: "secret", created_by: "u", owner_id: "org_2" });
    const service = await db.open();
    await service.verifyApiKey(mine.token);
    db.clock.advance(2 * HOUR);
    await service.verifyApiKey(mine.token);
    await service.verifyApiKey(theirs.token);
    await service.close();
    const owned = await db.service.getUsage({ owner_id: "org_1" });
    assert.deepEqual(owned.map((row) => [row.key_id, row.valid]), [[mine.id, 1], [mine.id, 1]]);
    const lastHour = await db.service.getUsage({ owner_id: "org_1", from: new Date(db.clock.now().getTime() - HOUR) });
    assert.deepEqual(lastHour.map((row) => row.time), [new Date(Math.floor(db.clock.now().getTime() / HOUR) * HOUR).toISOString()]);
    for (const bad of [
      "x",
      { key: mine.id },
      { granularity: "week" },
      { from: "yesterday" },
      { from: new Date(), to: new Date(0) },
      { key_id: 7 },
      { owner_id: "" },
    ]) {
      await rejectsWith(db.service.getUsage(bad as never), "invalid_data");
    }
  });

  it("deletes hours past the retention in the background", async () => {
    const key = await db.service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
    const service = await db.open({ usageRetentionDays: 1 });
    await service.verifyApiKey(key.token);
    await service.close();
    db.clock.advance(2 * DAY);
    const later = await db.open({ usageRetentionDays: 1 });
    await later.verifyApiKey(key.token);
    await later.close();
    const rows = await db.service.getUsage({ key_id: key.id, from: new Date(0) });
    assert.deepEqual(rows.map((row) => row.valid), [1], "the count from two days ago is gone");
  });

  it("keeps counts whose write failed and writes them with the next flush, while verifications go on", async () => {
    const key = await db.service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
    // The real store, whose first write of counts fails as a lost connection would.
    let failures = 1;
    const store = new KnexApiKeyStore(db.knex, db.schema);
    const recordUsage = store.recordUsage.bind(store);
    store.recordUsage = (counts) => (failures-- > 0 ? Promise.reject(new Error("connection lost")) : recordUsage(counts));
    const warnings: string[] = [];
    const logger = { warn: (message: string) => void warnings.push(message), error: () => {} };
    const service = await db.open({ database: undefined, store, schema: undefined, runMigrations: false, lastUsedFlushInterval: 20, logger });
    for (let i = 0; i < 5; i++) assert.equal((await service.verifyApiKey(key.token)).code, "valid");
    for (let i = 0; i < 100 && warnings.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.match(warnings.join("\n"), /could not write 1 verification counts; will retry/);
    assert.equal((await service.verifyApiKey(key.token)).code, "valid", "a failed write blocks no request");
    await service.close();
    assert.equal(failures, -1, "written again after the failure");
    const [row] = await db.service.getUsage({ key_id: key.id });
    assert.equal(row!.valid, 6);
  });

  it("counts nothing with usageAnalytics: false", async () => {
    const key = await db.service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
    const service = await db.open({ usageAnalytics: false });
    await service.verifyApiKey(key.token);
    await service.close();
    assert.deepEqual(await db.service.getUsage({ key_id: key.id }), []);
  });
});

import assert from "node:assert/strict";
import type { ApiKeyEvents } from "../../lib/events";
import type { ApiKeyService } from "../../lib/service";
import { forEachBackend } from "../helpers/backends";

forEachBackend("concurrency", (db) => {
  let other: ApiKeyService;
  beforeEach(async () => {
    other = await db.open();
  });
  const pick = (i: number) => (i % 2 ? other : db.service);

  it("concurrent revokes of one key: exactly one succeeds, and one event is sent", async () => {
    const key = await db.service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
    const events: ApiKeyEvents["api_key.revoked"][] = [];
    for (const service of [db.service, other]) service.on("api_key.revoked", (event) => void events.push(event));
    const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => pick(i).revoke(key.id, { revoked_by: `r${i}` })));
    const won = results.filter((result) => result.status === "fulfilled");
    assert.equal(won.length, 1);
    for (const lost of results.filter((result) => result.status === "rejected")) {
      assert.match(String(lost.reason.message), /already revoked/);
    }
    assert.equal(events.length, 1);
    assert.equal((await db.service.retrieveApiKey(key.id)).revoked_by, events[0]!.revoked_by);
  });

  it("concurrent rolls and revokes: every key has at most one successor, and no superseded key stays valid", async () => {
    const keys = await db.service.createApiKeys(
      Array.from({ length: 5 }, (_, i) => ({ title: `k${i}`, type: "publishable" as const, created_by: "u" })),
    );
    const rolled: ApiKeyEvents["api_key.rolled"][] = [];
    for (const service of [db.service, other]) service.on("api_key.rolled", (event) => void rolled.push(event));
    await Promise.allSettled(
      keys.flatMap((key, k) =>
        Array.from({ length: 6 }, (_, i) =>
          i % 3 === 0 ? pick(i + k).revoke(key.id, { revoked_by: "r" }) : pick(i + k).roll(key.id, { revoked_by: "r" }),
        ),
      ),
    );
    const successors = new Map<string, string[]>();
    for (const event of rolled) successors.set(event.id, [...(successors.get(event.id) ?? []), event.successor_id]);
    for (const [id, next] of successors) {
      assert.equal(next.length, 1, `${id} has ${next.length} successors`);
      assert.ok((await db.service.retrieveApiKey(id)).revoked_at, `${id} was superseded but is not revoked`);
    }
    // Every original key is revoked one way or the other; each successor exists and is live.
    for (const key of keys) assert.ok((await db.service.retrieveApiKey(key.id)).revoked_at);
    for (const [, [successor]] of successors) assert.equal((await db.service.retrieveApiKey(successor!)).revoked_at, null);
  });

  it("concurrent creates from two instances give distinct ids and tokens that all work", async () => {
    const created = await Promise.all(
      Array.from({ length: 40 }, (_, i) => pick(i).createApiKeys({ title: `k${i}`, type: "secret", created_by: "u" })),
    );
    assert.equal(new Set(created.map((key) => key.id)).size, 40);
    assert.equal(new Set(created.map((key) => key.token)).size, 40);
    for (const key of created) assert.ok(await pick(created.indexOf(key) + 1).authenticate(key.token));
  });

  it("last_used_at: flushes racing a shutdown lose nothing that was used before close()", async () => {
    const service = await db.open({ lastUsedFlushInterval: 5 });
    const keys = await service.createApiKeys(
      Array.from({ length: 20 }, (_, i) => ({ title: `k${i}`, type: "secret" as const, created_by: "u" })),
    );
    const usedBeforeClose = new Set<string>();
    for (let round = 0; round < 5; round++) {
      await Promise.all(
        keys.map(async (key) => {
          if (await service.authenticate(key.token)) usedBeforeClose.add(key.id);
        }),
      );
      db.clock.advance(10);
    }
    const stragglers = keys.map((key) => service.authenticate(key.token).catch(() => false));
    await service.close();
    await Promise.all(stragglers);
    const rows = await db.table("api_key").whereIn("id", [...usedBeforeClose]).select<{ id: string; last_used_at: Date | null }[]>("id", "last_used_at");
    assert.equal(rows.length, 20);
    for (const row of rows) assert.ok(row.last_used_at, `${row.id} lost its last use`);
  });
});

import assert from "node:assert/strict";
import fc from "fast-check";
import type { FilterableApiKeyProps } from "../../lib/types";
import { forEachBackend } from "../helpers/backends";
import { rejectsWith } from "../helpers/assertions";

forEachBackend("updateApiKeys", (db) => {
  it("renames by id and bumps updated_at", async () => {
    const key = await db.service.createApiKeys({ title: "old", type: "secret", created_by: "u" });
    db.clock.advance(5000);
    const updated = await db.service.updateApiKeys(key.id, { title: "new" });
    assert.equal(updated.title, "new");
    await assert.rejects(db.service.updateApiKeys(key.id, { title: "" }), { type: "invalid_data", message: "Field 'title' must not be empty" });
    assert.equal((await db.service.retrieveApiKey(key.id)).title, "new");
    assert.equal(updated.token, "");
    assert.ok(updated.updated_at > key.updated_at);
    assert.deepEqual(await db.service.retrieveApiKey(key.id), updated);
  });

  it("renames by selector and returns an array; no match gives []", async () => {
    await db.service.createApiKeys([
      { title: "a", type: "publishable", created_by: "u" },
      { title: "b", type: "publishable", created_by: "u" },
      { title: "c", type: "secret", created_by: "u" },
    ]);
    const updated = await db.service.updateApiKeys({ type: "publishable" }, { title: "store" });
    assert.deepEqual(updated.map((k) => k.title), ["store", "store"]);
    assert.deepEqual(await db.service.updateApiKeys({ title: "zzz" }, { title: "x" }), []);
    assert.deepEqual((await db.service.listApiKeys({}, { order: { title: "ASC" } })).map((k) => k.title), ["c", "store", "store"]);
  });

  it("takes an empty update, which changes nothing but updated_at", async () => {
    const key = await db.service.createApiKeys({ title: "old", type: "secret", created_by: "u" });
    db.clock.advance(1000);
    const updated = await db.service.updateApiKeys(key.id, {});
    assert.deepEqual(updated, { ...key, token: "", updated_at: new Date(key.created_at.getTime() + 1000) });
  });

  it("renames revoked keys too", async () => {
    const key = await db.service.createApiKeys({ title: "old", type: "secret", created_by: "u" });
    await db.service.revoke(key.id, { revoked_by: "u" });
    assert.equal((await db.service.updateApiKeys(key.id, { title: "renamed" })).title, "renamed");
  });

  it("rejects bad input and unknown ids, changing nothing", async () => {
    const key = await db.service.createApiKeys({ title: "old", type: "secret", created_by: "u" });
    await rejectsWith(db.service.updateApiKeys("apk_unknown", { title: "x" }), "not_found", 'ApiKey with id "apk_unknown" not found');
    await rejectsWith(db.service.updateApiKeys({}, { title: "x" }), "invalid_data", /empty selector/);
    await rejectsWith(db.service.updateApiKeys({ q: " " }, { title: "x" }), "invalid_data", /empty selector/);
    await rejectsWith(db.service.updateApiKeys(key.id, { title: "x", type: "publishable" } as never), "invalid_data", "Unrecognized fields: 'type'");
    await rejectsWith(db.service.updateApiKeys(key.id, { title: 7 } as never), "invalid_data", /for field 'title'/);
    await rejectsWith(db.service.updateApiKeys(5 as never, { title: "x" }), "invalid_data", /id or a selector/);
    await rejectsWith(db.service.updateApiKeys({ bogus: 1 } as never, { title: "x" }), "invalid_data", /unknown field/);
    assert.equal((await db.service.retrieveApiKey(key.id)).title, "old");
  });
});

forEachBackend("revoke", (db) => {
  it("revokes now: the key stops authenticating at once", async () => {
    const key = await db.service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
    const revoked = await db.service.revoke(key.id, { revoked_by: "admin" });
    assert.equal(revoked.revoked_by, "admin");
    assert.ok(revoked.revoked_at!.getTime() <= db.clock.now().getTime());
    assert.equal(revoked.token, "");
    assert.equal(await db.service.authenticate(key.token), false);
  });

  it("schedules with revoke_in: valid until that instant, never after", async () => {
    const key = await db.service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
    const start = db.clock.now().getTime();
    const revoked = await db.service.revoke(key.id, { revoked_by: "admin", revoke_in: 60 });
    const at = revoked.revoked_at!.getTime();
    assert.ok(at >= start + 60_000 && at <= start + 61_000, "revoked_at is 60 s ahead");
    db.clock.advance(at - db.clock.now().getTime() - 1);
    assert.notEqual(await db.service.authenticate(key.token), false, "1 ms before the instant");
    db.clock.advance(1);
    assert.equal(await db.service.authenticate(key.token), false, "at the instant");
    db.clock.advance(10_000);
    assert.equal(await db.service.authenticate(key.token), false, "after the instant");
  });

  it("counts whole seconds; zero, negative or absent means now", async () => {
    const keys = await db.service.createApiKeys(
      ["a", "b", "c", "d"].map((title) => ({ title, type: "secret" as const, created_by: "u" })),
    );
    const now = db.clock.now().getTime();
    const fraction = await db.service.revoke(keys[0]!.id, { revoked_by: "u", revoke_in: 1.9 });
    assert.ok(Math.abs(fraction.revoked_at!.getTime() - (now + 1000)) < 500);
    for (const [key, revokeIn] of [[keys[1]!, 0], [keys[2]!, -30], [keys[3]!, undefined]] as const) {
      const revoked = await db.service.revoke(key.id, { revoked_by: "u", revoke_in: revokeIn });
      assert.ok(Math.abs(revoked.revoked_at!.getTime() - now) < 500);
    }
  });

  it("refuses to revoke an already revoked key of either type, in the reference's words", async () => {
    const [secret, publishable] = await db.service.createApiKeys([
      { title: "s", type: "secret", created_by: "u" },
      { title: "p", type: "publishable", created_by: "u" },
    ]);
    await db.service.revoke(secret!.id, { revoked_by: "u" });
    await db.service.revoke(publishable!.id, { revoked_by: "u" });
    db.clock.advance(1000);
    await rejectsWith(db.service.revoke(secret!.id, { revoked_by: "u" }), "invalid_data", "There are 1 secret keys that are already revoked.");
    // The reference let a publishable key be revived by a second revoke with revoke_in.
    await rejectsWith(
      db.service.revoke(publishable!.id, { revoked_by: "u", revoke_in: 3600 }),
      "invalid_data",
      "There are 1 publishable keys that are already revoked.",
    );
    await rejectsWith(db.service.revoke({ title: ["s", "p"] }, { revoked_by: "u" }), "invalid_data", "There are 2 keys that are already revoked.");
  });

  it("lets a scheduled revocation be brought forward but never pushed back", async () => {
    const key = await db.service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
    const first = await db.service.revoke(key.id, { revoked_by: "a", revoke_in: 60 });
    const later = await db.service.revoke(key.id, { revoked_by: "b", revoke_in: 3600 });
    assert.deepEqual([later.revoked_at, later.revoked_by], [first.revoked_at, "a"]);
    const sooner = await db.service.revoke(key.id, { revoked_by: "c" });
    assert.ok(sooner.revoked_at! < first.revoked_at!);
    assert.equal(sooner.revoked_by, "c");
    assert.equal(await db.service.authenticate(key.token), false);
  });

  it("revokes by selector, returning an array; no match gives []", async () => {
    await db.service.createApiKeys([
      { title: "a", type: "publishable", created_by: "u" },
      { title: "b", type: "publishable", created_by: "u" },
      { title: "c", type: "secret", created_by: "u" },
    ]);
    const revoked = await db.service.revoke({ type: "publishable" }, { revoked_by: "u" });
    assert.deepEqual(revoked.map((k) => [k.title, k.revoked_by]), [["a", "u"], ["b", "u"]]);
    assert.deepEqual(await db.service.revoke({ title: "nothing" }, { revoked_by: "u" }), []);
    assert.equal((await db.service.listApiKeys({ revoked_at: null })).length, 1);
  });

  it("validates in the reference's order and words, changing nothing", async () => {
    const key = await db.service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
    await rejectsWith(db.service.revoke(key.id, {} as never), "invalid_data", "You must provide a revoked_by field when revoking a key.");
    await rejectsWith(db.service.revoke("apk_missing", { revoked_by: "u" }), "not_found", 'ApiKey with id "apk_missing" not found');
    await rejectsWith(db.service.revoke(key.id, { revoked_by: "u", revoke_in: "60" } as never), "invalid_data", "Expected type: 'number' for field 'revoke_in', got: '60'");
    await rejectsWith(db.service.revoke(key.id, { revoked_by: "u", revoke_in: Number.NaN }), "invalid_data", /revoke_in/);
    await rejectsWith(db.service.revoke(key.id, { revoked_by: "u", revoke_in: 1e300 }), "invalid_data", /too large/);
    await rejectsWith(db.service.revoke(key.id, { revoked_by: 5 } as never), "invalid_data", /revoked_by/);
    await rejectsWith(db.service.revoke(key.id, { revoked_by: "u", why: "x" } as never), "invalid_data", "Unrecognized fields: 'why'");
    await rejectsWith(db.service.revoke({}, { revoked_by: "u" }), "invalid_data", /empty selector/);
    assert.equal((await db.service.retrieveApiKey(key.id)).revoked_at, null);
  });
});

forEachBackend("deleteApiKeys", (db) => {
  it("refuses keys that are not revoked, naming them, and deletes nothing", async () => {
    const [a, b, c] = await db.service.createApiKeys(
      ["a", "b", "c"].map((title) => ({ title, type: "secret" as const, created_by: "u" })),
    );
    await db.service.revoke(c!.id, { revoked_by: "u" });
    await rejectsWith(
      db.service.deleteApiKeys([a!.id, b!.id, c!.id]),
      "not_allowed",
      `Cannot delete api keys that are not revoked - ${a!.id}, ${b!.id}`,
    );
    assert.equal((await db.service.listApiKeys()).length, 3);
  });

  it("refuses a key whose revocation is only scheduled, until the instant passes", async () => {
    const key = await db.service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
    await db.service.revoke(key.id, { revoked_by: "u", revoke_in: 30 });
    await rejectsWith(db.service.deleteApiKeys(key.id), "not_allowed", /not revoked/);
    db.clock.advance(31_000);
    await db.service.deleteApiKeys(key.id);
    await rejectsWith(db.service.retrieveApiKey(key.id), "not_found");
  });

  it("deletes revoked keys for good with their links, and skips unknown ids", async () => {
    const key = await db.service.createApiKeys({ title: "k", type: "publishable", created_by: "u" });
    await db.service.updateLinks(key.id, { add: ["sc_1", "sc_2"] });
    await db.service.revoke(key.id, { revoked_by: "u" });
    await db.service.deleteApiKeys([key.id, "apk_unknown"]);
    await db.service.deleteApiKeys([]);
    await rejectsWith(db.service.retrieveApiKey(key.id), "not_found");
    const links = await db.table("api_key_link").count({ n: "*" });
    assert.equal(Number(links[0]!.n), 0);
  });

  it("rejects ids that are not strings", async () => {
    await rejectsWith(db.service.deleteApiKeys([5] as never), "invalid_data", /string id/);
    await rejectsWith(db.service.deleteApiKeys({ id: "x" } as never), "invalid_data", /string id/);
  });
});

forEachBackend("selectors that match every key in disguise", (db) => {
  const DISGUISED: unknown[] = [
    {},
    { q: "  " },
    { $or: [{}] },
    { id: { $nin: [] } },
    { $and: [{ $or: [{}] }] },
    { id: { $not: { $in: [] } } },
    { $or: [{ title: "a" }, {}] },
    { $or: [{ title: "a" }, { type: { $nin: [] } }] },
    { title: { $not: { $not: { $nin: [] } } } },
    { id: { $exists: true } },
    { title: { $ne: null } },
    { deleted_at: null },
    { created_by: { $like: "%" } },
    { $or: [{ revoked_at: null }, { revoked_at: { $exists: true } }] },
  ];

  it("refuses every one for updateApiKeys and revoke, changing nothing", async () => {
    await db.service.createApiKeys([
      { title: "a", type: "secret", created_by: "u" },
      { title: "b", type: "publishable", created_by: "u" },
    ]);
    const before = await db.service.listApiKeys();
    for (const selector of DISGUISED) {
      const label = JSON.stringify(selector);
      await rejectsWith(db.service.updateApiKeys(selector as never, { title: "x" }), "invalid_data", /would match every key/).catch((error: Error) => {
        throw new Error(`updateApiKeys(${label}): ${error.message}`);
      });
      await rejectsWith(db.service.revoke(selector as never, { revoked_by: "u" }), "invalid_data", /would match every key/).catch((error: Error) => {
        throw new Error(`revoke(${label}): ${error.message}`);
      });
    }
    assert.deepEqual(await db.service.listApiKeys(), before);
  });

  it("accepts selectors that can match nothing, and changes nothing", async () => {
    await db.service.createApiKeys({ title: "a", type: "secret", created_by: "u" });
    const before = await db.service.listApiKeys();
    for (const selector of [{ id: { $in: [] } }, { title: { $not: { $nin: [] } } }, { $or: [{ id: [] }, { deleted_at: { $exists: true } }] }]) {
      assert.deepEqual(await db.service.updateApiKeys(selector as never, { title: "x" }), [], JSON.stringify(selector));
      assert.deepEqual(await db.service.revoke(selector as never, { revoked_by: "u" }), [], JSON.stringify(selector));
    }
    assert.deepEqual(await db.service.listApiKeys(), before);
  });

  it("refuses sparse arrays anywhere in a selector or a filter", async () => {
    await db.service.createApiKeys({ title: "a", type: "secret", created_by: "u" });
    const before = await db.service.listApiKeys();
    const sparse: unknown[] = [{ id: [, "x"] }, { title: { $nin: new Array(2) } }, { $or: [, { title: "a" }] }, { $and: [{ $or: [{ title: "a" }, , ] }] }];
    for (const selector of sparse) {
      await rejectsWith(db.service.updateApiKeys(selector as never, { title: "x" }), "invalid_data", /hole/);
      await rejectsWith(db.service.revoke(selector as never, { revoked_by: "u" }), "invalid_data", /hole/);
      await rejectsWith(db.service.listApiKeys(selector as never), "invalid_data", /hole/);
    }
    assert.deepEqual(await db.service.listApiKeys(), before);
  });

  it("property: a selector is refused exactly when it would match every key, and otherwise touches only its matches", async function () {
    this.timeout(60_000);
    const TITLES = ["a", "b", "c"] as const;
    const CREATORS = ["u1", "u2"] as const;
    const keys = await db.service.createApiKeys(
      TITLES.flatMap((title, i) => CREATORS.map((created_by) => ({ title, created_by, type: i % 2 ? ("secret" as const) : ("publishable" as const) }))),
    );
    // Matches no atom the generator can write: only a selector that matches every key reaches it.
    const canary = await db.service.createApiKeys({ title: "zzz canary", type: "secret", created_by: "canary" });
    const all = [...keys, canary];
    const before = await db.service.listApiKeys();

    type Key = (typeof all)[number];
    interface Node {
      selector: Record<string, unknown>;
      test: (key: Key) => boolean;
    }
    const constant = (selector: Record<string, unknown>, value: boolean): Node => ({ selector, test: () => value });
    const subset = <T>(items: readonly T[]) => fc.subarray([...items], { minLength: 1 });
    const atom: fc.Arbitrary<Node> = fc.oneof(
      fc.constantFrom(...TITLES).map((title): Node => ({ selector: { title }, test: (key) => key.title === title })),
      subset(TITLES).map((titles): Node => ({ selector: { title: { $in: titles } }, test: (key) => titles.includes(key.title as never) })),
      subset(TITLES).map((titles): Node => ({ selector: { title: titles }, test: (key) => titles.includes(key.title as never) })),
      fc.constantFrom(...TITLES).map((title): Node => ({ selector: { title: { $like: `${title}%` } }, test: (key) => key.title.startsWith(title) })),
      fc.constantFrom(...CREATORS).map((user): Node => ({ selector: { created_by: { $eq: user } }, test: (key) => key.created_by === user })),
      subset(keys.map((key) => key.id)).map((ids): Node => ({ selector: { id: { $in: ids } }, test: (key) => ids.includes(key.id) })),
      fc.constantFrom(
        constant({}, true),
        constant({ q: " " }, true),
        constant({ id: { $in: [] } }, false),
        constant({ id: [] }, false),
        constant({ id: { $nin: [] } }, true),
        constant({ title: { $not: { $in: [] } } }, true),
        constant({ title: { $not: { $nin: [] } } }, false),
        constant({ id: { $exists: true } }, true),
        constant({ title: null }, false),
        constant({ created_by: { $like: "%" } }, true),
        constant({ deleted_at: null }, true),
        constant({ deleted_at: { $ne: null } }, false),
        constant({ $or: [{ revoked_at: null }, { revoked_at: { $exists: true } }] }, true),
        constant({ revoked_at: { $exists: true, $eq: null } }, false),
      ),
    );
    const { node } = fc.letrec<{ node: Node }>((tie) => ({
      node: fc.oneof(
        // Within the filter language's nesting bound (8), atoms included.
        { maxDepth: 6, depthSize: "small", withCrossShrink: true },
        atom,
        fc.array(tie("node"), { minLength: 1, maxLength: 3 }).map((items): Node => ({
          selector: { $and: items.map((item) => item.selector) },
          test: (key) => items.every((item) => item.test(key)),
        })),
        fc.array(tie("node"), { minLength: 1, maxLength: 3 }).map((items): Node => ({
          selector: { $or: items.map((item) => item.selector) },
          test: (key) => items.some((item) => item.test(key)),
        })),
        fc.tuple(tie("node"), tie("node")).map(([left, right]): Node => ({
          selector: { $and: [left.selector], $or: [right.selector] },
          test: (key) => left.test(key) && right.test(key),
        })),
      ),
    }));

    await fc.assert(
      fc.asyncProperty(node, fc.constantFrom("update", "revoke"), async ({ selector, test }, operation) => {
        const label = `${operation}(${JSON.stringify(selector)})`;
        const everything = test(canary);
        const transaction = await db.knex.transaction();
        try {
          const run =
            operation === "update"
              ? db.service.updateApiKeys(selector as FilterableApiKeyProps, { title: "renamed" }, { transaction })
              : db.service.revoke(selector as FilterableApiKeyProps, { revoked_by: "property" }, { transaction });
          if (everything) {
            await rejectsWith(run, "invalid_data", /would match every key/);
          } else {
            const touched = (await run).map((key) => key.id).sort();
            assert.deepEqual(touched, all.filter(test).map((key) => key.id).sort(), label);
          }
        } finally {
          await transaction.rollback();
        }
      }),
      { numRuns: 200, interruptAfterTimeLimit: 8000 },
    );
    assert.deepEqual(await db.service.listApiKeys(), before);
  });
});

import assert from "node:assert/strict";
import type { ApiKeyDTO, FilterableApiKeyProps } from "../../lib/types";
import { forEachBackend } from "../helpers/backends";
import { rejectsWith } from "../helpers/assertions";

forEachBackend("listApiKeys / listAndCountApiKeys", (db) => {
  let pubA: ApiKeyDTO;
  let pubB: ApiKeyDTO;
  let secretA: ApiKeyDTO;
  let secretB: ApiKeyDTO;
  let revoked: ApiKeyDTO;

  beforeEach(async () => {
    [pubA, pubB, secretA, secretB, revoked] = (await db.service.createApiKeys([
      { title: "Storefront Web", type: "publishable", created_by: "alice" },
      { title: "Storefront App", type: "publishable", created_by: "bob" },
      { title: "CI deploy", type: "secret", created_by: "alice" },
      { title: "Backoffice 100%_sync", type: "secret", created_by: "carol" },
      { title: "Old key", type: "secret", created_by: "bob" },
    ])) as [ApiKeyDTO, ApiKeyDTO, ApiKeyDTO, ApiKeyDTO, ApiKeyDTO];
    db.clock.advance(1000);
    await db.service.revoke(revoked.id, { revoked_by: "alice" });
    db.clock.advance(1000);
  });

  async function titles(filters?: FilterableApiKeyProps, config?: Parameters<typeof db.service.listApiKeys>[1]) {
    return (await db.service.listApiKeys(filters, config)).map((key) => key.title);
  }

  it("lists every key in id (creation) order by default", async () => {
    assert.deepEqual(await titles(), ["Storefront Web", "Storefront App", "CI deploy", "Backoffice 100%_sync", "Old key"]);
  });

  it("filters by plain values and arrays", async () => {
    assert.deepEqual(await titles({ type: "publishable" }), ["Storefront Web", "Storefront App"]);
    assert.deepEqual(await titles({ id: [secretA.id, pubB.id] }), ["Storefront App", "CI deploy"]);
    assert.deepEqual(await titles({ title: "CI deploy" }), ["CI deploy"]);
    assert.deepEqual(await titles({ created_by: "bob" }), ["Storefront App", "Old key"]);
    assert.deepEqual(await titles({ revoked_at: null }), ["Storefront Web", "Storefront App", "CI deploy", "Backoffice 100%_sync"]);
    assert.deepEqual(await titles({ id: [] }), []);
  });

  it("finds keys by token: a publishable token as is, a secret token through its hash", async () => {
    assert.deepEqual(await titles({ token: pubA.token }), ["Storefront Web"]);
    assert.deepEqual(await titles({ token: secretA.token }), ["CI deploy"]);
    assert.deepEqual(await titles({ token: { $in: [secretB.token, pubB.token] } }), ["Storefront App", "Backoffice 100%_sync"]);
  });

  it("supports $eq $ne $in $nin", async () => {
    assert.deepEqual(await titles({ created_by: { $eq: "carol" } }), ["Backoffice 100%_sync"]);
    assert.deepEqual(await titles({ created_by: { $ne: "alice" } }), ["Storefront App", "Backoffice 100%_sync", "Old key"]);
    assert.deepEqual(await titles({ created_by: { $in: ["carol", "bob"] } }), ["Storefront App", "Backoffice 100%_sync", "Old key"]);
    assert.deepEqual(await titles({ created_by: { $nin: ["alice", "bob"] } }), ["Backoffice 100%_sync"]);
    assert.deepEqual(await titles({ revoked_at: { $ne: null } }), ["Old key"]);
    assert.deepEqual(await titles({ revoked_by: { $eq: null }, type: "secret" }), ["CI deploy", "Backoffice 100%_sync"]);
  });

  it("supports $gt $gte $lt $lte on dates and on text", async () => {
    const at = revoked.created_at;
    assert.deepEqual(await titles({ revoked_at: { $gt: at } }), ["Old key"]);
    assert.deepEqual(await titles({ revoked_at: { $lt: at } }), []);
    const revokedAt = (await db.service.retrieveApiKey(revoked.id)).revoked_at!;
    assert.deepEqual(await titles({ revoked_at: { $gte: revokedAt.toISOString(), $lte: revokedAt } }), ["Old key"]);
    assert.deepEqual(await titles({ created_at: { $lte: new Date(Date.now() + 60_000) }, type: "publishable" }), [
      "Storefront Web",
      "Storefront App",
    ]);
    assert.deepEqual(await titles({ title: { $gte: "Old", $lt: "Su" } }), ["Storefront Web", "Storefront App", "Old key"]);
  });

  it("supports $like $ilike $re", async () => {
    assert.deepEqual(await titles({ title: { $like: "Storefront%" } }), ["Storefront Web", "Storefront App"]);
    assert.deepEqual(await titles({ title: { $like: "storefront%" } }), []);
    assert.deepEqual(await titles({ title: { $ilike: "storefront%" } }), ["Storefront Web", "Storefront App"]);
    assert.deepEqual(await titles({ title: { $re: "^(CI|Old) " } }), ["CI deploy", "Old key"]);
    assert.deepEqual(await titles({ redacted: { $like: "pk_%" } }), ["Storefront Web", "Storefront App"]);
  });

  it("supports $exists and $not", async () => {
    assert.deepEqual(await titles({ revoked_at: { $exists: true } }), ["Old key"]);
    assert.deepEqual(await titles({ revoked_at: { $exists: false }, type: "secret" }), ["CI deploy", "Backoffice 100%_sync"]);
    assert.deepEqual(await titles({ type: { $not: "publishable" } }), ["CI deploy", "Backoffice 100%_sync", "Old key"]);
    assert.deepEqual(await titles({ title: { $not: { $like: "S%" } } }), ["CI deploy", "Backoffice 100%_sync", "Old key"]);
    assert.deepEqual(await titles({ created_by: { $not: ["alice", "bob"] } }), ["Backoffice 100%_sync"]);
  });

  it("nests $and and $or", async () => {
    assert.deepEqual(
      await titles({ $or: [{ type: "publishable", created_by: "bob" }, { $and: [{ type: "secret" }, { created_by: "carol" }] }] }),
      ["Storefront App", "Backoffice 100%_sync"],
    );
    assert.deepEqual(await titles({ $and: [{ type: "secret" }, { $or: [{ created_by: "bob" }, { title: "CI deploy" }] }] }), [
      "CI deploy",
      "Old key",
    ]);
  });

  it("searches q across title and redacted, all words, any case, wildcards literal", async () => {
    assert.deepEqual(await titles({ q: "storefront" }), ["Storefront Web", "Storefront App"]);
    assert.deepEqual(await titles({ q: "STOREFRONT app" }), ["Storefront App"]);
    assert.deepEqual(await titles({ q: "store zzz" }), []);
    assert.deepEqual(await titles({ q: secretA.redacted.slice(0, 6) }), ["CI deploy"]);
    assert.deepEqual(await titles({ q: secretA.redacted.slice(-3) }).then((t) => t.includes("CI deploy")), true);
    // `%` and `_` are matched literally, not as LIKE wildcards.
    assert.deepEqual(await titles({ q: "100%_" }), ["Backoffice 100%_sync"]);
    assert.deepEqual(await titles({ q: "0%s" }), []);
    assert.deepEqual(await titles({ q: "pk_", type: "secret" }), []);
  });

  it("pages with skip and take, orders, and counts without the page", async () => {
    assert.deepEqual(await titles({}, { order: { title: "ASC" }, skip: 1, take: 2 }), ["CI deploy", "Old key"]);
    assert.deepEqual(await titles({ type: "secret" }, { order: { created_by: "desc" } }), [
      "Backoffice 100%_sync",
      "Old key",
      "CI deploy",
    ]);
    const [rows, count] = await db.service.listAndCountApiKeys({ type: "secret" }, { take: 1, skip: 1 });
    assert.deepEqual(rows.map((key) => key.title), ["Backoffice 100%_sync"]);
    assert.equal(count, 3);
    const [none, total] = await db.service.listAndCountApiKeys({}, { skip: 50 });
    assert.deepEqual([none, total], [[], 5]);
  });

  it("selects fields, always with id, and never shows a secret token or hash", async () => {
    const rows = await db.service.listApiKeys({ type: "secret" }, { select: ["token", "title"], take: 1 });
    assert.deepEqual(rows, [{ id: secretA.id, token: "", title: "CI deploy" }]);
    const publishable = await db.service.listApiKeys({ id: pubA.id }, { select: ["token"] });
    assert.deepEqual(publishable, [{ id: pubA.id, token: pubA.token }]);
  });

  it("rejects malformed filters and configs with invalid_data, never a SQL error", async () => {
    await rejectsWith(db.service.listApiKeys({ nope: 1 } as never), "invalid_data", /unknown field/);
    await rejectsWith(db.service.listApiKeys({ title: { $gt: 5 } } as never), "invalid_data", /title\.\$gt/);
    await rejectsWith(db.service.listApiKeys({ title: { $re: "(?<name>x)" } }), "invalid_data", /regular expression/);
    await rejectsWith(db.service.listApiKeys({ title: "a\u0000b" }), "invalid_data");
    await rejectsWith(db.service.listApiKeys({}, { take: -5 }), "invalid_data", /'take'/);
    await rejectsWith(db.service.listAndCountApiKeys({ $or: [] }), "invalid_data", /\$or/);
    await rejectsWith(db.service.listApiKeys({ revoked_at: { $gt: "9999999-01-01" } }), "invalid_data");
  });
});

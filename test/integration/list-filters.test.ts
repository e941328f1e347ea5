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
    assert.deepEqual(await titles({ redacted: { $like: "pk_%" } }), ["Storefront Web", "Storefront App"]);
    if (db.dialect.name === "sqlite") {
      // SQLite has no regular expressions: a clear invalid_data, never a SQL error.
      await rejectsWith(db.service.listApiKeys({ title: { $re: "^(CI|Old) " } }), "invalid_data", "Invalid filter: $re is not supported on sqlite");
      await rejectsWith(db.service.listAndCountApiKeys({ $or: [{ type: "secret" }, { title: { $re: "x" } }] }), "invalid_data", /not supported on sqlite/);
    } else {
      assert.deepEqual(await titles({ title: { $re: "^(CI|Old) " } }), ["CI deploy", "Old key"]);
      assert.deepEqual(await titles({ title: { $re: "^(ci|old) " } }), [], "$re is case-sensitive");
    }
  });

  it("matches $like case-sensitively and $ilike and q in any case, with every wildcard escaped as on PostgreSQL", async () => {
    await db.service.createApiKeys([
      { title: "glob*chars?[x]", type: "secret", created_by: "u" },
      { title: "GLOB*CHARS?[X]", type: "secret", created_by: "u" },
      { title: "back\\slash", type: "secret", created_by: "u" },
    ]);
    // GLOB's own wildcards are ordinary characters in a LIKE pattern.
    assert.deepEqual(await titles({ title: { $like: "glob*chars?[x]" } }), ["glob*chars?[x]"]);
    assert.deepEqual(await titles({ title: { $like: "glob_chars_[x]" } }), ["glob*chars?[x]"]);
    assert.deepEqual(await titles({ title: { $like: "glob*%" } }), ["glob*chars?[x]"]);
    assert.deepEqual(await titles({ title: { $like: "glob?%" } }), []);
    assert.deepEqual(await titles({ title: { $like: "[g]%" } }), []);
    assert.deepEqual(await titles({ title: { $ilike: "glob*chars?[x]" } }), ["glob*chars?[x]", "GLOB*CHARS?[X]"]);
    assert.deepEqual(await titles({ q: "chars?[X" }), ["glob*chars?[x]", "GLOB*CHARS?[X]"]);
    // `\` escapes a wildcard (and itself); `_` and `%` match one and any characters.
    assert.deepEqual(await titles({ title: { $like: "%100\\%\\_%" } }), ["Backoffice 100%_sync"]);
    assert.deepEqual(await titles({ title: { $like: "%100\\%\\%%" } }), []);
    assert.deepEqual(await titles({ title: { $like: "back\\\\slash" } }), ["back\\slash"]);
    assert.deepEqual(await titles({ title: { $ilike: "BACK\\\\%" } }), ["back\\slash"]);
    assert.deepEqual(await titles({ title: { $like: "CI deplo_" } }), ["CI deploy"]);
    assert.deepEqual(await titles({ title: { $like: "ci deplo_" } }), []);
    assert.deepEqual(await titles({ title: { $ilike: "ci DEPLO_" } }), ["CI deploy"]);
    // A pattern that ends in a lone escape character is malformed (PostgreSQL would refuse it).
    await rejectsWith(db.service.listApiKeys({ title: { $like: "back\\" } }), "invalid_data", /title\.\$like/);
    await rejectsWith(db.service.listApiKeys({ title: { $ilike: "%\\\\\\" } }), "invalid_data", /title\.\$ilike/);
  });

  it("keeps timestamps to the millisecond, and filters on them exactly", async () => {
    db.clock.advance(1000 - (db.clock.now().getTime() % 1000) + 123);
    const first = await db.service.createApiKeys({ title: "first", type: "secret", created_by: "u" });
    const at = db.clock.now();
    db.clock.advance(1);
    const second = await db.service.createApiKeys({ title: "second", type: "secret", created_by: "u" });
    assert.equal(at.getUTCMilliseconds(), 123);
    const read = await db.service.retrieveApiKey(first.id);
    assert.ok(read.created_at instanceof Date && read.updated_at instanceof Date);
    assert.equal(read.created_at.getTime(), at.getTime());
    assert.equal((await db.service.retrieveApiKey(second.id)).created_at.getTime(), at.getTime() + 1);
    const later = new Date(at.getTime() + 1);
    assert.deepEqual(await titles({ created_at: at }), ["first"]);
    assert.deepEqual(await titles({ created_at: { $gt: at } }), ["second"]);
    assert.deepEqual(await titles({ created_at: { $gte: at } }), ["first", "second"]);
    assert.deepEqual(await titles({ created_at: { $lt: later, $gte: at.toISOString() } }), ["first"]);
    assert.deepEqual(await titles({ created_at: { $in: [later] } }), ["second"]);
    assert.deepEqual(await titles({ created_at: { $ne: at }, title: { $in: ["first", "second"] } }), ["second"]);
    // Filters take the years every store can hold; an instant past 9999 is refused up front.
    await rejectsWith(db.service.listApiKeys({ created_at: { $gt: new Date(8.64e15) } }), "invalid_data", /years 1 to 9999/);
    // Instants before what a column can hold (MySQL's DATETIME starts with year 1000) still compare right.
    const early = new Date(Date.UTC(500, 0, 1));
    const both = { title: { $in: ["first", "second"] } };
    assert.deepEqual(await titles({ created_at: { $lt: early } }), []);
    assert.deepEqual(await titles({ created_at: { $lte: early } }), []);
    assert.deepEqual(await titles({ created_at: early }), []);
    assert.deepEqual(await titles({ created_at: { $gt: early }, ...both }), ["first", "second"]);
    assert.deepEqual(await titles({ created_at: { $ne: early }, ...both }), ["first", "second"]);
    assert.deepEqual(await titles({ created_at: { $in: [early, at] } }), ["first"]);
    assert.deepEqual(await titles({ created_at: { $nin: [early] }, ...both }), ["first", "second"]);
    assert.deepEqual(await titles({ revoked_at: { $not: { $lt: early } }, ...both }), []);
    assert.deepEqual(await titles({ revoked_at: { $gt: early } }), ["Old key"]);
    // A revocation scheduled far ahead comes back to the millisecond too.
    const revoked = await db.service.revoke(second.id, { revoked_by: "u", revoke_in: 400_000_000 });
    assert.equal((await db.service.retrieveApiKey(second.id)).revoked_at!.getTime(), revoked.revoked_at!.getTime());
    assert.deepEqual(await titles({ revoked_at: { $gt: new Date("2030-01-01") } }), ["second"]);
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
    if (db.dialect.name === "postgres") {
      // Valid in JavaScript, not in PostgreSQL's regular expressions: the database says so.
      await rejectsWith(db.service.listApiKeys({ title: { $re: "(?<name>x)" } }), "invalid_data", /regular expression/);
      // PostgreSQL refuses NUL bytes in text; MySQL and SQLite store them, so there it is a value like any other.
      await rejectsWith(db.service.listApiKeys({ title: "a\u0000b" }), "invalid_data");
    } else {
      assert.deepEqual(await titles({ title: "a\u0000b" }), []);
    }
    if (db.dialect.name === "mysql") {
      // Valid in JavaScript, refused by MariaDB's regular expressions (no unbounded lookbehind).
      await rejectsWith(db.service.listApiKeys({ title: { $re: "(?<=a+)b" } }), "invalid_data", /regular expression/);
    }
    await rejectsWith(db.service.listApiKeys({}, { take: -5 }), "invalid_data", /'take'/);
    await rejectsWith(db.service.listAndCountApiKeys({ $or: [] }), "invalid_data", /\$or/);
    await rejectsWith(db.service.listApiKeys({ revoked_at: { $gt: "9999999-01-01" } }), "invalid_data");
  });
});

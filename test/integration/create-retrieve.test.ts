import assert from "node:assert/strict";
import { forEachBackend } from "../helpers/backends";
import { rejectsWith } from "../helpers/assertions";

forEachBackend("createApiKeys / retrieveApiKey", (db) => {
  it("creates a secret key whose plaintext is in the result and in no later read", async () => {
    const key = await db.service.createApiKeys({ title: "Admin", type: "secret", created_by: "user_1" });
    assert.match(key.id, /^apk_[0-9A-HJKMNP-TV-Z]{26}$/);
    assert.match(key.token, /^sk_[0-9A-Za-z]{50}$/);
    assert.equal(key.redacted, `${key.token.slice(0, 6)}***${key.token.slice(-3)}`);
    assert.deepEqual(
      { title: key.title, type: key.type, created_by: key.created_by, revoked_at: key.revoked_at, revoked_by: key.revoked_by },
      { title: "Admin", type: "secret", created_by: "user_1", revoked_at: null, revoked_by: null },
    );
    assert.ok(key.created_at instanceof Date);
    assert.equal(key.last_used_at, null);
    assert.equal(key.deleted_at, null);
    assert.equal("salt" in key, false);

    const read = await db.service.retrieveApiKey(key.id);
    assert.equal(read.token, "");
    assert.deepEqual({ ...read, token: key.token }, key);
    const [listed] = await db.service.listApiKeys({ id: key.id });
    assert.equal(listed!.token, "");
  });

  it("returns publishable tokens in every read", async () => {
    const key = await db.service.createApiKeys({ title: "Store", type: "publishable", created_by: "user_1" });
    assert.match(key.token, /^pk_/);
    assert.equal((await db.service.retrieveApiKey(key.id)).token, key.token);
  });

  it("mirrors its input: an array gives an array in input order, [] gives []", async () => {
    const keys = await db.service.createApiKeys([
      { title: "one", type: "secret", created_by: "u" },
      { title: "two", type: "secret", created_by: "u" },
      { title: "three", type: "publishable", created_by: "u" },
    ]);
    assert.deepEqual(keys.map((k) => k.title), ["one", "two", "three"]);
    assert.deepEqual(await db.service.createApiKeys([]), []);
    assert.equal((await db.service.listApiKeys()).length, 3);
  });

  it("creates the most keys one call takes, past what one SQLite insert carries", async function () {
    this.timeout(60_000);
    // 1,000 keys a call; SQLite takes at most 500 rows in one multi-row insert.
    const count = 1000;
    const keys = await db.service.createApiKeys(
      Array.from({ length: count }, (_, i) => ({ title: `bulk ${i}`, type: "publishable" as const, created_by: "u" })),
    );
    assert.equal(keys.length, count);
    assert.equal((await db.service.listAndCountApiKeys({ title: { $like: "bulk %" } }, { take: 1 }))[1], count);
    assert.equal((await db.service.retrieveApiKey(keys[count - 1]!.id)).token, keys[count - 1]!.token);
    await rejectsWith(
      db.service.createApiKeys(Array.from({ length: count + 1 }, () => ({ title: "t", type: "publishable" as const, created_by: "u" }))),
      "invalid_data",
    );
  });

  it("allows several active secret keys, as the reference does since 2.11", async () => {
    await db.service.createApiKeys({ title: "a", type: "secret", created_by: "u" });
    await db.service.createApiKeys({ title: "b", type: "secret", created_by: "u" });
    assert.equal((await db.service.listApiKeys({ type: "secret" })).length, 2);
  });

  const invalid: [string, unknown, string | RegExp][] = [
    ["no title", { type: "secret", created_by: "u" }, "Field 'title' is required"],
    ["a numeric title", { title: 5, type: "secret", created_by: "u" }, "Expected type: 'string' for field 'title', got: 'number'"],
    ["an empty title", { title: "", type: "secret", created_by: "u" }, "Field 'title' must not be empty"],
    ["an unknown type", { title: "t", type: "admin", created_by: "u" }, "Expected: 'publishable, secret' for field 'type', but got: 'admin'"],
    ["no type", { title: "t", created_by: "u" }, "Field 'type' is required"],
    ["no created_by", { title: "t", type: "secret" }, "Field 'created_by' is required"],
    ["a caller-chosen id", { id: "apk_mine", title: "t", type: "secret", created_by: "u" }, "Unrecognized fields: 'id'"],
    [
      "a caller-chosen revocation",
      { title: "t", type: "secret", created_by: "u", revoked_at: new Date(0), last_used_at: new Date() },
      "Unrecognized fields: 'revoked_at', 'last_used_at'",
    ],
    ["a string", "secret", /Expected an object/],
    ["null", null, /Expected an object/],
  ];
  for (const [label, data, message] of invalid) {
    it(`rejects ${label} with invalid_data and writes nothing`, async () => {
      await rejectsWith(db.service.createApiKeys(data as never), "invalid_data", message);
      await rejectsWith(
        db.service.createApiKeys([{ title: "ok", type: "secret", created_by: "u" }, data as never]),
        "invalid_data",
        message,
      );
      assert.equal((await db.service.listApiKeys()).length, 0);
    });
  }

  it("reports not_found with the reference's messages", async () => {
    await rejectsWith(db.service.retrieveApiKey("apk_01ARZ3NDEKTSV4RRFFQ69G5FAV"), "not_found", "ApiKey with id: apk_01ARZ3NDEKTSV4RRFFQ69G5FAV was not found");
    await rejectsWith(db.service.retrieveApiKey(undefined as never), "not_found", "apiKey - id must be defined");
    await rejectsWith(db.service.retrieveApiKey(""), "not_found", "apiKey - id must be defined");
    await rejectsWith(db.service.retrieveApiKey(42 as never), "invalid_data", /string id/);
    // PostgreSQL refuses NUL bytes in text; that is bad input, not an outage. MySQL and SQLite
    // store them, so there such an id is merely unknown.
    await rejectsWith(db.service.retrieveApiKey("x\u0000y"), db.dialect.name === "postgres" ? "invalid_data" : "not_found");
  });

  it("returns only the selected fields plus id, and still masks secret tokens", async () => {
    const key = await db.service.createApiKeys({ title: "Admin", type: "secret", created_by: "u" });
    assert.deepEqual(await db.service.retrieveApiKey(key.id, { select: ["title"] }), { id: key.id, title: "Admin" });
    // Without `type` in the select the reference leaked the hash; here the token stays masked.
    assert.deepEqual(await db.service.retrieveApiKey(key.id, { select: ["token"] }), { id: key.id, token: "" });
  });
});

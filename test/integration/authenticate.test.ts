import assert from "node:assert/strict";
import fc from "fast-check";
import { generateToken } from "../../lib/tokens";
import { forEachBackend } from "../helpers/backends";

forEachBackend("authenticate", (db) => {
  it("returns the key for a valid secret token, with no secret material", async () => {
    const key = await db.service.createApiKeys({ title: "k", type: "secret", created_by: "user_1" });
    const found = await db.service.authenticate(key.token);
    assert.ok(found);
    assert.deepEqual(found, { ...key, token: "" });
    assert.equal("salt" in found, false);
  });

  it("property: every secret token the service issues authenticates as its own key", async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ minLength: 1, maxLength: 40 }), async (title) => {
        const key = await db.service.createApiKeys({ title, type: "secret", created_by: "u" });
        const found = await db.service.authenticate(key.token);
        return found !== false && found.id === key.id && found.title === title;
      }),
      { numRuns: 50 },
    );
  });

  it("returns false for publishable, unknown, revoked and deleted keys, and odd input", async () => {
    const [secret, publishable] = await db.service.createApiKeys([
      { title: "s", type: "secret", created_by: "u" },
      { title: "p", type: "publishable", created_by: "u" },
    ]);
    assert.equal(await db.service.authenticate(publishable!.token), false);
    assert.equal(await db.service.authenticate(generateToken("secret")), false);
    for (const odd of ["", " ", `${secret!.token} `, secret!.token.toUpperCase(), `Basic ${secret!.token}`]) {
      assert.equal(await db.service.authenticate(odd), false, JSON.stringify(odd));
    }
    for (const value of [undefined, null, 42, {}, [secret!.token], Buffer.from(secret!.token)]) {
      assert.equal(await db.service.authenticate(value as never), false);
    }
    await db.service.revoke(secret!.id, { revoked_by: "u" });
    assert.equal(await db.service.authenticate(secret!.token), false);
    await db.service.deleteApiKeys(secret!.id);
    assert.equal(await db.service.authenticate(secret!.token), false);
  });

  it("rejects every single-character corruption without touching the store", async () => {
    const key = await db.service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
    const { result, queries } = await db.countQueries(async () => {
      const results: unknown[] = [];
      for (let i = 0; i < key.token.length; i++) {
        for (const char of ["0", "a", "Z", "_", "-", "\u00e9"]) {
          if (char === key.token[i]) continue;
          results.push(await db.service.authenticate(key.token.slice(0, i) + char + key.token.slice(i + 1)));
        }
      }
      return results;
    });
    assert.ok(result.length > 200);
    assert.ok(result.every((value) => value === false));
    assert.deepEqual(queries, []);
  });

  it("property: random strings never authenticate and never throw", async () => {
    await db.service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.string({ maxLength: 80 }), fc.string({ unit: "binary", maxLength: 60 }).map((s) => `sk_${s}`)), async (text) => {
        return (await db.service.authenticate(text)) === false;
      }),
      { numRuns: 300 },
    );
  });

  it("keeps no plaintext secret anywhere in the database", async () => {
    const keys = await db.service.createApiKeys(
      Array.from({ length: 5 }, (_, i) => ({ title: `k${i}`, type: "secret" as const, created_by: "u" })),
    );
    await db.service.roll(keys[0]!.id, { revoked_by: "u" });
    const tables = (await db.knex
      .select("table_name")
      .from("information_schema.tables")
      .where({ table_schema: db.schema })) as { table_name: string }[];
    assert.ok(tables.length >= 3);
    let dump = "";
    for (const { table_name } of tables) {
      const rows = (await db.knex.raw("select t::text as row from ??.?? t", [db.schema, table_name])) as { rows: { row: string }[] };
      dump += rows.rows.map((r) => r.row).join("\n");
    }
    assert.ok(dump.includes(keys[1]!.id), "the dump holds the rows");
    for (const key of keys) {
      assert.equal(dump.includes(key.token), false);
      assert.equal(dump.includes(key.token.slice(3, 39)), false, "not even the random part");
    }
  });

  it("with a pepper, stores HMACs that only the peppered service accepts", async () => {
    const peppered = await db.open({ pepper: "server-side-secret" });
    const key = await peppered.createApiKeys({ title: "k", type: "secret", created_by: "u" });
    assert.ok(await peppered.authenticate(key.token));
    assert.equal(await db.service.authenticate(key.token), false);
  });

  it("on 100,000 keys takes one query, through the unique token index", async function () {
    this.timeout(120_000);
    const key = await db.service.createApiKeys({ title: "needle", type: "secret", created_by: "u" });
    await db.knex.raw(
      `insert into ??.api_key (id, token, redacted, title, type, created_by)
       select 'apk_bulk' || g, md5(g::text) || md5((g * 7)::text), 'sk_bulk***' || (g % 1000), 'bulk', 'secret', 'u'
       from generate_series(1, 100000) g`,
      [db.schema],
    );
    await db.knex.raw("analyze ??.api_key", [db.schema]);
    const captured: { sql: string; bindings: unknown[] }[] = [];
    const listener = (query: { sql: string; bindings: unknown[] }) => captured.push(query);
    db.knex.on("query", listener);
    const found = await db.service.authenticate(key.token);
    db.knex.removeListener("query", listener);
    assert.ok(found);
    assert.equal(captured.length, 1, "one statement");
    const { sql, bindings } = captured[0]!;
    const plan = (await db.knex.raw(`explain ${sql.replace(/\$\d+/g, "?")}`, bindings as never[])) as {
      rows: { "QUERY PLAN": string }[];
    };
    const text = plan.rows.map((row) => row["QUERY PLAN"]).join("\n");
    assert.match(text, /Index Scan using "IDX_api_key_token_unique"/, text);
    assert.doesNotMatch(text, /Seq Scan/, text);
  });
});

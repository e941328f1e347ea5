import assert from "node:assert/strict";
import fc from "fast-check";
import { generateToken } from "../../lib/tokens";
import { forEachBackend } from "../helpers/backends";
import { rejectsWith } from "../helpers/assertions";

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
    assert.equal(await db.service.authenticate(await db.unissuedToken("secret")), false);
    assert.equal(await db.service.authenticate(generateToken("secret")), false, "format 1, with no format-1 key left");
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
    const tables = await db.tables();
    assert.ok(tables.length >= 3);
    let dump = "";
    for (const table of tables) dump += JSON.stringify(await db.table(table).select("*"));
    assert.ok(dump.includes(keys[1]!.id), "the dump holds the rows");
    for (const key of keys) {
      assert.equal(dump.includes(key.token), false);
      assert.equal(dump.includes(key.token.slice(3, 39)), false, "not even the random part");
    }
  });

  it("compares tokens and ids exactly: another case or a trailing space never matches", async () => {
    // A token in another case that passes its checksum, stored as the key's token in the case it
    // was issued in. A case-insensitive collation (MySQL's default) would take one for the other.
    const presented = await db.unissuedToken("publishable");
    const swapCase = (text: string) => [...text].map((c) => (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase())).join("");
    const stored = `pk_${swapCase(presented.slice(3))}`;
    const key = await db.service.createApiKeys({ title: "storefront", type: "publishable", created_by: "u" });
    await db.table("api_key").where({ id: key.id }).update({ token: stored });
    assert.equal(await db.service.authenticatePublishable(presented), false);
    assert.deepEqual(await db.service.listApiKeys({ token: presented }), []);
    assert.equal((await db.service.listApiKeys({ token: stored })).length, 1);

    await rejectsWith(db.service.retrieveApiKey(key.id.toLowerCase()), "not_found");
    await rejectsWith(db.service.retrieveApiKey(`${key.id} `), "not_found");
    assert.deepEqual(await db.service.listApiKeys({ title: "Storefront" }), []);
    assert.deepEqual(await db.service.listApiKeys({ title: "storefront " }), []);
    assert.deepEqual(await db.service.listApiKeys({ created_by: "U" }), []);
    // Resource ids in another case are other resources.
    assert.deepEqual(await db.service.updateLinks(key.id, { add: ["sc_a", "SC_A", "sc_a "] }), ["SC_A", "sc_a", "sc_a "].sort());
  });

  it("with a pepper, stores HMACs that only the peppered service accepts", async () => {
    const peppered = await db.open({ pepper: "server-side-secret" });
    const key = await peppered.createApiKeys({ title: "k", type: "secret", created_by: "u" });
    assert.ok(await peppered.authenticate(key.token));
    assert.equal(await db.service.authenticate(key.token), false);
  });

  /** Inserts 100,000 secret keys in one statement, and refreshes the planner's statistics. */
  async function insertBulkKeys(): Promise<void> {
    const table = db.qualified("api_key");
    switch (db.dialect.name) {
      case "postgres":
        await db.knex.raw(
          `insert into ?? (id, token, redacted, title, type, created_by)
           select 'apk_bulk' || g, md5(g::text) || md5((g * 7)::text), 'sk_bulk***' || (g % 1000), 'bulk', 'secret', 'u'
           from generate_series(1, 100000) g`,
          [table],
        );
        await db.knex.raw("analyze ??", [table]);
        return;
      case "mysql": {
        const digits = "(select 0 d union all select 1 union all select 2 union all select 3 union all select 4 union all select 5 union all select 6 union all select 7 union all select 8 union all select 9)";
        await db.knex.raw(
          `insert into ?? (id, token, redacted, title, type, created_by)
           select concat('apk_bulk', n), sha2(n, 256), concat('sk_bulk***', n % 1000), 'bulk', 'secret', 'u'
           from (select a.d + 10 * b.d + 100 * c.d + 1000 * e.d + 10000 * f.d as n
                 from ${digits} a, ${digits} b, ${digits} c, ${digits} e, ${digits} f) g`,
          [table],
        );
        await db.knex.raw("analyze table ??", [table]);
        return;
      }
      case "sqlite":
        await db.knex.raw(
          `with recursive g(n) as (select 1 union all select n + 1 from g where n < 100000)
           insert into ?? (id, token, redacted, title, type, created_by, created_at, updated_at)
           select 'apk_bulk' || n, printf('%064x', n), 'sk_bulk***' || (n % 1000), 'bulk', 'secret', 'u', 0, 0 from g`,
          [table],
        );
        await db.knex.raw("analyze");
        return;
    }
  }

  /** The plan of one captured statement, as text, and whether it reads the whole table. */
  async function explain(sql: string, bindings: unknown[]): Promise<{ text: string; fullScan: boolean }> {
    switch (db.dialect.name) {
      case "postgres": {
        const plan = await db.knex.raw<{ rows: { "QUERY PLAN": string }[] }>(`explain ${sql.replace(/\$\d+/g, "?")}`, bindings as never[]);
        const text = plan.rows.map((row) => row["QUERY PLAN"]).join("\n");
        return { text, fullScan: /Seq Scan/.test(text) };
      }
      case "mysql": {
        // Knex leaves the shape of a raw result to the driver: mysql2 gives [rows, fields].
        const [rows] = (await db.knex.raw<unknown>(`explain ${sql}`, bindings as never[])) as [{ key: string | null; type: string }[]];
        return { text: JSON.stringify(rows), fullScan: rows.some((row) => row.type === "ALL") };
      }
      case "sqlite": {
        const rows = (await db.knex.raw<unknown>(`explain query plan ${sql}`, bindings as never[])) as { detail: string }[];
        const text = rows.map((row) => row.detail).join("\n");
        return { text, fullScan: /\bSCAN\b/.test(text) };
      }
    }
  }

  it("on 100,000 keys takes one query, through the unique token index", async function () {
    this.timeout(120_000);
    const key = await db.service.createApiKeys({ title: "needle", type: "secret", created_by: "u" });
    await insertBulkKeys();
    const captured: { sql: string; bindings: unknown[] }[] = [];
    const listener = (query: { sql: string; bindings: unknown[] }) => captured.push(query);
    db.knex.on("query", listener);
    const found = await db.service.authenticate(key.token);
    db.knex.removeListener("query", listener);
    assert.ok(found);
    assert.equal(captured.length, 1, "one statement");
    const { text, fullScan } = await explain(captured[0]!.sql, captured[0]!.bindings);
    assert.match(text, /IDX_api_key_token_unique/, text);
    assert.equal(fullScan, false, text);
  });
});

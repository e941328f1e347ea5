import assert from "node:assert/strict";
import { initialize } from "../../lib/initialize";
import { DEPLOYMENT_SECRET_NAME, readDeploymentSecret } from "../../lib/deployment-secret";
import { KnexApiKeyStore } from "../../store/knex-store";
import { MIGRATIONS_TABLE, apiKeyMigrations, runMigrations } from "../../store/migrations";
import { forEachBackend } from "../helpers/backends";
import { rejectsWith } from "../helpers/assertions";

forEachBackend("migrations", (db) => {
  async function tables(): Promise<string[]> {
    const rows = (await db.knex
      .select("table_name")
      .from("information_schema.tables")
      .where({ table_schema: db.schema })
      .orderBy("table_name")) as { table_name: string }[];
    return rows.map((row) => row.table_name);
  }

  it("creates our tables with a ledger of their own, and runs again as a no-op", async () => {
    assert.deepEqual(await tables(), ["api_key", "api_key_link", MIGRATIONS_TABLE, `${MIGRATIONS_TABLE}_lock`, "api_key_secret"]);
    await runMigrations(db.knex, { schema: db.schema });
    await db.open();
    const ledger = await db.knex.withSchema(db.schema).from(MIGRATIONS_TABLE).select("name");
    assert.deepEqual(ledger.map((row: { name: string }) => row.name), ["20261123000000_create_api_key", "20261201000000_create_api_key_secret"]);
  });

  it("survives several services migrating the same schema at once", async () => {
    await db.knex.raw("drop schema ?? cascade", [db.schema]);
    await Promise.all(Array.from({ length: 4 }, () => runMigrations(db.knex, { schema: db.schema })));
    assert.deepEqual(await tables(), ["api_key", "api_key_link", MIGRATIONS_TABLE, `${MIGRATIONS_TABLE}_lock`, "api_key_secret"]);
  });

  it("exports a MigrationSource an app can run with its own ledger", async () => {
    const schema = `${db.schema}_app`;
    await db.knex.raw("drop schema if exists ?? cascade", [schema]);
    await db.knex.raw("create schema ??", [schema]);
    try {
      await db.knex.migrate.latest({ migrationSource: apiKeyMigrations({ schema }), tableName: "app_migrations", schemaName: schema });
      const service = await initialize({ database: db.knex, schema, runMigrations: false, logger: { warn: () => {}, error: () => {} } });
      const key = await service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
      assert.ok(await service.authenticate(key.token));
      await service.close();
      await db.knex.migrate.rollback({ migrationSource: apiKeyMigrations({ schema }), tableName: "app_migrations", schemaName: schema }, true);
      const left = await db.knex.select("table_name").from("information_schema.tables").where({ table_schema: schema });
      assert.deepEqual(left.map((row: { table_name: string }) => row.table_name).sort(), ["app_migrations", "app_migrations_lock"]);
    } finally {
      await db.knex.raw("drop schema if exists ?? cascade", [schema]);
    }
  });

  it("declares the unique token index, the type check and the partial indexes", async () => {
    const indexes = (await db.knex.raw("select indexname, indexdef from pg_indexes where schemaname = ? and tablename = 'api_key'", [db.schema])) as {
      rows: { indexname: string; indexdef: string }[];
    };
    const byName = new Map(indexes.rows.map((row) => [row.indexname, row.indexdef]));
    assert.match(byName.get("IDX_api_key_token_unique") ?? "", /UNIQUE INDEX .* \(token\)$/);
    assert.match(byName.get("IDX_api_key_revoked_at") ?? "", /WHERE \(deleted_at IS NULL\)/);
    assert.match(byName.get("IDX_api_key_redacted") ?? "", /WHERE \(deleted_at IS NULL\)/);
    assert.ok(byName.has("IDX_api_key_type") && byName.has("IDX_api_key_deleted_at"));
    await assert.rejects(
      db.knex.withSchema(db.schema).into("api_key").insert({ id: "x", token: "t", redacted: "r", title: "t", type: "admin", created_by: "u" }),
      /api_key_type_check/,
    );
  });

  it("makes one deployment secret, however many instances ask for it at once", async () => {
    const secrets = await Promise.all(
      Array.from({ length: 8 }, () => readDeploymentSecret(new KnexApiKeyStore(db.knex, db.schema))),
    );
    assert.equal(secrets[0]!.length, 32);
    for (const secret of secrets) assert.ok(secret.equals(secrets[0]!));
    const rows = await db.knex.withSchema(db.schema).from("api_key_secret").select("name");
    assert.deepEqual(rows, [{ name: DEPLOYMENT_SECRET_NAME }]);
    assert.ok((await readDeploymentSecret(new KnexApiKeyStore(db.knex, db.schema))).equals(secrets[0]!), "read back later");
  });

  it("with runMigrations off, leaves the schema alone", async () => {
    const schema = `${db.schema}_bare`;
    await db.knex.raw("drop schema if exists ?? cascade", [schema]);
    await db.knex.raw("create schema ??", [schema]);
    try {
      const service = await initialize({ database: db.knex, schema, runMigrations: false, logger: { warn: () => {}, error: () => {} } });
      // Missing tables are a deployment mistake, not an outage.
      await rejectsWith(service.listApiKeys(), "unknown_error");
      await service.close();
      const left = await db.knex.select("table_name").from("information_schema.tables").where({ table_schema: schema });
      assert.deepEqual(left, []);
    } finally {
      await db.knex.raw("drop schema if exists ?? cascade", [schema]);
    }
  });
});

import assert from "node:assert/strict";
import type { Knex } from "knex";
import { initialize } from "../../setup/initialize";
import { DEPLOYMENT_SECRET_NAME, readDeploymentSecret } from "../../lib/deployment-secret";
import { KnexApiKeyStore } from "../../store/knex-store";
import { generateToken, redactToken, storedTokenValue } from "../../lib/tokens";
import type { ApiKeyRecord } from "../../lib/store";
import type { ApiKeyType } from "../../lib/types";
import { type ApiKeyMigration, MIGRATIONS_TABLE, apiKeyMigrations, runMigrations } from "../../store/migrations";
import { type Scratch, forEachBackend } from "../helpers/backends";
import { rejectsWith } from "../helpers/assertions";

const OUR_TABLES = ["api_key", "api_key_audit_event", "api_key_link", MIGRATIONS_TABLE, `${MIGRATIONS_TABLE}_lock`, "api_key_secret", "api_key_usage"];

/**
 * The DDL the first release ran on PostgreSQL, statement by statement (with the schema as
 * `S`). Databases in the field were built by it: the migration must keep producing it.
 */
const FIRST_RELEASE_POSTGRES_DDL = [
  'create table "S"."api_key" ("id" text, "token" text not null, "redacted" text not null, "title" text not null, "type" text not null, "last_used_at" timestamptz null, "created_by" text not null, "created_at" timestamptz not null default CURRENT_TIMESTAMP, "updated_at" timestamptz not null default CURRENT_TIMESTAMP, "deleted_at" timestamptz null, "revoked_by" text null, "revoked_at" timestamptz null, constraint "api_key_pkey" primary key ("id"), constraint api_key_type_check check ("type" in (\'publishable\', \'secret\')))',
  'alter table "S"."api_key" add constraint "IDX_api_key_token_unique" unique ("token")',
  'create index "IDX_api_key_type" on "S"."api_key" ("type")',
  'create index "IDX_api_key_deleted_at" on "S"."api_key" ("deleted_at") where "deleted_at" is null',
  'create index "IDX_api_key_revoked_at" on "S"."api_key" ("revoked_at") where "deleted_at" is null',
  'create index "IDX_api_key_redacted" on "S"."api_key" ("redacted") where "deleted_at" is null',
  'create table "S"."api_key_link" ("api_key_id" text not null, "resource_type" text not null, "resource_id" text not null, "created_at" timestamptz not null default CURRENT_TIMESTAMP, constraint "api_key_link_pkey" primary key ("api_key_id", "resource_type", "resource_id"))',
  'alter table "S"."api_key_link" add constraint "api_key_link_api_key_id_foreign" foreign key ("api_key_id") references "S"."api_key" ("id") on delete CASCADE',
  'create index "IDX_api_key_link_resource" on "S"."api_key_link" ("resource_type", "resource_id")',
];

/** What the key-policy migration adds, on PostgreSQL: nullable columns with no default (no row rewritten) and two partial indexes. */
const KEY_POLICY_POSTGRES_DDL = [
  'alter table "S"."api_key" add column "expires_at" timestamptz null, add column "owner_id" text null, add column "scopes" text null, add column "metadata" text null, add column "rate_limits" text null, add column "remaining" integer null, add column "refill" text null, add column "refilled_at" timestamptz null',
  'create index "IDX_api_key_owner_id" on "S"."api_key" ("owner_id") where "deleted_at" is null',
  'create index "IDX_api_key_expires_at" on "S"."api_key" ("expires_at") where "deleted_at" is null',
];

/** What the token-format migration adds, on PostgreSQL: a nullable column (no row rewritten; null reads as format 1) and its index. */
const TOKEN_FORMAT_POSTGRES_DDL = [
  'alter table "S"."api_key" add column "token_format" smallint null',
  'create index "IDX_api_key_token_format" on "S"."api_key" ("token_format")',
];

/** What widening the quota does, on PostgreSQL: one change of type, to 64 bits. */
const WIDEN_REMAINING_POSTGRES_DDL = ['alter table "S"."api_key" alter column "remaining" type bigint'];

/** The audit log's table, on PostgreSQL: no foreign key to api_key (a trail outlives its key), indexed for a key's, an actor's and the whole log's trail in time. */
const AUDIT_EVENT_POSTGRES_DDL = [
  'create table "S"."api_key_audit_event" ("id" text, "action" text not null, "key_id" text not null, "actor_id" text null, "at" timestamptz not null, "changes" text not null, "details" text null, constraint "api_key_audit_event_pkey" primary key ("id"))',
  'create index "IDX_api_key_audit_event_key_at" on "S"."api_key_audit_event" ("key_id", "at")',
  'create index "IDX_api_key_audit_event_actor_at" on "S"."api_key_audit_event" ("actor_id", "at")',
  'create index "IDX_api_key_audit_event_at" on "S"."api_key_audit_event" ("at")',
];

/** Verification counts, on PostgreSQL: a row per key, hour and code, and an index for the retention's deletes. */
const USAGE_POSTGRES_DDL = [
  'create table "S"."api_key_usage" ("key_id" text not null, "hour" timestamptz not null, "code" text not null, "count" bigint not null, constraint "api_key_usage_pkey" primary key ("key_id", "hour", "code"))',
  'create index "IDX_api_key_usage_hour" on "S"."api_key_usage" ("hour")',
];

forEachBackend(
  "migrations",
  (db) => {
    async function withScratch(work: (scratch: Scratch) => Promise<void>): Promise<void> {
      const scratch = await db.scratch();
      try {
        await work(scratch);
      } finally {
        await scratch.drop();
      }
    }

    /** Index name to whether it is unique and whether it is partial (WHERE deleted_at IS NULL). */
    async function indexes(table: string): Promise<Map<string, { unique: boolean; partial: boolean }>> {
      const found = new Map<string, { unique: boolean; partial: boolean }>();
      switch (db.dialect.name) {
        case "postgres": {
          const { rows } = await db.knex.raw<{ rows: { indexname: string; indexdef: string }[] }>(
            "select indexname, indexdef from pg_indexes where schemaname = ? and tablename = ?",
            [db.schema!, table],
          );
          for (const row of rows) found.set(row.indexname, { unique: /UNIQUE/.test(row.indexdef), partial: /WHERE \(deleted_at IS NULL\)/.test(row.indexdef) });
          return found;
        }
        case "mysql": {
          const rows = (await db.knex
            .select({ name: "INDEX_NAME", nonUnique: "NON_UNIQUE" })
            .from("information_schema.STATISTICS")
            .where({ TABLE_SCHEMA: db.schema!, TABLE_NAME: table })) as { name: string; nonUnique: number }[];
          for (const row of rows) found.set(row.name, { unique: Number(row.nonUnique) === 0, partial: false });
          return found;
        }
        case "sqlite": {
          const rows = (await db.knex.select("name", "sql").from("sqlite_master").where({ type: "index", tbl_name: table })) as { name: string; sql: string | null }[];
          for (const row of rows) found.set(row.name, { unique: /^create unique/i.test(row.sql ?? ""), partial: /where `deleted_at` is null$/i.test(row.sql ?? "") });
          return found;
        }
      }
    }

    it("creates our tables with a ledger of their own, and runs again as a no-op", async () => {
      assert.deepEqual(await db.tables(), OUR_TABLES);
      await runMigrations(db.knex, { schema: db.schema });
      await db.open();
      const ledger = await db.table(MIGRATIONS_TABLE).select("name");
      assert.deepEqual(ledger.map((row: { name: string }) => row.name), [
        "20261123000000_create_api_key",
        "20261201000000_create_api_key_secret",
        "20261202000000_add_key_policy",
        "20261210000000_add_token_format",
        "20261220000000_widen_remaining",
        "20261231000000_create_api_key_audit_event",
        "20261231010000_create_api_key_usage",
        "20261231020000_add_allowed_ips",
      ]);
    });

    it("survives several services migrating the same fresh schema at once", async () => {
      await withScratch(async ({ knex, schema, tables }) => {
        await Promise.all(Array.from({ length: 4 }, () => runMigrations(knex, { schema })));
        assert.deepEqual(await tables(), OUR_TABLES);
      });
    });

    it("exports a MigrationSource an app can run with its own ledger", async () => {
      await withScratch(async ({ knex, schema, tables }) => {
        const config: Knex.MigratorConfig = { migrationSource: apiKeyMigrations({ schema }), tableName: "app_migrations", schemaName: schema };
        await knex.migrate.latest(config);
        const service = await initialize({ database: knex, schema, runMigrations: false, logger: { warn: () => {}, error: () => {} } });
        const key = await service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
        assert.ok(await service.authenticate(key.token));
        await service.close();
        await knex.migrate.rollback(config, true);
        assert.deepEqual(await tables(), ["app_migrations", "app_migrations_lock"]);
      });
    });

    it("makes one deployment secret, however many instances ask for it at once", async () => {
      const secrets = await Promise.all(Array.from({ length: 8 }, () => readDeploymentSecret(new KnexApiKeyStore(db.knex, db.schema))));
      assert.equal(secrets[0]!.length, 32);
      for (const secret of secrets) assert.ok(secret.equals(secrets[0]!));
      assert.deepEqual(await db.table("api_key_secret").select("name"), [{ name: DEPLOYMENT_SECRET_NAME }]);
      assert.ok((await readDeploymentSecret(new KnexApiKeyStore(db.knex, db.schema))).equals(secrets[0]!), "read back later");
    });

    it("declares the primary keys, the unique token index, the type check and the partial indexes where the dialect has them", async () => {
      const keyIndexes = await indexes("api_key");
      assert.equal(keyIndexes.get("IDX_api_key_token_unique")?.unique, true);
      assert.equal(keyIndexes.get("IDX_api_key_type")?.unique, false);
      // MySQL has no partial indexes: there they cover every row.
      const partial = db.dialect.name !== "mysql";
      for (const name of ["IDX_api_key_deleted_at", "IDX_api_key_revoked_at", "IDX_api_key_redacted"]) {
        assert.deepEqual(keyIndexes.get(name), { unique: false, partial }, name);
      }
      assert.ok((await indexes("api_key_link")).has("IDX_api_key_link_resource"));
      await assert.rejects(
        db.table("api_key").insert({ id: "x", token: "t", redacted: "r", title: "t", type: "admin", created_by: "u" }),
        /api_key_type_check/,
      );
      await db.table("api_key").insert({ id: "x", token: "t", redacted: "r", title: "t", type: "secret", created_by: "u" });
      await assert.rejects(db.table("api_key").insert({ id: "x", token: "t2", redacted: "r", title: "t", type: "secret", created_by: "u" }));
      await assert.rejects(db.table("api_key").insert({ id: "y", token: "t", redacted: "r", title: "t", type: "secret", created_by: "u" }));
    });

    if (db.name === "mariadb") {
      it("on MySQL, compares every string column bytewise and keeps milliseconds in every timestamp", async () => {
        const columns = (await db.knex
          .select({ table: "TABLE_NAME", name: "COLUMN_NAME", type: "COLUMN_TYPE", collation: "COLLATION_NAME" })
          .from("information_schema.COLUMNS")
          .where({ TABLE_SCHEMA: db.schema! })
          .whereIn("TABLE_NAME", ["api_key", "api_key_link", "api_key_secret", "api_key_audit_event", "api_key_usage"])) as { table: string; name: string; type: string; collation: string | null }[];
        const strings = columns.filter((column) => column.collation !== null);
        assert.ok(strings.length >= 9);
        for (const column of strings) assert.match(column.collation!, /^utf8mb4_(0900|nopad)_bin$/, `${column.table}.${column.name}`);
        const timestamps = columns.filter((column) => column.name.endsWith("_at"));
        assert.ok(timestamps.length >= 6);
        for (const column of timestamps) assert.equal(column.type, "datetime(3)", `${column.table}.${column.name}`);
      });
    }

    if (db.name === "postgres" || db.name === "pglite") {
      it("keeps the PostgreSQL DDL of the first release, statement by statement, then adds the key policy and the token format in place, widens the quota and adds the audit log and the verification counts", async () => {
        await withScratch(async ({ knex, schema }) => {
          const statements: string[] = [];
          const listener = (query: { sql: string }) => statements.push(query.sql);
          knex.on("query", listener);
          try {
            await runMigrations(knex, { schema });
          } finally {
            knex.removeListener("query", listener);
          }
          const ddl = statements
            .filter((sql) => /^(create|alter) /.test(sql) && !/api_key_migrations|api_key_secret/.test(sql) && !sql.startsWith("create schema"))
            .map((sql) => sql.replaceAll(`"${schema!}"`, '"S"'));
          assert.deepEqual(ddl, [...FIRST_RELEASE_POSTGRES_DDL, ...KEY_POLICY_POSTGRES_DDL, ...TOKEN_FORMAT_POSTGRES_DDL, ...WIDEN_REMAINING_POSTGRES_DDL, ...AUDIT_EVENT_POSTGRES_DDL, ...USAGE_POSTGRES_DDL, 'alter table "S"."api_key" add column "allowed_ips" text null']);
        });
      });
    }

    it("upgrades keys made before the key policy in place: they authenticate unchanged, with the new fields at their defaults", async () => {
      await withScratch(async ({ knex, schema }) => {
        // The schema as it was before the key-policy migration: only the earlier migrations.
        const all = await apiKeyMigrations({ schema }).getMigrations([]);
        const before = all.slice(0, all.findIndex((migration) => migration.name === "20261202000000_add_key_policy"));
        assert.equal(before.length, 2);
        if (schema && db.dialect.name === "postgres") await knex.raw("create schema if not exists ??", [schema]);
        await knex.migrate.latest({
          migrationSource: {
            getMigrations: async () => before,
            getMigrationName: (migration: ApiKeyMigration) => migration.name,
            getMigration: async (migration: ApiKeyMigration) => migration,
          },
          tableName: MIGRATIONS_TABLE,
          schemaName: schema,
        });
        // Rows in the old shape, written through the store as the previous release wrote them.
        const oldStore = new KnexApiKeyStore(knex, schema);
        const at = new Date(Date.UTC(2026, 5, 1, 12, 0, 0, 123));
        const make = (id: string, type: ApiKeyType, revoked: boolean) => {
          const token = generateToken(type);
          const record = {
            id, token: storedTokenValue(token, type), redacted: redactToken(token), title: `old ${id}`, type,
            last_used_at: null, created_by: "user_old", created_at: at, updated_at: at, deleted_at: null,
            revoked_by: revoked ? "admin" : null, revoked_at: revoked ? at : null,
          };
          return { token, record };
        };
        const secret = make("apk_old_secret", "secret", false);
        const publishable = make("apk_old_pub", "publishable", false);
        const revoked = make("apk_old_revoked", "secret", true);
        await oldStore.insert([secret, publishable, revoked].map(({ record }) => record as unknown as ApiKeyRecord));
        await oldStore.addLinks(publishable.record.id, "sales_channel", ["sc_1"]);

        await runMigrations(knex, { schema });
        const service = await initialize({ database: knex, schema, runMigrations: false, cache: false, redis: false, logger: { warn: () => {}, error: () => {} } });
        try {
          const defaults = { expires_at: null, owner_id: null, scopes: [], metadata: {}, rate_limits: [], remaining: null, refill: null, allowed_ips: [], token_format: 1 };
          const found = await service.authenticate(secret.token);
          assert.deepEqual(found, { ...secret.record, token: "", ...defaults });
          const match = await service.authenticatePublishable(publishable.token);
          assert.deepEqual(match, { api_key: { ...publishable.record, ...defaults }, sales_channel_ids: ["sc_1"] });
          assert.equal(await service.authenticate(revoked.token), false);
          assert.deepEqual((await service.verifyApiKey(revoked.token)).code, "revoked");
          const listed = await service.listApiKeys({ owner_id: null, expires_at: null });
          assert.deepEqual(listed.map((key) => key.id), ["apk_old_pub", "apk_old_revoked", "apk_old_secret"]);
          assert.deepEqual(listed.find((key) => key.id === "apk_old_revoked"), { ...revoked.record, token: "", ...defaults });
          // And the new fields can be written on an old key.
          const updated = await service.updateApiKeys(secret.record.id, { scopes: ["orders:read"], owner_id: "org_1" });
          assert.deepEqual([updated.scopes, updated.owner_id], [["orders:read"], "org_1"]);
          assert.equal((await service.verifyApiKey(secret.token, { scopes: ["orders:read"] })).code, "valid");
        } finally {
          await service.close();
        }
      });
    });

    it("indexes owner_id and expires_at, partial on live keys where the dialect can", async () => {
      const keyIndexes = await indexes("api_key");
      const partial = db.dialect.name !== "mysql";
      for (const name of ["IDX_api_key_owner_id", "IDX_api_key_expires_at"]) {
        assert.deepEqual(keyIndexes.get(name), { unique: false, partial }, name);
      }
    });

    it("with runMigrations off, leaves the schema alone", async () => {
      await withScratch(async ({ knex, schema, tables }) => {
        const service = await initialize({ database: knex, schema, runMigrations: false, logger: { warn: () => {}, error: () => {} } });
        // Missing tables are a deployment mistake, not an outage.
        await rejectsWith(service.listApiKeys(), "unknown_error");
        await service.close();
        assert.deepEqual(await tables(), []);
      });
    });
  },
  { freshSchema: true },
);

// Schema migrations as a Knex MigrationSource with a ledger table of their own, so they never
// mix with an app's `knex_migrations`. Exported for apps that run migrations in their pipeline.
// The same migrations run on PostgreSQL (and PGlite), MySQL/MariaDB and SQLite.
import type { Knex } from "knex";
import { type Dialect, type DialectName, assertSchemaSupported, dialectOf, qualifiedTable } from "./dialect";

export interface ApiKeyMigration {
  name: string;
  up(knex: Knex): Promise<void>;
  down(knex: Knex): Promise<void>;
}

/** The ledger table our migrator records applied migrations in. */
export const MIGRATIONS_TABLE = "api_key_migrations";

/** How the columns of our tables are declared on one dialect. */
interface ColumnTypes {
  /** A string compared by equality and indexed (ids, tokens, types); `length` matters on MySQL only. */
  key(table: Knex.CreateTableBuilder, name: string, length: number): Knex.ColumnBuilder;
  /** A string compared by equality but not indexed (titles, actors, JSON documents). */
  text(table: Knex.CreateTableBuilder, name: string): Knex.ColumnBuilder;
  /** An instant, with at least millisecond precision. */
  timestamp(table: Knex.CreateTableBuilder, name: string): Knex.ColumnBuilder;
  /** The default of a creation timestamp, in the form `timestamp` stores. */
  now(knex: Knex): Knex.Raw;
  /** Table-wide options (looked up before Knex's synchronous table callback runs). */
  tableOptions(knex: Knex): Promise<(table: Knex.CreateTableBuilder) => void>;
}

/**
 * MySQL compares strings with the collation of their column, and its default collations
 * ignore case (and trailing spaces): a publishable token typed in another case would match.
 * Our columns use a binary collation that also keeps trailing spaces significant: MySQL 8
 * calls it utf8mb4_0900_bin, MariaDB utf8mb4_nopad_bin. utf8mb4_bin, on servers that have
 * neither, is binary but pads.
 */
const BINARY_COLLATIONS = ["utf8mb4_0900_bin", "utf8mb4_nopad_bin", "utf8mb4_bin"];

async function binaryCollation(knex: Knex): Promise<string> {
  const rows = (await knex
    .select({ name: "COLLATION_NAME" })
    .from("information_schema.COLLATIONS")
    .whereIn("COLLATION_NAME", BINARY_COLLATIONS)) as { name: string }[];
  const names = new Set(rows.map((row) => row.name));
  return BINARY_COLLATIONS.find((name) => names.has(name)) ?? "utf8mb4_bin";
}

const COLUMN_TYPES: Record<DialectName, ColumnTypes> = {
  // Databases in the field were created with exactly these types: they must never change.
  postgres: {
    key: (table, name) => table.text(name),
    text: (table, name) => table.text(name),
    timestamp: (table, name) => table.timestamp(name, { useTz: true }),
    now: (knex) => knex.fn.now(),
    tableOptions: async () => () => {},
  },
  // Indexed strings need a length on MySQL (their index keys are at most 3072 bytes);
  // datetime(3) keeps milliseconds and, unlike timestamp, reaches past 2038. Connections are
  // in UTC (see connect.ts).
  mysql: {
    key: (table, name, length) => table.string(name, length),
    // longtext: unbounded in practice, as PostgreSQL's text (MySQL's text stops at 64 KiB).
    text: (table, name) => table.text(name, "longtext"),
    timestamp: (table, name) => table.datetime(name, { precision: 3 }),
    now: (knex) => knex.raw("CURRENT_TIMESTAMP(3)"),
    tableOptions: async (knex) => {
      const collation = await binaryCollation(knex);
      return (table) => {
        table.engine("InnoDB");
        table.charset("utf8mb4");
        table.collate(collation);
      };
    },
  },
  // SQLite compares text bytewise by default. Timestamps are epoch milliseconds (see dialect.ts).
  sqlite: {
    key: (table, name) => table.text(name),
    text: (table, name) => table.text(name),
    timestamp: (table, name) => table.datetime(name),
    now: (knex) => knex.raw("(cast((julianday('now') - 2440587.5) * 86400000 as integer))"),
    tableOptions: async () => () => {},
  },
};

function migrationList(schema: string | undefined): ApiKeyMigration[] {
  return [
    {
      name: "20261123000000_create_api_key",
      async up(knex) {
        const types = COLUMN_TYPES[dialectOf(knex).name];
        const now = types.now(knex);
        const configure = await types.tableOptions(knex);
        await knex.schema.withSchema(schema ?? "").createTable("api_key", (table) => {
          configure(table);
          types.key(table, "id", 64).primary();
          // Publishable token in clear; for secret keys, only the SHA-256/HMAC of the token.
          types.key(table, "token", 255).notNullable().unique({ indexName: "IDX_api_key_token_unique" });
          types.key(table, "redacted", 255).notNullable();
          types.text(table, "title").notNullable();
          types.key(table, "type", 16).notNullable();
          table.check("?? in ('publishable', 'secret')", ["type"], "api_key_type_check");
          types.timestamp(table, "last_used_at").nullable();
          types.text(table, "created_by").notNullable();
          types.timestamp(table, "created_at").notNullable().defaultTo(now);
          types.timestamp(table, "updated_at").notNullable().defaultTo(now);
          types.timestamp(table, "deleted_at").nullable();
          types.text(table, "revoked_by").nullable();
          types.timestamp(table, "revoked_at").nullable();
          table.index(["type"], "IDX_api_key_type");
          // Partial where the dialect has them (PostgreSQL, SQLite); MySQL builds plain indexes.
          const live = knex.whereNull("deleted_at");
          table.index(["deleted_at"], "IDX_api_key_deleted_at", { predicate: live });
          table.index(["revoked_at"], "IDX_api_key_revoked_at", { predicate: live });
          table.index(["redacted"], "IDX_api_key_redacted", { predicate: live });
        });
        await knex.schema.withSchema(schema ?? "").createTable("api_key_link", (table) => {
          configure(table);
          types
            .key(table, "api_key_id", 64)
            .notNullable()
            .references("id")
            .inTable(qualifiedTable(schema, "api_key"))
            .onDelete("CASCADE");
          types.key(table, "resource_type", 255).notNullable();
          types.key(table, "resource_id", 255).notNullable();
          types.timestamp(table, "created_at").notNullable().defaultTo(now);
          table.primary(["api_key_id", "resource_type", "resource_id"]);
          table.index(["resource_type", "resource_id"], "IDX_api_key_link_resource");
        });
      },
      async down(knex) {
        await knex.schema.withSchema(schema ?? "").dropTable("api_key_link");
        await knex.schema.withSchema(schema ?? "").dropTable("api_key");
      },
    },
    {
      // Server-side secrets by name; today one row, the deployment secret (lib/deployment-secret.ts),
      // created by the first instance that needs it.
      name: "20261201000000_create_api_key_secret",
      async up(knex) {
        const types = COLUMN_TYPES[dialectOf(knex).name];
        const configure = await types.tableOptions(knex);
        await knex.schema.withSchema(schema ?? "").createTable("api_key_secret", (table) => {
          configure(table);
          types.key(table, "name", 64).primary();
          types.key(table, "value", 255).notNullable();
          types.timestamp(table, "created_at").notNullable().defaultTo(types.now(knex));
        });
      },
      async down(knex) {
        await knex.schema.withSchema(schema ?? "").dropTable("api_key_secret");
      },
    },
    {
      // Key policy: expiry, scopes, owner, the app's metadata, rate limits and a usage quota.
      // Every column is added nullable with no default, so no existing row is rewritten and
      // reads go on meanwhile; a null in a JSON column reads as its fallback (lib/columns.ts).
      // JSON is kept as text: the same on every dialect.
      name: "20261202000000_add_key_policy",
      async up(knex) {
        const types = COLUMN_TYPES[dialectOf(knex).name];
        await knex.schema.withSchema(schema ?? "").alterTable("api_key", (table) => {
          types.timestamp(table, "expires_at").nullable();
          types.key(table, "owner_id", 255).nullable();
          types.text(table, "scopes").nullable();
          types.text(table, "metadata").nullable();
          types.text(table, "rate_limits").nullable();
          table.integer("remaining").nullable();
          types.text(table, "refill").nullable();
          // When the usage quota was last refilled, so that one refill per day or month happens
          // exactly once across instances (see consumeQuota); null: the key's creation counts.
          types.timestamp(table, "refilled_at").nullable();
        });
        await knex.schema.withSchema(schema ?? "").alterTable("api_key", (table) => {
          // Partial where the dialect has them (PostgreSQL, SQLite); MySQL builds plain indexes.
          const live = knex.whereNull("deleted_at");
          table.index(["owner_id"], "IDX_api_key_owner_id", { predicate: live });
          table.index(["expires_at"], "IDX_api_key_expires_at", { predicate: live });
        });
      },
      async down(knex) {
        await knex.schema.withSchema(schema ?? "").alterTable("api_key", (table) => {
          table.dropIndex(["owner_id"], "IDX_api_key_owner_id");
          table.dropIndex(["expires_at"], "IDX_api_key_expires_at");
        });
        await knex.schema.withSchema(schema ?? "").alterTable("api_key", (table) => {
          table.dropColumns("expires_at", "owner_id", "scopes", "metadata", "rate_limits", "remaining", "refill", "refilled_at");
        });
      },
    },
    {
      // Token format (lib/tokens.ts): 2 for tagged tokens. Added nullable with no default, so no
      // row is rewritten: keys issued before it hold null, which reads as format 1. The index
      // serves the probe for format-1 keys that remain (KnexApiKeyStore.hasLegacyTokens).
      name: "20261210000000_add_token_format",
      async up(knex) {
        await knex.schema.withSchema(schema ?? "").alterTable("api_key", (table) => {
          table.smallint("token_format").nullable();
        });
        await knex.schema.withSchema(schema ?? "").alterTable("api_key", (table) => {
          table.index(["token_format"], "IDX_api_key_token_format");
        });
      },
      async down(knex) {
        await knex.schema.withSchema(schema ?? "").alterTable("api_key", (table) => {
          table.dropIndex(["token_format"], "IDX_api_key_token_format");
        });
        await knex.schema.withSchema(schema ?? "").alterTable("api_key", (table) => {
          table.dropColumns("token_format");
        });
      },
    },
    {
      // A usage quota holds any whole number up to 2^53 - 1, as the API takes it: a 32-bit
      // `remaining` refused larger ones with a 500, and a refill of more set every later use
      // failing. SQLite's INTEGER already holds 64 bits, so only the others change.
      name: "20261220000000_widen_remaining",
      async up(knex) {
        await setRemainingType(knex, schema, "bigint");
      },
      async down(knex) {
        await setRemainingType(knex, schema, "integer");
      },
    },
    {
      // The audit log (lib/audit-log.ts). No foreign key to api_key: a key's trail outlives it.
      name: "20261231000000_create_api_key_audit_event",
      async up(knex) {
        const types = COLUMN_TYPES[dialectOf(knex).name];
        const configure = await types.tableOptions(knex);
        await knex.schema.withSchema(schema ?? "").createTable("api_key_audit_event", (table) => {
          configure(table);
          types.key(table, "id", 64).primary();
          types.key(table, "action", 32).notNullable();
          types.key(table, "key_id", 64).notNullable();
          types.key(table, "actor_id", 255).nullable();
          types.timestamp(table, "at").notNullable();
          types.text(table, "changes").notNullable();
          types.text(table, "details").nullable();
          table.index(["key_id", "at"], "IDX_api_key_audit_event_key_at");
          table.index(["actor_id", "at"], "IDX_api_key_audit_event_actor_at");
          table.index(["at"], "IDX_api_key_audit_event_at");
        });
      },
      async down(knex) {
        await knex.schema.withSchema(schema ?? "").dropTable("api_key_audit_event");
      },
    },
    {
      // Verification counts (lib/usage-analytics.ts): a row per key, hour and code, which every
      // instance's flush adds to. Tokens of no key count under key_id "", as a key can hold no
      // null. No foreign key: counts outlive a deleted key until their retention ends.
      name: "20261231010000_create_api_key_usage",
      async up(knex) {
        const types = COLUMN_TYPES[dialectOf(knex).name];
        const configure = await types.tableOptions(knex);
        await knex.schema.withSchema(schema ?? "").createTable("api_key_usage", (table) => {
          configure(table);
          types.key(table, "key_id", 64).notNullable();
          types.timestamp(table, "hour").notNullable();
          types.key(table, "code", 32).notNullable();
          table.bigInteger("count").notNullable();
          table.primary(["key_id", "hour", "code"]);
          table.index(["hour"], "IDX_api_key_usage_hour");
        });
      },
      async down(knex) {
        await knex.schema.withSchema(schema ?? "").dropTable("api_key_usage");
      },
    },
    {
      // IP allow-lists (lib/ip-allow-list.ts), as JSON text like the other lists; added nullable
      // with no default, so no row is rewritten: null reads as [] (any address).
      name: "20261231020000_add_allowed_ips",
      async up(knex) {
        const types = COLUMN_TYPES[dialectOf(knex).name];
        await knex.schema.withSchema(schema ?? "").alterTable("api_key", (table) => {
          types.text(table, "allowed_ips").nullable();
        });
      },
      async down(knex) {
        await knex.schema.withSchema(schema ?? "").alterTable("api_key", (table) => {
          table.dropColumns("allowed_ips");
        });
      },
    },
  ];
}

/** Changes the type of `remaining` in one statement (Knex's `alter()` would send three on PostgreSQL). */
async function setRemainingType(knex: Knex, schema: string | undefined, type: "bigint" | "integer"): Promise<void> {
  const table = qualifiedTable(schema, "api_key");
  const dialect = dialectOf(knex).name;
  if (dialect === "postgres") await knex.raw(`alter table ?? alter column ?? type ${type}`, [table, "remaining"]);
  if (dialect === "mysql") await knex.raw(`alter table ?? modify ?? ${type} null`, [table, "remaining"]);
}

/** A Knex MigrationSource for our tables, created in `schema` when one is given. */
export function apiKeyMigrations(options: { schema?: string } = {}): Knex.MigrationSource<ApiKeyMigration> {
  const migrations = migrationList(options.schema);
  return {
    getMigrations: async () => migrations,
    getMigrationName: (migration) => migration.name,
    getMigration: async (migration) => migration,
  };
}

/** The two methods of Knex's client (typed `any` by Knex) that hold one connection for a named lock. */
interface ConnectionPool {
  acquireConnection(): Promise<unknown>;
  releaseConnection(connection: unknown): Promise<void>;
}

/** How long a boot waits for another process's migrations on MySQL, in seconds. */
const MYSQL_LOCK_WAIT_SECONDS = 60;
/** A table SQLite boots create and drop at once, only to take the database's write lock. */
const SQLITE_BOOT_LOCK = `${MIGRATIONS_TABLE}_boot`;

/**
 * Runs `migrate` while no other process migrates the same schema. Knex creates its ledger
 * tables before taking its own lock, and fails rather than waits when that lock is taken, so
 * concurrent boots would otherwise collide; with this lock, the processes that wait find
 * nothing left to do.
 */
async function serialized(knex: Knex, dialect: Dialect, schema: string | undefined, migrate: (db: Knex) => Promise<void>): Promise<void> {
  switch (dialect.name) {
    case "postgres":
      // A transaction-scoped advisory lock, per schema.
      return knex.transaction(async (trx) => {
        await trx.raw("select pg_advisory_xact_lock(hashtext(?))", [`express-api-keys:${schema ?? ""}`]);
        if (schema) await trx.raw("create schema if not exists ??", [schema]);
        await migrate(trx);
      });
    case "mysql": {
      // DDL commits implicitly on MySQL, so no transaction can hold a lock across the
      // migrations: a named lock held by one connection does, while the migrator uses others
      // (the pool needs two connections). Lock names are at most 64 characters, hence the hash.
      const pool = knex.client as ConnectionPool;
      const connection = await pool.acquireConnection();
      const name = "concat('express-api-keys:', sha1(coalesce(?, database(), '')))";
      try {
        const [rows] = (await knex.raw(`select get_lock(${name}, ?) as acquired`, [schema ?? null, MYSQL_LOCK_WAIT_SECONDS]).connection(connection)) as [
          { acquired: number | null }[],
        ];
        if (rows[0]?.acquired !== 1) {
          throw new Error(`express-api-keys: waited ${MYSQL_LOCK_WAIT_SECONDS} s for another process's migrations to finish; try again`);
        }
        try {
          if (schema) await knex.raw("create database if not exists ??", [schema]);
          await migrate(knex);
        } finally {
          // Best effort: a connection that was lost has released its lock with it, and the
          // migration's own error matters more.
          await knex
            .raw(`select release_lock(${name})`, [schema ?? null])
            .connection(connection)
            .catch(() => {});
        }
      } finally {
        await pool.releaseConnection(connection);
      }
      return;
    }
    case "sqlite":
      // SQLite has one writer at a time. A transaction's first write takes the write lock (as
      // BEGIN IMMEDIATE would) and other connections wait for it in their busy handler; creating
      // and dropping a table is a write that leaves nothing behind, even on the first boot.
      return knex.transaction(async (trx) => {
        await trx.raw("create table ?? (id integer)", [SQLITE_BOOT_LOCK]);
        await trx.raw("drop table ??", [SQLITE_BOOT_LOCK]);
        await migrate(trx);
      });
  }
}

/**
 * Brings the schema up to date. Safe to call on every boot and from several processes at
 * once: a lock per schema serialises our migrator (an advisory lock on PostgreSQL, a named
 * lock on MySQL, the write lock on SQLite).
 */
export async function runMigrations(knex: Knex, options: { schema?: string } = {}): Promise<void> {
  const { schema } = options;
  const dialect = dialectOf(knex);
  assertSchemaSupported(dialect, schema);
  await serialized(knex, dialect, schema, (db) =>
    db.migrate.latest({
      migrationSource: apiKeyMigrations({ schema }),
      tableName: MIGRATIONS_TABLE,
      schemaName: schema,
    }),
  );
}

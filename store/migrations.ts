// Schema migrations as a Knex MigrationSource with a ledger table of their own, so they never
// mix with an app's `knex_migrations`. Exported for apps that run migrations in their pipeline.
import type { Knex } from "knex";
import { qualifiedTable } from "./knex-store";

export interface ApiKeyMigration {
  name: string;
  up(knex: Knex): Promise<void>;
  down(knex: Knex): Promise<void>;
}

/** The ledger table our migrator records applied migrations in. */
export const MIGRATIONS_TABLE = "api_key_migrations";

function migrationList(schema: string | undefined): ApiKeyMigration[] {
  return [
    {
      name: "20261123000000_create_api_key",
      async up(knex) {
        await knex.schema.withSchema(schema ?? "").createTable("api_key", (table) => {
          table.text("id").primary();
          // Publishable token in clear; for secret keys, only the SHA-256/HMAC of the token.
          table.text("token").notNullable().unique({ indexName: "IDX_api_key_token_unique" });
          table.text("redacted").notNullable();
          table.text("title").notNullable();
          table.text("type").notNullable();
          table.check("?? in ('publishable', 'secret')", ["type"], "api_key_type_check");
          table.timestamp("last_used_at", { useTz: true }).nullable();
          table.text("created_by").notNullable();
          table.timestamp("created_at", { useTz: true }).notNullable().defaultTo(knex.fn.now());
          table.timestamp("updated_at", { useTz: true }).notNullable().defaultTo(knex.fn.now());
          table.timestamp("deleted_at", { useTz: true }).nullable();
          table.text("revoked_by").nullable();
          table.timestamp("revoked_at", { useTz: true }).nullable();
          table.index(["type"], "IDX_api_key_type");
          const live = knex.whereNull("deleted_at");
          table.index(["deleted_at"], "IDX_api_key_deleted_at", { predicate: live });
          table.index(["revoked_at"], "IDX_api_key_revoked_at", { predicate: live });
          table.index(["redacted"], "IDX_api_key_redacted", { predicate: live });
        });
        await knex.schema.withSchema(schema ?? "").createTable("api_key_link", (table) => {
          table
            .text("api_key_id")
            .notNullable()
            .references("id")
            .inTable(qualifiedTable(schema, "api_key"))
            .onDelete("CASCADE");
          table.text("resource_type").notNullable();
          table.text("resource_id").notNullable();
          table.timestamp("created_at", { useTz: true }).notNullable().defaultTo(knex.fn.now());
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
      // created by the first instance that needs it. Portable DDL only: this runs on every dialect.
      name: "20261201000000_create_api_key_secret",
      async up(knex) {
        await knex.schema.withSchema(schema ?? "").createTable("api_key_secret", (table) => {
          table.string("name", 64).primary();
          table.string("value", 255).notNullable();
          table.timestamp("created_at", { useTz: true }).notNullable().defaultTo(knex.fn.now());
        });
      },
      async down(knex) {
        await knex.schema.withSchema(schema ?? "").dropTable("api_key_secret");
      },
    },
  ];
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

/**
 * Brings the schema up to date. Safe to call on every boot and from several processes at
 * once: a transaction-scoped advisory lock serialises our migrator per schema (Knex creates
 * its ledger tables before taking its own lock, so concurrent boots would otherwise collide),
 * and the processes that wait find nothing left to do.
 */
export async function runMigrations(knex: Knex, options: { schema?: string } = {}): Promise<void> {
  const { schema } = options;
  await knex.transaction(async (trx) => {
    await trx.raw("select pg_advisory_xact_lock(hashtext(?))", [`express-api-keys:${schema ?? ""}`]);
    if (schema) await trx.raw("create schema if not exists ??", [schema]);
    await trx.migrate.latest({
      migrationSource: apiKeyMigrations({ schema }),
      tableName: MIGRATIONS_TABLE,
      schemaName: schema,
    });
  });
}

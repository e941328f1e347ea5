// The SQL store: every read and write of `api_key` and `api_key_link`, through Knex only.
// Runs on PostgreSQL (pg) and on embedded PGlite; knows nothing of HTTP or of tokens.
import type { Knex } from "knex";
import type { ApiKeyError } from "../lib/errors";
import type { Condition, NormalizedFindConfig } from "../lib/filters";
import type { ApiKeyPatch, ApiKeyRecord, ApiKeyStore } from "../lib/store";
import type { ApiKeyType } from "../lib/types";
import { applyCondition } from "./compile-filter";
import { runMigrations } from "./migrations";
import { translateStoreError } from "./store-errors";

const COLUMNS: (keyof ApiKeyRecord)[] = [
  "id",
  "token",
  "redacted",
  "title",
  "type",
  "last_used_at",
  "created_by",
  "created_at",
  "updated_at",
  "deleted_at",
  "revoked_by",
  "revoked_at",
];

/** Rows or ids per statement: far under every driver's bind-parameter limit (SQLite: 32,766). */
const BATCH = 1000;

/** `items` in slices of BATCH, for lists whose length no caller bounds (the keys a selector matched, a key's links). */
function* batches<T>(items: readonly T[]): Generator<T[]> {
  for (let i = 0; i < items.length; i += BATCH) yield items.slice(i, i + BATCH);
}

function isKnexTransaction(value: unknown): value is Knex.Transaction {
  return typeof value === "function" && typeof (value as Partial<Knex.Transaction>).commit === "function" && "executionPromise" in value;
}

/** A table name for raw SQL, qualified by the schema when there is one (bound with `??`). */
export function qualifiedTable(schema: string | undefined, table: string): string {
  return schema ? `${schema}.${table}` : table;
}

export class KnexApiKeyStore implements ApiKeyStore {
  constructor(
    private readonly db: Knex | Knex.Transaction,
    private readonly schema?: string,
  ) {}

  /** The same store, running every query in the app's transaction (a Knex transaction). */
  within(transaction: unknown): KnexApiKeyStore {
    if (!isKnexTransaction(transaction)) {
      throw new TypeError("express-api-keys: `transaction` must be a Knex transaction of the database the store uses.");
    }
    return new KnexApiKeyStore(transaction, this.schema);
  }

  /** Resolves once the app's Knex transaction has ended, committed or rolled back. */
  async settled(transaction: unknown): Promise<void> {
    if (isKnexTransaction(transaction)) await transaction.executionPromise.catch(() => undefined);
  }

  translateError(error: unknown): ApiKeyError {
    return translateStoreError(error);
  }

  /** Brings our tables up to date (see store/migrations.ts). */
  migrate(): Promise<void> {
    return runMigrations(this.db as Knex, { schema: this.schema });
  }

  /** Runs `work` in a transaction (a savepoint when already inside one). */
  transaction<T>(work: (store: ApiKeyStore) => Promise<T>): Promise<T> {
    return this.db.transaction((trx) => work(new KnexApiKeyStore(trx, this.schema)));
  }

  private table(name: "api_key" | "api_key_link" | "api_key_secret"): Knex.QueryBuilder {
    const builder = this.db(name);
    return this.schema ? builder.withSchema(this.schema) : builder;
  }

  private scoped(condition: Condition, withDeleted: boolean): Knex.QueryBuilder {
    const query = this.table("api_key");
    if (!withDeleted) query.whereNull("deleted_at");
    applyCondition(query, condition);
    return query;
  }

  async insert(records: ApiKeyRecord[]): Promise<void> {
    if (records.length > 0) await this.table("api_key").insert(records);
  }

  async find(
    condition: Condition,
    config: NormalizedFindConfig,
    options: { forUpdate?: boolean } = {},
  ): Promise<ApiKeyRecord[]> {
    const query = this.scoped(condition, config.withDeleted).select(COLUMNS);
    for (const [field, direction] of config.order) query.orderBy(field, direction);
    if (config.skip !== undefined) query.offset(config.skip);
    if (config.take !== undefined) query.limit(config.take);
    if (options.forUpdate) query.forUpdate();
    return (await query) as ApiKeyRecord[];
  }

  async count(condition: Condition, withDeleted: boolean): Promise<number> {
    const [row] = (await this.scoped(condition, withDeleted).count({ count: "*" })) as { count: string | number }[];
    return Number(row?.count ?? 0);
  }

  /** One lookup through the unique index on `token`; soft-deleted rows are never returned. */
  async findByToken(storedToken: string, type: ApiKeyType): Promise<ApiKeyRecord | undefined> {
    const row = (await this.table("api_key")
      .select(COLUMNS)
      .where({ token: storedToken, type })
      .whereNull("deleted_at")
      .first()) as ApiKeyRecord | undefined;
    return row;
  }

  /**
   * A publishable key and its sales channel ids in one round trip (the ids through a subquery
   * on the link table's primary key), so a storefront request costs a single lookup.
   */
  async findPublishable(token: string): Promise<(ApiKeyRecord & { sales_channel_ids: string[] }) | undefined> {
    const links = qualifiedTable(this.schema, "api_key_link");
    const row = (await this.table("api_key")
      .select(COLUMNS.map((column) => `api_key.${column}`))
      .select(
        this.db.raw(
          `coalesce((select array_agg(l.resource_id order by l.resource_id) from ?? as l
            where l.api_key_id = api_key.id and l.resource_type = 'sales_channel'), '{}') as sales_channel_ids`,
          [links],
        ),
      )
      .where({ token, type: "publishable" })
      .whereNull("deleted_at")
      .first()) as (ApiKeyRecord & { sales_channel_ids: string[] }) | undefined;
    return row;
  }

  /**
   * Writes many keys' last use in one statement. A use older than the stored one never
   * overwrites it, so flushes from several instances can land in any order.
   */
  async recordLastUsed(uses: [id: string, at: Date][]): Promise<void> {
    if (uses.length === 0) return;
    const table = qualifiedTable(this.schema, "api_key");
    const values = uses.map(() => "(?, ?::timestamptz)").join(", ");
    await this.db.raw(
      `update ?? as k set last_used_at = v.at from (values ${values}) as v(id, at)
       where k.id = v.id and (k.last_used_at is null or k.last_used_at < v.at)`,
      [table, ...uses.flat()],
    );
  }

  async update(ids: string[], patch: ApiKeyPatch): Promise<void> {
    for (const batch of batches(ids)) await this.table("api_key").whereIn("id", batch).update(patch);
  }

  /** Deletes keys; their links go with them through the foreign key's ON DELETE CASCADE. */
  async delete(ids: string[]): Promise<void> {
    for (const batch of batches(ids)) await this.table("api_key").whereIn("id", batch).delete();
  }

  async linkedIds(apiKeyId: string, resourceType: string): Promise<string[]> {
    const rows = (await this.table("api_key_link")
      .select("resource_id")
      .where({ api_key_id: apiKeyId, resource_type: resourceType })
      .orderBy("resource_id")) as { resource_id: string }[];
    return rows.map((row) => row.resource_id);
  }

  async addLinks(apiKeyId: string, resourceType: string, resourceIds: string[]): Promise<void> {
    if (resourceIds.length === 0) return;
    const rows = resourceIds.map((resource_id) => ({ api_key_id: apiKeyId, resource_type: resourceType, resource_id }));
    await this.table("api_key_link").insert(rows).onConflict(["api_key_id", "resource_type", "resource_id"]).ignore();
  }

  async removeLinks(apiKeyId: string, resourceType: string, resourceIds: string[]): Promise<void> {
    if (resourceIds.length === 0) return;
    await this.table("api_key_link")
      .where({ api_key_id: apiKeyId, resource_type: resourceType })
      .whereIn("resource_id", resourceIds)
      .delete();
  }

  /**
   * The value of a named server-side secret, created from `candidate()` when there is none yet.
   * Race-free across instances: each inserts its own candidate, the first insert wins, and
   * every instance reads back that one row. A candidate is made (and travels in a query) only
   * while the row is missing.
   */
  async loadSecret(name: string, candidate: () => string): Promise<string> {
    const read = async () =>
      ((await this.table("api_key_secret").select("value").where({ name }).first()) as { value: string } | undefined)?.value;
    const existing = await read();
    if (existing !== undefined) return existing;
    await this.table("api_key_secret").insert({ name, value: candidate() }).onConflict("name").ignore();
    const created = await read();
    if (created === undefined) throw new Error(`express-api-keys: the secret "${name}" could not be created`);
    return created;
  }

  /** Gives `toId` every link `fromId` has, of every resource type (used by roll). */
  async copyLinks(fromId: string, toId: string): Promise<void> {
    const rows = (await this.table("api_key_link")
      .select("resource_type", "resource_id")
      .where({ api_key_id: fromId })) as { resource_type: string; resource_id: string }[];
    for (const batch of batches(rows)) await this.table("api_key_link").insert(batch.map((row) => ({ ...row, api_key_id: toId })));
  }
}

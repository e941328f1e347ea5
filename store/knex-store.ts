// The SQL store: every read and write of `api_key` and `api_key_link`, through Knex only.
// Runs on PostgreSQL (pg), embedded PGlite, MySQL/MariaDB (mysql2) and SQLite
// (better-sqlite3); what differs between them lives in dialect.ts. Knows nothing of HTTP or of tokens.
import type { Knex } from "knex";
import type { AuditEvent, AuditFilter, AuditQuery } from "../lib/audit-log";
import { API_KEY_FIELDS, DATE_FIELDS, INTEGER_FIELDS, JSON_FIELDS, fallbackOf } from "../lib/columns";
import type { ApiKeyError } from "../lib/errors";
import type { Condition, NormalizedFindConfig } from "../lib/filters";
import { IMPORTED_HASH_PREFIX, IMPORTED_TOKEN_FORMAT } from "../lib/imported-keys";
import { type QuotaConsumption, type QuotaRefill, refillIntervalStart } from "../lib/quota";
import type { ApiKeyPatch, ApiKeyRecord, ApiKeyStore } from "../lib/store";
import type { ApiKeyType } from "../lib/types";
import type { UsageCount, UsageQuery } from "../lib/usage-analytics";
import { applyCondition } from "./compile-filter";
import { type Dialect, assertSchemaSupported, dialectOf, qualifiedTable } from "./dialect";
import { KnexAuditLog } from "./knex-audit-log";
import { KnexUsageLog } from "./knex-usage";
import { runMigrations } from "./migrations";
import { translateStoreError } from "./store-errors";



function isKnexTransaction(value: unknown): value is Knex.Transaction {
  return typeof value === "function" && typeof (value as Partial<Knex.Transaction>).commit === "function" && "executionPromise" in value;
}


/** Keys that could still authenticate at `now` by their revocation: none, or one still to come. */
function notRevokedBy(now: Date): Knex.QueryCallback {
  return (query) => void query.whereNull("revoked_at").orWhere("revoked_at", ">", now);
}

/** An id in a list takes one binding; counting two leaves half the limit to the rest of the statement. */
const BINDINGS_PER_LISTED_ID = 2;

function chunks<T>(items: readonly T[], size: number): T[][] {
  const result: T[][] = [];
  for (let i = 0; i < items.length; i += size) result.push(items.slice(i, i + size));
  return result;
}

type PublishableRow = ApiKeyRecord & { sales_channel_id: string | null };

export class KnexApiKeyStore implements ApiKeyStore {
  private readonly dialect: Dialect;
  private readonly auditLog: KnexAuditLog;
  private readonly usage: KnexUsageLog;

  constructor(
    private readonly db: Knex | Knex.Transaction,
    private readonly schema?: string,
    dialect?: Dialect,
  ) {
    this.dialect = dialect ?? dialectOf(db);
    assertSchemaSupported(this.dialect, schema);
    this.auditLog = new KnexAuditLog(db, schema, this.dialect);
    this.usage = new KnexUsageLog(db, schema, this.dialect);
  }

  /** The same store, running every query in the app's transaction (a Knex transaction). */
  within(transaction: unknown): KnexApiKeyStore {
    if (!isKnexTransaction(transaction)) {
      throw new TypeError("express-api-keys: `transaction` must be a Knex transaction of the database the store uses.");
    }
    return new KnexApiKeyStore(transaction, this.schema, this.dialect);
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
  transaction<T>(work: (store: KnexApiKeyStore) => Promise<T>): Promise<T> {
    return this.db.transaction((trx) => work(new KnexApiKeyStore(trx, this.schema, this.dialect)));
  }

  private table(name: "api_key" | "api_key_link" | "api_key_secret"): Knex.QueryBuilder {
    const builder = this.db(name);
    return this.schema ? builder.withSchema(this.schema) : builder;
  }

  /**
   * A row as the driver returns it, made a record: timestamps as Dates whatever the dialect
   * stores, JSON columns (kept as text) parsed, integers as numbers, and a null in a column
   * added after the row was written read as the column's fallback (lib/columns.ts).
   */
  private record<T extends Partial<ApiKeyRecord>>(row: T): T {
    const fields = row as Record<string, unknown>;
    for (const column of DATE_FIELDS) {
      if (column in fields) fields[column] = this.dialect.toDate(fields[column]);
    }
    for (const column of JSON_FIELDS) {
      if (!(column in fields)) continue;
      const value = fields[column];
      fields[column] = value === null || value === undefined ? fallbackOf(column) : JSON.parse(value as string);
    }
    for (const column of INTEGER_FIELDS) {
      if (column in fields) fields[column] = fields[column] === null || fields[column] === undefined ? fallbackOf(column) : Number(fields[column]);
    }
    return row;
  }

  /** What a write stores: JSON columns as text (the same on every dialect). */
  private row<T extends Partial<ApiKeyRecord>>(record: T): Record<string, unknown> {
    const row: Record<string, unknown> = { ...record };
    for (const column of JSON_FIELDS) {
      if (row[column] !== undefined && row[column] !== null) row[column] = JSON.stringify(row[column]);
    }
    return row;
  }

  private scoped(condition: Condition, withDeleted: boolean): Knex.QueryBuilder {
    const query = this.table("api_key");
    if (!withDeleted) query.whereNull("deleted_at");
    applyCondition(query, condition, this.dialect);
    return query;
  }

  /**
   * Runs `write` over `items` in batches that keep each statement within the dialect's bind
   * parameter limit (and `maxRows`), all in one transaction when there is more than one batch.
   */
  private async batched<T>(
    items: readonly T[],
    bindingsEach: number,
    write: (store: KnexApiKeyStore, batch: T[]) => Promise<unknown>,
    maxRows = Infinity,
  ): Promise<void> {
    const batches = chunks(items, Math.min(Math.floor(this.dialect.maxBindings / bindingsEach), maxRows));
    if (batches.length === 1) await write(this, batches[0]!);
    else if (batches.length > 1) {
      await this.transaction(async (store) => {
        for (const batch of batches) await write(store, batch);
      });
    }
  }

  async insert(records: ApiKeyRecord[]): Promise<void> {
    await this.batched(records, API_KEY_FIELDS.length, (store, batch) => store.table("api_key").insert(batch.map((record) => this.row(record))), this.dialect.maxInsertRows);
  }

  async find(
    condition: Condition,
    config: NormalizedFindConfig,
    options: { forUpdate?: boolean } = {},
  ): Promise<ApiKeyRecord[]> {
    const query = this.scoped(condition, config.withDeleted).select(API_KEY_FIELDS);
    for (const [field, direction] of config.order) query.orderBy(field, direction);
    if (config.skip !== undefined) query.offset(config.skip);
    if (config.take !== undefined) query.limit(config.take);
    if (options.forUpdate && this.dialect.rowLocks) query.forUpdate();
    const rows = (await query) as ApiKeyRecord[];
    return rows.map((row) => this.record(row));
  }

  async count(condition: Condition, withDeleted: boolean): Promise<number> {
    const [row] = await this.scoped(condition, withDeleted).count<{ count: string | number }[]>({ count: "*" });
    return Number(row?.count ?? 0);
  }

  /** One lookup through the unique index on `token`; soft-deleted rows are never returned. */
  async findByToken(storedToken: string, type: ApiKeyType): Promise<ApiKeyRecord | undefined> {
    const row = (await this.table("api_key")
      .select(API_KEY_FIELDS)
      .where({ token: storedToken, type })
      .whereNull("deleted_at")
      .first()) as ApiKeyRecord | undefined;
    return row && this.record(row);
  }

  /**
   * A publishable key and its sales channel ids in one round trip (one row per channel, from
   * a LEFT JOIN on the link table's primary key), so a storefront request costs a single lookup.
   */
  async findPublishable(token: string): Promise<(ApiKeyRecord & { sales_channel_ids: string[] }) | undefined> {
    const rows = (await this.db({ k: qualifiedTable(this.schema, "api_key") })
      .select(API_KEY_FIELDS.map((column) => `k.${column}`))
      .select({ sales_channel_id: "l.resource_id" })
      .leftJoin({ l: qualifiedTable(this.schema, "api_key_link") }, (join) => {
        join.on("l.api_key_id", "k.id").andOnVal("l.resource_type", "sales_channel");
      })
      .where({ "k.token": token, "k.type": "publishable" })
      .whereNull("k.deleted_at")
      .orderBy("l.resource_id")) as PublishableRow[];
    const [first] = rows;
    if (!first) return undefined;
    const { sales_channel_id: _, ...record } = first;
    const sales_channel_ids = rows.flatMap((row) => (row.sales_channel_id === null ? [] : [row.sales_channel_id]));
    return { ...this.record(record), sales_channel_ids };
  }

  /**
   * Writes many keys' last use, in one statement per `maxBindings`. A use older than the
   * stored one never overwrites it, so flushes from several instances can land in any order.
   */
  async recordLastUsed(uses: [id: string, at: Date][]): Promise<void> {
    const table = qualifiedTable(this.schema, "api_key");
    await this.batched(uses, 2, (store, batch) => {
      const { sql, bindings } = this.dialect.lastUsedUpdate(table, batch);
      return store.db.raw(sql, bindings);
    });
  }

  insertAuditEvents(events: AuditEvent[]): Promise<void> {
    return this.auditLog.insert(events);
  }

  findAuditEvents(query: AuditQuery): Promise<AuditEvent[]> {
    return this.auditLog.find(query);
  }

  countAuditEvents(where: AuditFilter): Promise<number> {
    return this.auditLog.count(where);
  }

  recordUsage(counts: UsageCount[]): Promise<void> {
    return this.usage.record(counts);
  }

  findUsage(query: UsageQuery): Promise<UsageCount[]> {
    return this.usage.find(query);
  }

  deleteUsageBefore(hour: Date): Promise<void> {
    return this.usage.deleteBefore(hour);
  }

  async update(ids: string[], patch: ApiKeyPatch): Promise<void> {
    const row = this.row(patch);
    await this.batched(ids, BINDINGS_PER_LISTED_ID, (store, batch) => store.table("api_key").whereIn("id", batch).update(row));
  }

  /**
   * Deletes keys with their links. The links go first, explicitly: the foreign key cascades,
   * but SQLite enforces foreign keys per connection, and an app's own Knex may turn them off.
   */
  async delete(ids: string[]): Promise<void> {
    await this.batched(ids, BINDINGS_PER_LISTED_ID, async (store, batch) => {
      await store.table("api_key_link").whereIn("api_key_id", batch).delete();
      await store.table("api_key").whereIn("id", batch).delete();
    });
  }

  async linkedIds(apiKeyId: string, resourceType: string): Promise<string[]> {
    const rows = (await this.table("api_key_link")
      .select("resource_id")
      .where({ api_key_id: apiKeyId, resource_type: resourceType })
      .orderBy("resource_id")) as { resource_id: string }[];
    return rows.map((row) => row.resource_id);
  }

  async addLinks(apiKeyId: string, resourceType: string, resourceIds: string[]): Promise<void> {
    const rows = resourceIds.map((resource_id) => ({ api_key_id: apiKeyId, resource_type: resourceType, resource_id }));
    await this.batched(
      rows,
      3,
      (store, batch) => this.dialect.insertIgnoringDuplicates(store.table("api_key_link"), batch, ["api_key_id", "resource_type", "resource_id"]),
      this.dialect.maxInsertRows,
    );
  }

  async removeLinks(apiKeyId: string, resourceType: string, resourceIds: string[]): Promise<void> {
    await this.batched(resourceIds, BINDINGS_PER_LISTED_ID, (store, batch) =>
      store.table("api_key_link").where({ api_key_id: apiKeyId, resource_type: resourceType }).whereIn("resource_id", batch).delete(),
    );
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

  /** One indexed probe: a key with a format-1 token (null: written before the column) not revoked by `now`. */
  async hasLegacyTokens(now: Date): Promise<boolean> {
    const row: unknown = await this.table("api_key")
      .select("id")
      .where((legacy) => void legacy.whereNull("token_format").orWhere("token_format", 1))
      .where(notRevokedBy(now))
      .first();
    return row !== undefined;
  }

  /** Imported keys (format 3) not revoked by `now`, and those of them still holding Medusa's hash. */
  async importedKeys(now: Date): Promise<{ live: number; awaiting: number }> {
    const live = () =>
      this.table("api_key")
        .where("token_format", IMPORTED_TOKEN_FORMAT)
        .where(notRevokedBy(now));
    const count = async (query: Knex.QueryBuilder) => Number(((await query.count({ count: "*" }).first()) as { count: number | string }).count);
    const [all, awaiting] = await Promise.all([count(live()), count(live().where("token", "like", `${IMPORTED_HASH_PREFIX}%`))]);
    return { live: all, awaiting };
  }

  /**
   * Takes `cost` from a key's usage quota with conditional UPDATEs, which the database runs
   * atomically per row: concurrent calls from any number of instances queue on the row lock
   * (SQLite runs one writer at a time) and each re-checks `remaining >= cost` on the row as the
   * previous one left it, so no more uses are ever admitted than the quota holds. A refill due
   * is a first UPDATE whose condition (last refill before the interval's start) only one call
   * can meet. Where UPDATE cannot return the new value (MySQL), the same transaction reads it
   * back while the write still holds the row.
   */
  async consumeQuota(id: string, cost: number, now: Date, refill?: QuotaRefill): Promise<QuotaConsumption> {
    if (this.dialect.updateReturning) return this.takeFromQuota(id, cost, now, refill);
    return this.transaction((store) => store.takeFromQuota(id, cost, now, refill));
  }

  private async takeFromQuota(id: string, cost: number, now: Date, refill: QuotaRefill | undefined): Promise<QuotaConsumption> {
    const live = () => this.table("api_key").where({ id }).whereNull("deleted_at");
    let refilled = false;
    if (refill) {
      const changed: number = await live()
        .whereNotNull("remaining")
        .whereRaw("coalesce(??, ??) < ?", ["refilled_at", "created_at", refillIntervalStart(now, refill.interval)])
        .update({ remaining: refill.amount, refilled_at: now });
      refilled = changed > 0;
    }
    const take = live()
      .where("remaining", ">=", cost)
      .update({ remaining: this.db.raw("?? - ?", ["remaining", cost]) });
    let remaining: number | undefined;
    if (this.dialect.updateReturning) {
      const rows = await take.returning<{ remaining: number | string }[]>(["remaining"]);
      if (rows[0]) remaining = Number(rows[0].remaining);
    } else if ((await take) > 0) {
      remaining = await this.quotaLeft(id);
    }
    if (remaining !== undefined) return { admitted: true, remaining, refilled };
    // Refused, or no quota at all: a second read only on this rare path.
    const row = (await live().select("remaining").first()) as { remaining: number | string | null } | undefined;
    if (row && row.remaining === null) return { admitted: true, remaining: null, refilled };
    return { admitted: false, remaining: row ? Number(row.remaining) : null, refilled };
  }

  /** Gives unspent leased units back in one conditional UPDATE: same `updated_at`, no refill since they were taken. */
  async returnQuota(id: string, units: number, takenAt: Date, version: Date): Promise<void> {
    await this.table("api_key")
      .where({ id, updated_at: version })
      .whereNull("deleted_at")
      .whereNotNull("remaining")
      .whereRaw("coalesce(??, ??) <= ?", ["refilled_at", "created_at", takenAt])
      .update({ remaining: this.db.raw("?? + ?", ["remaining", units]) });
  }

  private async quotaLeft(id: string): Promise<number> {
    const row = (await this.table("api_key").select("remaining").where({ id }).first()) as { remaining: number | string };
    return Number(row.remaining);
  }

  /** Gives `toId` every link `fromId` has, of every resource type (used by roll). */
  async copyLinks(fromId: string, toId: string): Promise<void> {
    const rows = (await this.table("api_key_link")
      .select("resource_type", "resource_id")
      .where({ api_key_id: fromId })) as { resource_type: string; resource_id: string }[];
    const copies = rows.map((row) => ({ ...row, api_key_id: toId }));
    await this.batched(copies, 3, (store, batch) => store.table("api_key_link").insert(batch), this.dialect.maxInsertRows);
  }
}

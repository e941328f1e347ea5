// Verification counts (lib/usage-analytics.ts) in `api_key_usage`, through Knex: one row per key,
// hour and code, to which every instance's flush adds in one upsert. Tokens of no key are kept
// under the key id "" (a primary key cannot hold null) and read back as null.
import type { Knex } from "knex";
import type { VerifyCode } from "../lib/types";
import type { UsageCount, UsageQuery } from "../lib/usage-analytics";
import { type Dialect, qualifiedTable } from "./dialect";

const TABLE = "api_key_usage";
const NO_KEY = "";
/** Columns per row, for the bind-parameter limit. */
const COLUMNS = 4;

interface UsageRow {
  key_id: string;
  hour: unknown;
  code: VerifyCode;
  count: number | string;
}

export class KnexUsageLog {
  constructor(
    private readonly db: Knex | Knex.Transaction,
    private readonly schema: string | undefined,
    private readonly dialect: Dialect,
  ) {}

  private table(name = TABLE): Knex.QueryBuilder {
    return this.db(qualifiedTable(this.schema, name));
  }

  /** Adds counts: rows of one batch are distinct (the recorder sums before it writes). */
  async record(counts: readonly UsageCount[]): Promise<void> {
    const size = Math.min(this.dialect.maxInsertRows, Math.floor(this.dialect.maxBindings / COLUMNS));
    for (let i = 0; i < counts.length; i += size) {
      const rows = counts.slice(i, i + size).map((count) => ({ ...count, key_id: count.key_id ?? NO_KEY }));
      await this.dialect.insertAdding(this.db, this.table(), rows, ["key_id", "hour", "code"], TABLE, "count");
    }
  }

  async find(query: UsageQuery): Promise<UsageCount[]> {
    const builder = this.table().select("key_id", "hour", "code", "count").where("hour", ">=", query.from).andWhere("hour", "<=", query.to);
    if (query.key_id !== undefined) builder.where("key_id", query.key_id);
    if (query.owner_id !== undefined) {
      builder.whereIn("key_id", this.table("api_key").select("id").where("owner_id", query.owner_id));
    }
    const rows = (await builder.orderBy("hour")) as UsageRow[];
    return rows.map((row) => ({
      key_id: row.key_id === NO_KEY ? null : row.key_id,
      hour: this.dialect.toDate(row.hour)!,
      code: row.code,
      count: Number(row.count),
    }));
  }

  async deleteBefore(hour: Date): Promise<void> {
    await this.table().where("hour", "<", hour).delete();
  }
}

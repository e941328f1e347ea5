// The audit log's table, `api_key_audit_event`, through Knex: written by the store that makes a
// change, in the change's own transaction (KnexApiKeyStore hands it the same connection), and
// read back by filters. `changes` is JSON kept as text, as the key's JSON columns are.
import type { Knex } from "knex";
import type { AuditEvent, AuditFilter, AuditQuery } from "../lib/audit-log";
import { type Dialect, qualifiedTable } from "./dialect";

const TABLE = "api_key_audit_event";
const COLUMNS = ["id", "action", "key_id", "actor_id", "at", "changes", "details"] as const;

interface AuditRow {
  id: string;
  action: AuditEvent["action"];
  key_id: string;
  actor_id: string | null;
  at: unknown;
  changes: string;
  details: string | null;
}

export class KnexAuditLog {
  constructor(
    private readonly db: Knex | Knex.Transaction,
    private readonly schema: string | undefined,
    private readonly dialect: Dialect,
  ) {}

  private table(): Knex.QueryBuilder {
    return this.db(qualifiedTable(this.schema, TABLE));
  }

  /** One INSERT per batch that fits the dialect's limits; the caller's transaction makes them one. */
  async insert(events: readonly AuditEvent[]): Promise<void> {
    const size = Math.min(this.dialect.maxInsertRows, Math.floor(this.dialect.maxBindings / COLUMNS.length));
    for (let i = 0; i < events.length; i += size) {
      const rows = events.slice(i, i + size).map((event) => ({ ...event, changes: JSON.stringify(event.changes), details: event.details && JSON.stringify(event.details) }));
      await this.table().insert(rows);
    }
  }

  private where(where: AuditFilter): Knex.QueryBuilder {
    const query = this.table();
    if (where.key_id) query.whereIn("key_id", where.key_id);
    if (where.actor_id) query.whereIn("actor_id", where.actor_id);
    if (where.action) query.whereIn("action", where.action);
    const at = where.at ?? {};
    if (at.gt) query.where("at", ">", at.gt);
    if (at.gte) query.where("at", ">=", at.gte);
    if (at.lt) query.where("at", "<", at.lt);
    if (at.lte) query.where("at", "<=", at.lte);
    return query;
  }

  async find(query: AuditQuery): Promise<AuditEvent[]> {
    // Events made in one millisecond keep their order through the id (a ULID).
    const builder = this.where(query.where).select(COLUMNS).orderBy("at", query.order).orderBy("id", query.order);
    if (query.skip !== undefined) builder.offset(query.skip);
    if (query.take !== undefined) builder.limit(query.take);
    const rows = (await builder) as AuditRow[];
    return rows.map((row) => ({
      ...row,
      at: this.dialect.toDate(row.at)!,
      changes: JSON.parse(row.changes) as AuditEvent["changes"],
      details: row.details === null ? null : (JSON.parse(row.details) as Record<string, string>),
    }));
  }

  async count(where: AuditFilter): Promise<number> {
    const [row] = await this.where(where).count<{ count: string | number }[]>({ count: "*" });
    return Number(row?.count ?? 0);
  }
}

// What differs between the SQL databases the Knex store runs on, in one place: one small
// object per dialect, chosen once from the Knex client when a store or migrator is built.
import type { Knex } from "knex";
import { ApiKeyError, failConfiguration } from "../lib/errors";

export type DialectName = "postgres" | "mysql" | "sqlite";

/** A statement with its bindings, for `knex.raw`. */
export interface Statement {
  sql: string;
  bindings: Knex.RawBinding[];
}

export interface Dialect {
  readonly name: DialectName;
  /**
   * Most bind parameters one statement may carry: 65,535 in PostgreSQL's protocol (and in
   * MySQL's prepared statements), 32,766 in the SQLite that better-sqlite3 12 ships.
   */
  readonly maxBindings: number;
  /** Most rows one INSERT may carry: Knex inserts many rows on SQLite as a compound SELECT, of at most 500 terms. */
  readonly maxInsertRows: number;
  /**
   * The instants a timestamp column can hold, as epoch milliseconds, where narrower than a
   * JavaScript Date's. MySQL compares an instant outside them wrongly (with a warning), so
   * the filter compiler decides such comparisons itself.
   */
  readonly timestampRange?: readonly [min: number, max: number];
  /** `schema` names a PostgreSQL schema or a MySQL database; SQLite has neither. */
  readonly schemas: boolean;
  /**
   * SELECT ... FOR UPDATE. SQLite has no row locks and needs none: it runs one write
   * transaction at a time, and a Knex on SQLite has a single connection.
   */
  readonly rowLocks: boolean;
  /**
   * UPDATE ... RETURNING: PostgreSQL and SQLite have it; MySQL and MariaDB do not, so there
   * a write that must report what it wrote reads the row back in the same transaction.
   */
  readonly updateReturning: boolean;
  /** `column LIKE pattern`, case-sensitive, with `\` escaping the wildcards. */
  whereLike(builder: Knex.QueryBuilder, column: string, pattern: string): void;
  /** `column LIKE pattern`, case-insensitive, with `\` escaping the wildcards. */
  whereILike(builder: Knex.QueryBuilder, column: string, pattern: string): void;
  /** `column` matches the regular expression `pattern`, case-sensitively. */
  whereRegex(builder: Knex.QueryBuilder, column: string, pattern: string): void;
  /** A stored timestamp as the driver returns it, as a Date (SQLite stores epoch milliseconds). */
  toDate(value: unknown): Date | null;
  /**
   * One statement writing `uses` as last_used_at, where no newer use is stored already.
   * `table` is bound with `??`; `uses` stays within `maxBindings`.
   */
  lastUsedUpdate(table: string, uses: readonly (readonly [id: string, at: Date])[]): Statement;
  /** Inserts rows, skipping those whose `columns` already exist. */
  insertIgnoringDuplicates(builder: Knex.QueryBuilder, rows: object[], columns: string[]): Knex.QueryBuilder;
  /**
   * Inserts rows of `table` (its unqualified name); where `columns` already exist, adds the
   * row's `counter` to the stored one instead, in the same statement, so that concurrent
   * writers sum exactly.
   */
  insertAdding(knex: Knex | Knex.Transaction, builder: Knex.QueryBuilder, rows: object[], columns: string[], table: string, counter: string): Knex.QueryBuilder;
}

/** ON CONFLICT ... DO UPDATE, which PostgreSQL and SQLite share: the stored row goes by the table's name, the new one by `excluded`. */
const addOnConflict: Dialect["insertAdding"] = (knex, builder, rows, columns, table, counter) =>
  builder
    .insert(rows)
    .onConflict(columns)
    .merge({ [counter]: knex.raw("?? + ??", [`${table}.${counter}`, `excluded.${counter}`]) });

function asDate(value: unknown): Date | null {
  return (value ?? null) as Date | null;
}

const postgres: Dialect = {
  name: "postgres",
  maxBindings: 65_535,
  maxInsertRows: Infinity,
  schemas: true,
  rowLocks: true,
  updateReturning: true,
  whereLike: (builder, column, pattern) => void builder.where(column, "like", pattern),
  whereILike: (builder, column, pattern) => void builder.where(column, "ilike", pattern),
  whereRegex: (builder, column, pattern) => void builder.where(column, "~", pattern),
  toDate: asDate,
  lastUsedUpdate: (table, uses) => ({
    sql: `update ?? as k set last_used_at = v.at from (values ${uses.map(() => "(?, ?::timestamptz)").join(", ")}) as v(id, at)
       where k.id = v.id and (k.last_used_at is null or k.last_used_at < v.at)`,
    bindings: [table, ...uses.flat()],
  }),
  insertIgnoringDuplicates: (builder, rows, columns) => builder.insert(rows).onConflict(columns).ignore(),
  insertAdding: addOnConflict,
};

/**
 * MySQL and MariaDB. Our columns use a binary collation (see migrations.ts), so `=`, LIKE and
 * REGEXP on them compare bytes: case-sensitive, as on PostgreSQL.
 */
const mysql: Dialect = {
  name: "mysql",
  maxBindings: 65_535,
  maxInsertRows: Infinity,
  // DATETIME's range.
  timestampRange: [Date.UTC(1000, 0, 1), Date.UTC(9999, 11, 31, 23, 59, 59, 999)],
  schemas: true,
  rowLocks: true,
  updateReturning: false,
  whereLike: (builder, column, pattern) => void builder.where(column, "like", pattern),
  whereILike: (builder, column, pattern) => void builder.whereRaw("lower(??) like lower(?)", [column, pattern]),
  whereRegex: (builder, column, pattern) => void builder.where(column, "regexp", pattern),
  toDate: asDate,
  // MySQL has no UPDATE ... FROM (VALUES ...): the batch is a derived table of SELECTs.
  lastUsedUpdate: (table, uses) => ({
    sql: `update ?? as k join (${uses.map(() => "select ? as id, cast(? as datetime(3)) as at").join(" union all ")}) as v
       on k.id = v.id set k.last_used_at = v.at where k.last_used_at is null or k.last_used_at < v.at`,
    bindings: [table, ...uses.flat()],
  }),
  // Not INSERT IGNORE: it would also turn errors such as a value too long for its column into
  // warnings and store a truncated value. A no-op update of a duplicate skips it instead.
  insertIgnoringDuplicates: (builder, rows, columns) => builder.insert(rows).onConflict(columns).merge([columns[0]!]),
  // ON DUPLICATE KEY UPDATE, where VALUES() names the row that was to be inserted.
  insertAdding: (knex, builder, rows, _columns, _table, counter) =>
    builder
      .insert(rows)
      .onConflict()
      .merge({ [counter]: knex.raw("?? + values(??)", [counter, counter]) }),
};

/** A LIKE pattern (`%`, `_`, `\` escapes) as the equivalent GLOB pattern, which is case-sensitive. */
export function likeToGlob(pattern: string): string {
  let glob = "";
  for (let i = 0; i < pattern.length; i++) {
    let char = pattern[i]!;
    if (char === "\\" && i + 1 < pattern.length) char = `\\${pattern[++i]!}`;
    if (char === "%") glob += "*";
    else if (char === "_") glob += "?";
    else {
      const literal = char.length === 2 ? char[1]! : char;
      // In GLOB, a bracket holding one character matches exactly that character.
      glob += "*?[".includes(literal) ? `[${literal}]` : literal;
    }
  }
  return glob;
}

/**
 * SQLite. Timestamps are stored as epoch milliseconds (Knex binds a Date as its number), so
 * they sort and compare as numbers with no loss. LIKE ignores ASCII case here, so a
 * case-sensitive match is a GLOB; SQLite has no regular expressions unless the app loads some.
 */
const sqlite: Dialect = {
  name: "sqlite",
  maxBindings: 32_766,
  maxInsertRows: 500,
  schemas: false,
  rowLocks: false,
  updateReturning: true,
  whereLike: (builder, column, pattern) => void builder.whereRaw("?? glob ?", [column, likeToGlob(pattern)]),
  whereILike: (builder, column, pattern) => void builder.whereRaw("lower(??) like lower(?) escape '\\'", [column, pattern]),
  whereRegex: () => {
    throw new ApiKeyError("invalid_data", "Invalid filter: $re is not supported on sqlite");
  },
  toDate: (value) => (typeof value === "number" ? new Date(value) : asDate(value)),
  lastUsedUpdate: (table, uses) => ({
    sql: `with v(id, at) as (values ${uses.map(() => "(?, ?)").join(", ")})
       update ?? as k set last_used_at = v.at from v where k.id = v.id and (k.last_used_at is null or k.last_used_at < v.at)`,
    bindings: [...uses.flat(), table],
  }),
  insertIgnoringDuplicates: (builder, rows, columns) => builder.insert(rows).onConflict(columns).ignore(),
  insertAdding: addOnConflict,
};

/** Knex's dialect names (its `client.dialect`) for the clients we run on. */
const BY_KNEX_DIALECT: Record<string, Dialect> = {
  postgresql: postgres,
  mysql,
  sqlite3: sqlite,
};

/** The dialect of a Knex instance or transaction; a client we do not run on is a configuration error. */
export function dialectOf(knex: Knex | Knex.Transaction): Dialect {
  const client = knex.client as { dialect?: string; config?: { client?: unknown } };
  const dialect = client.dialect ? BY_KNEX_DIALECT[client.dialect] : undefined;
  if (!dialect) {
    const name = typeof client.config?.client === "string" ? client.config.client : (client.dialect ?? "unknown");
    failConfiguration(`\`database\` is a Knex instance of client ${name}; the supported clients are pg, PGlite, mysql2 and better-sqlite3.`);
  }
  return dialect;
}

/** SQLite has no schemas: a `schema` there is a configuration error rather than silently ignored. */
export function assertSchemaSupported(dialect: Dialect, schema: string | undefined): void {
  if (schema !== undefined && !dialect.schemas) {
    failConfiguration(`\`schema\` is not supported on ${dialect.name}, which has no schemas; use a separate database file instead.`);
  }
}

/** A table name for raw SQL, qualified by the schema when there is one (bound with `??`). */
export function qualifiedTable(schema: string | undefined, table: string): string {
  return schema ? `${schema}.${table}` : table;
}

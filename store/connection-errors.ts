// A database that cannot be used at all (unreachable, a wrong password, an unknown role or
// database) is reported as one typed error naming where it is and what the server said, rather
// than as the driver's error and stack.
import type { Knex } from "knex";
import { ApiKeyError } from "../lib/errors";
import { dialectOf } from "./dialect";
import { classifyStoreError, codeOf } from "./store-errors";

/** Logins the server refused: PostgreSQL's SQLSTATEs and mysql2's codes. */
const REFUSED_LOGINS = new Set([
  "28000", // invalid_authorization_specification: an unknown role, no pg_hba.conf entry
  "28P01", // invalid_password
  "3D000", // invalid_catalog_name: an unknown database
  "ER_ACCESS_DENIED_ERROR",
  "ER_ACCESS_DENIED_NO_PASSWORD_ERROR",
  "ER_DBACCESS_DENIED_ERROR",
  "ER_BAD_DB_ERROR",
]);

const DEFAULT_PORTS: Record<string, number> = { postgres: 5432, mysql: 3306 };
const DIALECT_NAMES: Record<string, string> = { postgres: "PostgreSQL", mysql: "MySQL", sqlite: "SQLite" };

/** Where a Knex connects, for messages: the server's host and port and the database, never the user or password. */
export function describeDatabase(knex: Knex): string {
  const dialect = dialectOf(knex).name;
  const connection = (knex.client as { config?: { connection?: unknown } }).config?.connection;
  const url = typeof connection === "string" ? connection : (connection as { uri?: unknown; connectionString?: unknown } | undefined)?.uri ?? (connection as { connectionString?: unknown } | undefined)?.connectionString;
  if (typeof url === "string" && /^(postgres(ql)?|mysql|mariadb):\/\//.test(url)) {
    const parsed = new URL(url);
    const database = decodeURIComponent(parsed.pathname.slice(1));
    return `${DIALECT_NAMES[dialect]} at ${parsed.hostname}:${parsed.port || DEFAULT_PORTS[dialect]}${database ? ` (database "${database}")` : ""}`;
  }
  const { host, port, database } = (connection ?? {}) as { host?: unknown; port?: unknown; database?: unknown };
  if (typeof host === "string") {
    const shownPort = typeof port === "number" || typeof port === "string" ? port : DEFAULT_PORTS[dialect];
    return `${DIALECT_NAMES[dialect]} at ${host}:${shownPort}${typeof database === "string" ? ` (database "${database}")` : ""}`;
  }
  return `the ${DIALECT_NAMES[dialect] ?? dialect} database`;
}

/** What the server or the socket said, in one line: the first of several addresses refused, a timeout in plain words. */
function reasonOf(error: unknown): string {
  if ((error as { name?: unknown }).name === "KnexTimeoutError") return "no connection could be made in time";
  const first = (error as { errors?: unknown[] }).errors?.[0];
  const message = (error as Error).message || (first as Error | undefined)?.message || String(error);
  return message.split("\n")[0]!;
}

/**
 * The typed error for a failure to use the database at all, or undefined for any other error.
 * `unavailable`, as every outage is, with a message a person can act on.
 */
export function connectionError(error: unknown, knex: Knex, name = "The database"): ApiKeyError | undefined {
  if (typeof error !== "object" || error === null || error instanceof ApiKeyError) return undefined;
  const code = codeOf(error);
  if (!(code !== undefined && REFUSED_LOGINS.has(code)) && classifyStoreError(error)?.type !== "unavailable") return undefined;
  return new ApiKeyError("unavailable", `${name}, ${describeDatabase(knex)}, cannot be used: ${reasonOf(error)}`, { cause: error });
}

/**
 * Knex's own logger, less its warning for each failed connection attempt (with the driver's
 * stack): the caller gets that failure as a typed error and reports it once.
 */
export const KNEX_LOG = {
  warn(message: string): void {
    if (!message.startsWith("Acquire connection error")) console.warn(message);
  },
};

// What a store failure means for the caller. An outage (the database cannot be reached, is
// overloaded or shutting down, or gave up on a lock) is `unavailable`: a 503 that a retry may
// cure. A value the database refused is `invalid_data`. Anything else is a bug or a broken
// schema (a missing table, a failed trigger): `unknown_error`, a 500, since calling it an
// outage would hide it and invite retries that cannot succeed.
import { ApiKeyError, unknownError } from "../lib/errors";

export type StoreErrorVerdict = { type: "unavailable" } | { type: "invalid_data"; message: string };

const OUTAGE: StoreErrorVerdict = { type: "unavailable" };

function badValue(message: string): StoreErrorVerdict {
  return { type: "invalid_data", message };
}

/**
 * Error `code`s by dialect and what each means. A code ending in `*` matches every code that
 * starts with what precedes it (a PostgreSQL SQLSTATE class, SQLite's extended codes). Codes
 * of different dialects never collide, so one lookup serves them all; add a dialect's codes here.
 */
export const STORE_ERROR_CODES: Record<string, Record<string, StoreErrorVerdict>> = {
  // Node system errors on the socket to the database server.
  node: {
    ECONNREFUSED: OUTAGE,
    ECONNRESET: OUTAGE,
    ECONNABORTED: OUTAGE,
    ETIMEDOUT: OUTAGE,
    EPIPE: OUTAGE,
    EHOSTUNREACH: OUTAGE,
    ENETUNREACH: OUTAGE,
    ENOTFOUND: OUTAGE,
    EAI_AGAIN: OUTAGE,
  },
  // PostgreSQL and PGlite SQLSTATEs.
  postgres: {
    "08*": OUTAGE, // connection exception
    "53*": OUTAGE, // insufficient resources: too many connections, disk full, out of memory
    "57P01": OUTAGE, // admin_shutdown
    "57P02": OUTAGE, // crash_shutdown
    "57P03": OUTAGE, // cannot_connect_now (starting up)
    "40001": OUTAGE, // serialization_failure
    "40P01": OUTAGE, // deadlock_detected
    "2201B": badValue("Invalid filter: the $re pattern is not a valid PostgreSQL regular expression"),
    "22P02": badValue("A value has the wrong format for its column"),
    "22007": badValue("A date value has the wrong format"),
    "22008": badValue("A date value is out of range"),
    "22021": badValue("A value contains bytes that are not valid UTF-8"),
    "54000": badValue("A value is too long for its index"),
  },
  // mysql2 (MySQL, MariaDB).
  mysql: {
    PROTOCOL_CONNECTION_LOST: OUTAGE,
    PROTOCOL_SEQUENCE_TIMEOUT: OUTAGE,
    ER_CON_COUNT_ERROR: OUTAGE,
    ER_SERVER_SHUTDOWN: OUTAGE,
    ER_LOCK_DEADLOCK: OUTAGE,
    ER_LOCK_WAIT_TIMEOUT: OUTAGE,
    ER_REGEXP_ERROR: badValue("Invalid filter: the $re pattern is not a valid MySQL regular expression"),
    ER_DATA_TOO_LONG: badValue("A value is too long for its column"),
    ER_TRUNCATED_WRONG_VALUE: badValue("A value has the wrong format or is out of range for its column"),
    ER_DATETIME_FUNCTION_OVERFLOW: badValue("A date value is out of range"),
  },
  // better-sqlite3.
  sqlite: {
    "SQLITE_BUSY*": OUTAGE,
    "SQLITE_LOCKED*": OUTAGE,
    "SQLITE_CANTOPEN*": OUTAGE,
    "SQLITE_IOERR*": OUTAGE,
    SQLITE_TOOBIG: badValue("A value is too long"),
    SQLITE_MISMATCH: badValue("A value has the wrong type for its column"),
  },
};

/** Errors recognised by their class name, whatever their message. */
export const STORE_ERROR_NAMES: Record<string, StoreErrorVerdict> = {
  KnexTimeoutError: OUTAGE, // no pool connection within acquireConnectionTimeout
};

/**
 * Errors without a code, recognised by how their message ends (Knex puts the SQL in front).
 * Only consulted when the error has no code, so a value quoted in the SQL cannot match.
 */
export const STORE_ERROR_MESSAGES: [RegExp, StoreErrorVerdict][] = [
  [/Connection terminated( unexpectedly| due to connection timeout)?$/, OUTAGE], // pg
  [/is not queryable$/, OUTAGE], // pg: a client closed or broken by a connection error
  [/PGlite is clos(ed|ing)$/, OUTAGE],
];

const EXACT = new Map<string, StoreErrorVerdict>();
const PREFIXES: [string, StoreErrorVerdict][] = [];
for (const codes of Object.values(STORE_ERROR_CODES)) {
  for (const [code, verdict] of Object.entries(codes)) {
    if (code.endsWith("*")) PREFIXES.push([code.slice(0, -1), verdict]);
    else EXACT.set(code, verdict);
  }
}

/** An error's `code`, or, for a refused connection to every address of a host, the first one's. */
export function codeOf(error: object): string | undefined {
  const { code, errors } = error as { code?: unknown; errors?: unknown };
  if (typeof code === "string") return code;
  // Node reports a refused connection to every address of a host as one AggregateError.
  const first: unknown = Array.isArray(errors) ? errors[0] : undefined;
  const inner = (first as { code?: unknown } | undefined)?.code;
  return typeof inner === "string" ? inner : undefined;
}

/** What `error` means, or undefined when it is none of the known kinds. */
export function classifyStoreError(error: unknown): StoreErrorVerdict | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  const code = codeOf(error);
  if (code !== undefined) {
    return EXACT.get(code) ?? PREFIXES.find(([prefix]) => code.startsWith(prefix))?.[1];
  }
  const { name, message } = error as { name?: unknown; message?: unknown };
  if (typeof name === "string" && Object.hasOwn(STORE_ERROR_NAMES, name)) return STORE_ERROR_NAMES[name];
  if (typeof message !== "string") return undefined;
  return STORE_ERROR_MESSAGES.find(([pattern]) => pattern.test(message))?.[1];
}

/** Maps what a store threw to a typed error; ApiKeyErrors pass through as they are. */
export function translateStoreError(error: unknown): ApiKeyError {
  if (error instanceof ApiKeyError) return error;
  const verdict = classifyStoreError(error);
  if (verdict?.type === "unavailable") return new ApiKeyError("unavailable", "The API key store is unavailable", { cause: error });
  if (verdict?.type === "invalid_data") return new ApiKeyError("invalid_data", verdict.message, { cause: error });
  return unknownError(error);
}

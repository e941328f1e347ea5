// Options for initialize(): the public shape, its documented defaults, and the one place
// where the environment is read.
import type { DatabaseOption } from "../store/connect";
import type { Logger } from "../store/last-used";

export interface ApiKeysOptions {
  /**
   * A Knex instance the app owns, a `postgres://` URL, or `pglite://<directory>` /
   * `pglite://memory` for the embedded database.
   * Default: `DATABASE_URL` when set, else `pglite://.express-api-keys`.
   */
  database?: DatabaseOption;
  /** PostgreSQL schema for our tables. Default: the connection's search path (usually `public`). */
  schema?: string;
  /** Bring the tables up to date on initialize. Default: `true`. */
  runMigrations?: boolean;
  /**
   * A server-side secret mixed into secret-key hashes (HMAC-SHA-256), so a leaked table alone
   * cannot be checked against guesses. Default: none (plain SHA-256). Changing it invalidates
   * every secret key.
   */
  pepper?: string | Buffer;
  /** The clock. Default: `() => new Date()`. */
  now?: () => Date;
  /**
   * How often the last use of each key is written, in milliseconds: uses are coalesced in
   * memory and flushed in one statement per interval, and on `close()`. Default: `10000`.
   */
  lastUsedFlushInterval?: number;
  /** Receives warnings from background work, such as a failed last_used_at flush. Default: `console`. */
  logger?: Logger;
}

export interface ResolvedOptions {
  database: DatabaseOption;
  schema: string | undefined;
  runMigrations: boolean;
  pepper: string | Buffer | undefined;
  now: () => Date;
  lastUsedFlushInterval: number;
  logger: Logger;
}

/** Where the embedded PGlite database lives when nothing else is configured (relative to the working directory). */
export const DEFAULT_EMBEDDED_DIRECTORY = ".express-api-keys";

const OPTION_NAMES = ["database", "schema", "runMigrations", "pepper", "now", "lastUsedFlushInterval", "logger"];
const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

function fail(message: string): never {
  throw new TypeError(`express-api-keys: ${message}`);
}

export function resolveOptions(options: ApiKeysOptions = {}, env: NodeJS.ProcessEnv = process.env): ResolvedOptions {
  if (typeof options !== "object" || options === null) fail("`initialize(options)` takes an object.");
  const unknown = Object.keys(options).filter((name) => !OPTION_NAMES.includes(name));
  if (unknown.length > 0) fail(`unknown option \`${unknown[0]}\`; the options are ${OPTION_NAMES.join(", ")}.`);

  const { schema, runMigrations, pepper, now, lastUsedFlushInterval, logger } = options;
  if (schema !== undefined && (typeof schema !== "string" || !SCHEMA_NAME.test(schema))) {
    fail("`schema` must be a plain SQL identifier such as `auth`.");
  }
  if (runMigrations !== undefined && typeof runMigrations !== "boolean") fail("`runMigrations` must be a boolean.");
  if (pepper !== undefined && !(typeof pepper === "string" || Buffer.isBuffer(pepper)) ) {
    fail("`pepper` must be a string or a Buffer.");
  }
  if (pepper !== undefined && pepper.length === 0) fail("`pepper` must not be empty; leave it out for plain SHA-256.");
  if (now !== undefined && typeof now !== "function") fail("`now` must be a function returning a Date.");
  if (
    lastUsedFlushInterval !== undefined &&
    (typeof lastUsedFlushInterval !== "number" || !(lastUsedFlushInterval > 0) || !Number.isFinite(lastUsedFlushInterval))
  ) {
    fail("`lastUsedFlushInterval` must be a positive number of milliseconds.");
  }
  if (logger !== undefined && (typeof logger?.warn !== "function" || typeof logger?.error !== "function")) {
    fail("`logger` must have `warn` and `error` methods.");
  }

  return {
    database: options.database ?? env.DATABASE_URL ?? `pglite://${DEFAULT_EMBEDDED_DIRECTORY}`,
    schema,
    runMigrations: runMigrations ?? true,
    pepper,
    now: now ?? (() => new Date()),
    lastUsedFlushInterval: lastUsedFlushInterval ?? 10_000,
    logger: logger ?? console,
  };
}

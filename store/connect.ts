// Turns the `database` option into a Knex instance, loading a driver only when it is used.
import { mkdirSync } from "node:fs";
import path from "node:path";
import knexFactory, { type Knex } from "knex";
import { KNEX_LOG } from "./connection-errors";
import { lockDirectory } from "./directory-lock";
import { openOwnerOnlyPglite } from "./owner-only-pglite";

/** What `options.database` accepts: an app-owned Knex, or a connection string we open and own. */
export type DatabaseOption = Knex | string;

export interface OpenedDatabase {
  knex: Knex;
  /** Releases what we opened (a Knex we created, an embedded database's lock); nothing for an app's own Knex. */
  close(): Promise<void>;
}

const PGLITE_PREFIX = "pglite://";
/** The `pglite://` form of an in-memory database, for tests and throwaway use. */
export const PGLITE_MEMORY = "pglite://memory";
const SQLITE_PREFIX = "sqlite://";
/** The `sqlite://` form of an in-memory database, for tests and throwaway use. */
export const SQLITE_MEMORY = "sqlite://memory";

/**
 * Knex waits 60 s for a connection by default; during an outage that would hold every request
 * for a minute before it could be answered 503.
 */
const ACQUIRE_CONNECTION_TIMEOUT = 5000;

/**
 * The drivers of MySQL and SQLite are optional peer dependencies: only the apps that use them
 * install them. A missing one is a configuration error that says what to install, found when
 * the database is opened rather than at the first query.
 */
export function assertDriverInstalled(driver: string, resolve: (id: string) => string = require.resolve): void {
  try {
    resolve(driver);
  } catch {
    throw new TypeError(`express-api-keys: \`database\` needs the ${driver} package, which is not installed; run \`npm install ${driver}\`.`);
  }
}

export function isKnex(value: unknown): value is Knex {
  return typeof value === "function" && typeof (value as Partial<Knex>).transaction === "function" && "client" in value;
}

/**
 * Whether `knex` reaches a PostgreSQL server through pg: sessions of its own for LISTEN, and
 * streaming replicas. PGlite (no pg driver) runs inside this one process and has neither.
 */
export function isPostgresServer(knex: Knex): boolean {
  const client = knex.client as { dialect?: string; driver?: { Client?: unknown } };
  return client.dialect === "postgresql" && typeof client.driver?.Client === "function";
}

/**
 * Opens `database`: an app's Knex as it is (on pg, PGlite, mysql2 or better-sqlite3), or a
 * connection string: postgres://, pglite://<directory> or pglite://memory, mysql:// or
 * mariadb://, sqlite://<file> or sqlite://memory.
 */
export async function openDatabase(database: DatabaseOption): Promise<OpenedDatabase> {
  if (isKnex(database)) return { knex: database, close: async () => {} };
  if (typeof database !== "string") {
    throw new TypeError("express-api-keys: `database` must be a Knex instance or a connection string.");
  }
  if (/^postgres(ql)?:\/\//.test(database)) {
    const knex = knexFactory({ client: "pg", connection: database, acquireConnectionTimeout: ACQUIRE_CONNECTION_TIMEOUT, log: KNEX_LOG });
    return { knex, close: () => knex.destroy() };
  }
  if (database.startsWith(PGLITE_PREFIX)) {
    return openPglite(database.slice(PGLITE_PREFIX.length));
  }
  if (/^(mysql|mariadb):\/\//.test(database)) return openMysql(database);
  if (database.startsWith(SQLITE_PREFIX)) return openSqlite(database.slice(SQLITE_PREFIX.length));
  // Only the scheme is echoed: the rest of a connection string may hold a password.
  const scheme = /^[a-z][a-z0-9+.-]*:/i.exec(database)?.[0] ?? "(none)";
  throw new TypeError(
    "express-api-keys: `database` must start with postgres://, postgresql://, pglite://, mysql://, mariadb:// or sqlite://; " +
      `got scheme ${scheme}`,
  );
}

function openMysql(url: string): OpenedDatabase {
  assertDriverInstalled("mysql2");
  const knex = knexFactory({
    client: "mysql2",
    // mysql2 reads the URL (any scheme) and its query parameters. DATETIME values carry no
    // zone: reading and writing them in UTC makes instants round-trip exactly whatever the
    // server's or the process's time zone.
    connection: { uri: url, timezone: "Z", dateStrings: false },
    acquireConnectionTimeout: ACQUIRE_CONNECTION_TIMEOUT,
    log: KNEX_LOG,
    pool: {
      afterCreate(connection: { query(sql: string, done: (error: Error | null) => void): void }, done: (error: Error | null, connection: unknown) => void) {
        // Column defaults such as CURRENT_TIMESTAMP(3) follow the session's zone.
        connection.query("set time_zone = '+00:00'", (error) => done(error, connection));
      },
    },
  });
  return { knex, close: () => knex.destroy() };
}

function openSqlite(location: string): OpenedDatabase {
  if (location === "") {
    throw new TypeError("express-api-keys: `database` sqlite:// needs a file path (sqlite://./keys.db) or sqlite://memory.");
  }
  assertDriverInstalled("better-sqlite3");
  const filename = location === "memory" ? ":memory:" : path.resolve(location);
  if (filename !== ":memory:") mkdirSync(path.dirname(filename), { recursive: true });
  const knex = knexFactory({
    client: "better-sqlite3",
    connection: { filename },
    useNullAsDefault: true,
    pool: {
      afterCreate(connection: { pragma(source: string): unknown }, done: (error: Error | null, connection: unknown) => void) {
        try {
          // SQLite checks foreign keys per connection; better-sqlite3 turns them on by default, and so do we.
          connection.pragma("foreign_keys = ON");
          done(null, connection);
        } catch (error) {
          done(error as Error, connection);
        }
      },
    },
  });
  return { knex, close: () => knex.destroy() };
}

async function openPglite(location: string): Promise<OpenedDatabase> {
  // Loaded here so that apps on PostgreSQL never load PGlite's WebAssembly.
  const { default: ClientPgLite } = await import("knex-pglite");
  if (location === "memory" || location === "") {
    const knex = knexFactory({ client: ClientPgLite, dialect: "postgres", connection: { connectionString: "memory://" } });
    return { knex, close: () => knex.destroy() };
  }
  const directory = path.resolve(location);
  const unlock = await lockDirectory(directory);
  try {
    const pglite = await openOwnerOnlyPglite(directory);
    // knex-pglite takes a PGlite we built (`connection.pglite`) and closes it when its pool does.
    const knex = knexFactory({ client: ClientPgLite, dialect: "postgres", connection: { pglite } as Knex.StaticConnectionConfig });
    const close = async () => {
      try {
        await knex.destroy();
        // A pool that never connected leaves PGlite to us: it must stop writing before the lock goes.
        if (!pglite.closed) await pglite.waitReady.then(() => pglite.close(), () => undefined);
      } finally {
        unlock();
      }
    };
    return { knex, close };
  } catch (error) {
    unlock();
    throw error;
  }
}

// Turns the `database` option into a Knex instance, loading a driver only when it is used.
import path from "node:path";
import knexFactory, { type Knex } from "knex";
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

export function isKnex(value: unknown): value is Knex {
  return typeof value === "function" && typeof (value as Partial<Knex>).transaction === "function" && "client" in value;
}

export async function openDatabase(database: DatabaseOption): Promise<OpenedDatabase> {
  if (isKnex(database)) return { knex: database, close: async () => {} };
  if (typeof database !== "string") {
    throw new TypeError("express-api-keys: `database` must be a Knex instance or a connection string.");
  }
  if (/^postgres(ql)?:\/\//.test(database)) {
    // Knex waits 60 s for a connection by default; during an outage that would hold every request
    // for a minute before it could be answered 503.
    const knex = knexFactory({ client: "pg", connection: database, acquireConnectionTimeout: 5000 });
    return { knex, close: () => knex.destroy() };
  }
  if (database.startsWith(PGLITE_PREFIX)) {
    return openPglite(database.slice(PGLITE_PREFIX.length));
  }
  // Only the scheme is echoed: the rest of a connection string may hold a password.
  const scheme = /^[a-z][a-z0-9+.-]*:/i.exec(database)?.[0] ?? "(none)";
  throw new TypeError(
    `express-api-keys: \`database\` must start with postgres://, postgresql:// or pglite://; got scheme ${scheme}`,
  );
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

// Runs one suite against every SQL backend: PostgreSQL, embedded PGlite, MariaDB and SQLite.
// Each suite gets its own namespace (a PostgreSQL schema, a MariaDB database, an in-memory
// SQLite database) named from its title and the run, migrated once; between tests the rows of
// our tables are deleted, the migration ledger kept. A suite whose tests change the schema
// itself asks for `freshSchema`: then each test gets a namespace of its own, migrated by its
// service. Namespaces are dropped when every test in them passed and kept for inspection
// otherwise. `DB=postgres,sqlite` (any of postgres, pglite, mariadb, sqlite) narrows the run.
import { createHash, randomBytes } from "node:crypto";
import knexFactory, { type Knex } from "knex";
import { initialize } from "../../setup/initialize";
import type { ApiKeysOptions } from "../../setup/options";
import type { ApiKeyService } from "../../lib/service";
import { SQLITE_MEMORY, openDatabase } from "../../store/connect";
import { type Dialect, dialectOf, qualifiedTable } from "../../store/dialect";
import { KnexApiKeyStore } from "../../store/knex-store";
import type { ApiKeyType } from "../../lib/tokens";
import { rulesRead, unissuedTokens } from "./tokens";
import { MIGRATIONS_TABLE, runMigrations } from "../../store/migrations";
import { connectMariadb, connectPostgres } from "./services";

export type BackendName = "postgres" | "pglite" | "mariadb" | "sqlite";

export const ALL_BACKENDS: readonly BackendName[] = ["postgres", "pglite", "mariadb", "sqlite"];

/** A clock that stands still until a test moves it, so expiry tests need no sleeps and no fake timers. */
export class TestClock {
  #time = Date.now();
  readonly now = (): Date => new Date(this.#time);
  advance(ms: number): void {
    this.#time += ms;
  }
}

/** An empty namespace of its own beside the suite's (another schema, or another SQLite database). */
export interface Scratch {
  readonly knex: Knex;
  /** Undefined on SQLite, which has no schemas. */
  readonly schema: string | undefined;
  /** Our tables (and the ledger) in this namespace. */
  tables: () => Promise<string[]>;
  drop: () => Promise<void>;
}

export interface Backend {
  readonly name: BackendName;
  readonly dialect: Dialect;
  /** The suite's Knex instance (on SQLite in a `freshSchema` suite, the current test's). */
  readonly knex: Knex;
  /** The current namespace: a PostgreSQL schema or a MariaDB database; undefined on SQLite. */
  readonly schema: string | undefined;
  /** The current test's service, on the suite's namespace, with `clock` as its clock. */
  readonly service: ApiKeyService;
  readonly clock: TestClock;
  /** A query builder on one of our tables in the current namespace. */
  table(name: string): Knex.QueryBuilder;
  /** A table name qualified by the namespace, for raw SQL (bound with `??`). */
  qualified(name: string): string;
  /** The tables in the current namespace, sorted. */
  tables(): Promise<string[]>;
  /** Another empty namespace on the same server; drop it when done. */
  scratch(): Promise<Scratch>;
  /**
   * A well-formed token tagged as services on this namespace tag them (with `pepper`, if they
   * have one), naming no key; resolves once `service` (default: the current one) has read its
   * token rules, so that what follows reaches the caches and the store.
   */
  unissuedToken(type: ApiKeyType, options?: { service?: ApiKeyService; pepper?: string }): Promise<string>;
  /** As `unissuedToken`, `count` of them. */
  unissuedTokens(type: ApiKeyType, count: number, options?: { service?: ApiKeyService; pepper?: string }): Promise<string[]>;
  /** Another service on the same namespace (for concurrency and restart tests); closed after the test. */
  open(options?: ApiKeysOptions): Promise<ApiKeyService>;
  /** Counts the SQL statements `work` sends through this backend's Knex. */
  countQueries<T>(work: () => Promise<T>): Promise<{ result: T; queries: string[] }>;
}

export interface SuiteOptions {
  /** The backends to run on. Default: all four. */
  backends?: readonly BackendName[];
  /** A fresh, unmigrated namespace per test, for tests that change the schema itself. Default: false. */
  freshSchema?: boolean;
}

const selected = (process.env.DB ?? ALL_BACKENDS.join(",")).split(",");

/** Differs per test process, so that two runs on one database server never share a namespace. */
const RUN_SALT = randomBytes(4).toString("hex");

function namespaceFor(title: string): string {
  return `t_${createHash("sha256").update(RUN_SALT + title).digest("hex").slice(0, 16)}`;
}

/**
 * One in-memory PGlite for the whole run, a schema per suite: starting PGlite costs seconds
 * (its initdb runs in WebAssembly), and every suite paid it.
 */
let sharedPglite: Promise<Knex> | undefined;

function pglite(): Promise<Knex> {
  sharedPglite ??= import("knex-pglite").then(({ default: ClientPgLite }) =>
    knexFactory({ client: ClientPgLite, dialect: "postgres", connection: { connectionString: "memory://" } }),
  );
  return sharedPglite;
}

// A root hook: it runs once, after every suite of every file.
after(async () => {
  await (await sharedPglite)?.destroy();
});

async function connect(name: BackendName, context: Mocha.Context): Promise<Knex | undefined> {
  switch (name) {
    case "postgres":
      return connectPostgres(context);
    case "pglite":
      return pglite();
    case "mariadb":
      return connectMariadb(context);
    case "sqlite":
      // Opened from a URL as the package opens one (foreign keys on).
      return (await openDatabase(SQLITE_MEMORY)).knex;
  }
}

async function listTables(knex: Knex, schema: string | undefined): Promise<string[]> {
  const rows = (
    dialectOf(knex).name === "sqlite"
      ? await knex.select({ name: "name" }).from("sqlite_master").where({ type: "table" }).andWhereNot("name", "like", "sqlite_%")
      : await knex.select({ name: "table_name" }).from("information_schema.tables").where({ table_schema: schema })
  ) as { name: string }[];
  return rows.map((row) => row.name).sort();
}

async function createNamespace(knex: Knex, schema: string): Promise<void> {
  await knex.raw(dialectOf(knex).name === "mysql" ? "create database ??" : "create schema ??", [schema]);
}

async function dropNamespace(knex: Knex, schema: string | undefined): Promise<void> {
  if (schema === undefined) return;
  if (dialectOf(knex).name === "mysql") await knex.raw("drop database if exists ??", [schema]);
  else await knex.raw("drop schema if exists ?? cascade", [schema]);
}

/**
 * Deletes every row of our tables, keeping the migration ledger. Tables other than `api_key`
 * go first: they reference it.
 */
async function deleteRows(knex: Knex, schema: string | undefined): Promise<void> {
  const tables = (await listTables(knex, schema)).filter((name) => !name.startsWith(MIGRATIONS_TABLE));
  const ordered = [...tables.filter((name) => name !== "api_key"), ...tables.filter((name) => name === "api_key")];
  await knex.transaction(async (trx) => {
    for (const name of ordered) await trx(qualifiedTable(schema, name)).delete();
  });
}

function suiteOptions(options: readonly BackendName[] | SuiteOptions): Required<SuiteOptions> {
  const given = Array.isArray(options) ? { backends: options as readonly BackendName[] } : (options as SuiteOptions);
  return { backends: given.backends ?? ALL_BACKENDS, freshSchema: given.freshSchema ?? false };
}

export function forEachBackend(
  title: string,
  body: (backend: Backend) => void,
  options: readonly BackendName[] | SuiteOptions = {},
): void {
  const { backends, freshSchema } = suiteOptions(options);
  for (const name of backends) {
    if (!selected.includes(name)) continue;
    const suiteTitle = `${title} [${name}]`;
    describe(suiteTitle, function () {
      let knex: Knex | undefined;
      let schema: string | undefined;
      let clock = new TestClock();
      let service: ApiKeyService | undefined;
      let extra: ApiKeyService[] = [];
      let allPassed = true;
      const usesSchemas = name !== "sqlite";

      before(async function () {
        // Starting PGlite and migrating a fresh namespace on MariaDB take seconds each on a busy
        // machine: the suite's set-up runs once, so it gets more than a test's 10 s.
        this.timeout(60_000);
        knex = await connect(name, this);
        if (freshSchema) return;
        schema = usesSchemas ? namespaceFor(suiteTitle) : undefined;
        await dropNamespace(knex!, schema);
        await runMigrations(knex!, { schema });
      });
      after(async () => {
        if (knex && !freshSchema && allPassed) await dropNamespace(knex, schema);
        if (name !== "pglite") await knex?.destroy();
      });

      beforeEach(async function () {
        // A fresh namespace is migrated from scratch for each test that asks for one.
        if (freshSchema) this.timeout(60_000);
        clock = new TestClock();
        if (freshSchema) {
          if (usesSchemas) {
            schema = namespaceFor(this.currentTest!.fullTitle());
            await dropNamespace(knex!, schema);
          } else {
            // An in-memory SQLite database lives as long as its connection: a new Knex is a new database.
            await knex!.destroy();
            knex = await connect(name, this);
          }
        } else {
          await deleteRows(knex!, schema);
        }
        service = await initialize({ database: knex!, schema, now: clock.now, runMigrations: freshSchema });
      });
      afterEach(async function () {
        await Promise.all([service, ...extra].filter((s) => s !== undefined).map((s) => s.close()));
        extra = [];
        const passed = this.currentTest?.state === "passed";
        allPassed &&= passed;
        if (freshSchema && passed) await dropNamespace(knex!, schema);
      });

      body({
        name,
        get dialect() {
          return dialectOf(knex!);
        },
        get knex() {
          return knex!;
        },
        get schema() {
          return schema;
        },
        get service() {
          return service!;
        },
        get clock() {
          return clock;
        },
        table(table) {
          return knex!(qualifiedTable(schema, table));
        },
        qualified(table) {
          return qualifiedTable(schema, table);
        },
        tables() {
          return listTables(knex!, schema);
        },
        async scratch() {
          const scratchKnex = usesSchemas ? knex! : (await openDatabase(SQLITE_MEMORY)).knex;
          const scratchSchema = usesSchemas ? `${schema ?? namespaceFor(suiteTitle)}_${randomBytes(3).toString("hex")}` : undefined;
          if (scratchSchema) await createNamespace(scratchKnex, scratchSchema);
          return {
            knex: scratchKnex,
            schema: scratchSchema,
            tables: () => listTables(scratchKnex, scratchSchema),
            drop: async () => {
              if (usesSchemas) await dropNamespace(scratchKnex, scratchSchema);
              else await scratchKnex.destroy();
            },
          };
        },
        async unissuedToken(type, options = {}) {
          return (await this.unissuedTokens(type, 1, options))[0]!;
        },
        async unissuedTokens(type, count, options = {}) {
          await rulesRead(options.service ?? service!);
          return unissuedTokens(new KnexApiKeyStore(knex!, schema), type, count, options.pepper);
        },
        async open(options = {}) {
          const opened = await initialize({ database: knex!, schema, now: clock.now, runMigrations: freshSchema, ...options });
          extra.push(opened);
          return opened;
        },
        async countQueries(work) {
          const queries: string[] = [];
          const listener = (query: { sql: string }) => queries.push(query.sql);
          knex!.on("query", listener);
          try {
            const result = await work();
            return { result, queries };
          } finally {
            knex!.removeListener("query", listener);
          }
        },
      });
    });
  }
}

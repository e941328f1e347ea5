// Runs one suite against every SQL backend (PostgreSQL and embedded PGlite). Each test gets
// a fresh schema named from its title (and the run), dropped when the test passes and kept for inspection
// when it fails. `DB=postgres` or `DB=pglite` narrows the run to one backend.
import { createHash, randomBytes } from "node:crypto";
import knexFactory, { type Knex } from "knex";
import { initialize } from "../../lib/initialize";
import type { ApiKeysOptions } from "../../lib/options";
import type { ApiKeyService } from "../../lib/service";
import { connectPostgres } from "./services";

export type BackendName = "postgres" | "pglite";

/** A clock that stands still until a test moves it, so expiry tests need no sleeps and no fake timers. */
export class TestClock {
  #time = Date.now();
  readonly now = (): Date => new Date(this.#time);
  advance(ms: number): void {
    this.#time += ms;
  }
}

export interface Backend {
  readonly name: BackendName;
  /** The shared Knex instance of this backend. */
  readonly knex: Knex;
  /** The current test's schema. */
  readonly schema: string;
  /** The current test's service, on its own schema, with `clock` as its clock. */
  readonly service: ApiKeyService;
  readonly clock: TestClock;
  /** Another service on the same schema (for concurrency and restart tests); closed after the test. */
  open(options?: ApiKeysOptions): Promise<ApiKeyService>;
  /** Counts the SQL statements `work` sends through this backend's Knex. */
  countQueries<T>(work: () => Promise<T>): Promise<{ result: T; queries: string[] }>;
}

const selected = (process.env.DB ?? "postgres,pglite").split(",");

/** Differs per test process, so that two runs on one database server never share a schema. */
const RUN_SALT = randomBytes(4).toString("hex");

function schemaFor(title: string): string {
  return `t_${createHash("sha256").update(RUN_SALT + title).digest("hex").slice(0, 16)}`;
}

async function openPglite(): Promise<Knex> {
  const { default: ClientPgLite } = await import("knex-pglite");
  return knexFactory({ client: ClientPgLite, dialect: "postgres", connection: { connectionString: "memory://" } });
}

export function forEachBackend(
  title: string,
  body: (backend: Backend) => void,
  backends: readonly BackendName[] = ["postgres", "pglite"],
): void {
  for (const name of backends) {
    if (!selected.includes(name)) continue;
    describe(`${title} [${name}]`, function () {
      let knex: Knex | undefined;
      let schema = "";
      let clock = new TestClock();
      let service: ApiKeyService | undefined;
      let extra: ApiKeyService[] = [];

      before(async function () {
        knex = name === "postgres" ? await connectPostgres(this) : await openPglite();
      });
      after(async () => {
        await knex?.destroy();
      });

      beforeEach(async function () {
        schema = schemaFor(this.currentTest!.fullTitle());
        clock = new TestClock();
        await knex!.raw("drop schema if exists ?? cascade", [schema]);
        service = await initialize({ database: knex!, schema, now: clock.now });
      });
      afterEach(async function () {
        await Promise.all([service, ...extra].map((s) => s?.close()));
        extra = [];
        if (this.currentTest?.state === "passed") await knex!.raw("drop schema if exists ?? cascade", [schema]);
      });

      body({
        name,
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
        async open(options = {}) {
          const opened = await initialize({ database: knex!, schema, now: clock.now, ...options });
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

// Service gating in one place: under CI an unreachable PostgreSQL or MariaDB fails the run;
// elsewhere the tests that need it skip with a loud message.
import knexFactory, { type Knex } from "knex";
import { openDatabase } from "../../store/connect";

export const POSTGRES_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
export const MARIADB_URL = process.env.TEST_MARIADB_URL ?? "mysql://root@127.0.0.1:3306/test";

export const underCI = process.env.CI === "true" || process.env.CI === "1";

/** Returns a connected Knex for the shared PostgreSQL, or skips (fails under CI) when it is down. */
export async function connectPostgres(context: Mocha.Context): Promise<Knex | undefined> {
  const knex = knexFactory({ client: "pg", connection: POSTGRES_URL, pool: { min: 0, max: 10 } });
  try {
    await knex.raw("select 1");
    return knex;
  } catch (error) {
    await knex.destroy();
    return skipOrFail(context, "PostgreSQL", POSTGRES_URL, error);
  }
}

/**
 * Returns a Knex for the shared MariaDB, opened from a URL as the package opens one (UTC
 * session, mysql2), or skips (fails under CI) when the server is down.
 */
export async function connectMariadb(context: Mocha.Context): Promise<Knex | undefined> {
  const { knex } = await openDatabase(MARIADB_URL);
  try {
    await knex.raw("select 1");
    return knex;
  } catch (error) {
    await knex.destroy();
    return skipOrFail(context, "MariaDB", MARIADB_URL, error);
  }
}

/** A shared service is down: under CI that fails the run; elsewhere the tests skip, loudly. */
export function skipOrFail(context: Mocha.Context, service: string, url: string, error: unknown): undefined {
  const message = `${service} at ${url} is unreachable: ${(error as Error).message}`;
  if (underCI) throw new Error(`${message} (required under CI)`);
  console.warn(`\n  !!! SKIPPING ${service} tests: ${message}\n`);
  context.skip();
  return undefined;
}

/** A Knex whose every query fails to connect: port 1 on loopback, where nothing listens. */
export function unreachableDatabase(): Knex {
  return knexFactory({
    client: "pg",
    connection: "postgres://postgres@127.0.0.1:1/test",
    acquireConnectionTimeout: 2000,
    log: { warn: () => {}, error: () => {} },
  });
}

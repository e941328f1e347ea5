// The exported conformance suite (express-api-keys/testing) on every store this package ships,
// and on one that is not built on Knex at all, to prove the interface leaks no Knex.
import { createHash, randomBytes } from "node:crypto";
import knexFactory, { type Knex } from "knex";
import { MemoryApiKeyStore } from "../../examples/memory-store";
import { KnexApiKeyStore } from "../../store/knex-store";
import { apiKeyStoreConformance } from "../../testing";
import { connectPostgres } from "../helpers/services";

describe("store conformance [memory, not Knex]", () => {
  for (const check of apiKeyStoreConformance({ openStore: async () => new MemoryApiKeyStore() })) it(check.title, check.run);
});

function knexSuite(name: string, connect: (context: Mocha.Context) => Promise<Knex | undefined>): void {
  describe(`store conformance [${name}]`, function () {
    let knex: Knex | undefined;
    const schemas: string[] = [];
    before(async function () {
      knex = await connect(this);
    });
    after(async () => {
      for (const schema of schemas) await knex?.raw("drop schema if exists ?? cascade", [schema]);
      await knex?.destroy();
    });
    const checks = apiKeyStoreConformance({
      async openStore() {
        const schema = `c_${createHash("sha256").update(randomBytes(8)).digest("hex").slice(0, 12)}`;
        schemas.push(schema);
        const store = new KnexApiKeyStore(knex!, schema);
        await store.migrate();
        return store;
      },
      closeStore: async () => {},
    });
    for (const check of checks) it(check.title, check.run);
  });
}

knexSuite("postgres", (context) => connectPostgres(context));
knexSuite("pglite", async () => {
  const { default: ClientPgLite } = await import("knex-pglite");
  return knexFactory({ client: ClientPgLite, dialect: "postgres", connection: { connectionString: "memory://" } });
});

// The exported conformance suite (express-api-keys/testing) on every store this package ships,
// and on one that is not built on Knex at all, to prove the interface leaks no Knex.
import { MemoryApiKeyStore } from "../../examples/memory-store";
import { KnexApiKeyStore } from "../../store/knex-store";
import { apiKeyStoreConformance } from "../../testing";
import { forEachBackend } from "../helpers/backends";

describe("store conformance [memory, not Knex]", () => {
  for (const check of apiKeyStoreConformance({ openStore: async () => new MemoryApiKeyStore() })) it(check.title, check.run);
});

// The backend's namespace is migrated once per suite and emptied before each test.
forEachBackend("store conformance", (db) => {
  const checks = apiKeyStoreConformance({
    openStore: async () => new KnexApiKeyStore(db.knex, db.schema),
    closeStore: async () => {},
    skip: db.name === "sqlite" ? { "matches $re as a case-sensitive regular expression": "SQLite has no regular expressions: $re is invalid_data there" } : {},
  });
  for (const check of checks) it(check.title, check.run);
});

// The exported conformance suite (express-api-keys/testing) on every store this package ships,
// and on one that is not built on Knex at all, to prove the interface leaks no Knex.
import type { ApiKeyStore } from "../../lib/store";
import { KnexApiKeyStore } from "../../store/knex-store";
import { MemoryApiKeyStore, apiKeyStoreConformance } from "../../testing";
import { forEachBackend } from "../helpers/backends";

describe("store conformance [memory, not Knex]", () => {
  for (const check of apiKeyStoreConformance({ openStore: async () => new MemoryApiKeyStore() })) it(check.title, check.run);
});

/** The reference store without its optional members: what the service must do without them. */
function withoutOptionalMembers(store: MemoryApiKeyStore): ApiKeyStore {
  const hidden = new Set<PropertyKey>(["consumeQuota", "findPublishable", "hasLegacyTokens", "loadSecret"]);
  return new Proxy(store, {
    get(target, name) {
      if (hidden.has(name)) return undefined;
      const value: unknown = Reflect.get(target, name, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

describe("store conformance [memory, required members only]", () => {
  for (const check of apiKeyStoreConformance({ openStore: async () => withoutOptionalMembers(new MemoryApiKeyStore()) })) it(check.title, check.run);
});

// The backend's namespace is migrated once per suite and emptied before each test.
forEachBackend("store conformance", (db) => {
  const checks = apiKeyStoreConformance({
    openStore: async () => new KnexApiKeyStore(db.knex, db.schema),
    closeStore: async () => {},
    appTransaction: async () => {
      const transaction = await db.knex.transaction();
      return { transaction, commit: async () => void (await transaction.commit()), rollback: async () => void (await transaction.rollback()) };
    },
    skip: db.name === "sqlite" ? { "matches $re as a case-sensitive regular expression": "SQLite has no regular expressions: $re is invalid_data there" } : {},
  });
  for (const check of checks) it(check.title, check.run);
});

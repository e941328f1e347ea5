// initialize(): wires options, environment and embedded defaults into a ready service.
import { type ApiKeysOptions, resolveOptions } from "./options";
import { ApiKeyService } from "./service";
import { openDatabase } from "../store/connect";
import { KnexApiKeyStore } from "../store/knex-store";
import { runMigrations } from "../store/migrations";

let defaultService: ApiKeyService | undefined;

/**
 * Opens the store, runs migrations (unless turned off) and returns the service. The latest
 * service initialized becomes the default that middleware uses when given none.
 */
export async function initialize(options?: ApiKeysOptions): Promise<ApiKeyService> {
  const resolved = resolveOptions(options);
  const { knex, owned } = await openDatabase(resolved.database);
  try {
    if (resolved.runMigrations) await runMigrations(knex, { schema: resolved.schema });
  } catch (error) {
    if (owned) await knex.destroy();
    throw error;
  }
  const store = new KnexApiKeyStore(knex, resolved.schema);
  const { pepper, now, lastUsedFlushInterval, logger } = resolved;
  const config = { pepper, now, lastUsedFlushInterval, logger };
  const service: ApiKeyService = new ApiKeyService(store, config, async () => {
    if (defaultService === service) defaultService = undefined;
    if (owned) await knex.destroy();
  });
  defaultService = service;
  return service;
}

/** The service the latest `initialize()` returned, while it is open. */
export function getDefaultService(): ApiKeyService | undefined {
  return defaultService;
}

// initialize(): wires options, environment and embedded defaults into a ready service.
import { KEY_PURPOSES, deriveKey, rootSecret } from "./deployment-secret";
import { ApiKeyError } from "./errors";
import { type ApiKeysOptions, type ResolvedOptions, resolveOptions } from "./options";
import { ApiKeyService } from "./service";
import { openDatabase } from "../store/connect";
import { KeyCache } from "../store/cache/key-cache";
import { openRedis } from "../store/cache/open-redis";
import { RedisTier } from "../store/cache/redis";
import { KnexApiKeyStore } from "../store/knex-store";
import { runMigrations } from "../store/migrations";

let defaultService: ApiKeyService | undefined;

/**
 * Opens the store, runs migrations (unless turned off) and returns the service. The latest
 * service initialized becomes the default that middleware uses when given none.
 */
export async function initialize(options?: ApiKeysOptions): Promise<ApiKeyService> {
  const resolved = resolveOptions(options);
  const database = await openDatabase(resolved.database);
  const { knex } = database;
  try {
    if (resolved.runMigrations) await runMigrations(knex, { schema: resolved.schema });
  } catch (error) {
    await database.close();
    throw error;
  }
  const store = new KnexApiKeyStore(knex, resolved.schema);
  const { pepper, now, lastUsedFlushInterval, logger } = resolved;
  const cache = await openCache(resolved, store);
  const config = { pepper, now, lastUsedFlushInterval, logger };
  const service: ApiKeyService = new ApiKeyService(store, cache, config, async () => {
    if (defaultService === service) defaultService = undefined;
    await database.close();
  });
  defaultService = service;
  return service;
}

async function openCache({ cache, redis, now, logger, pepper }: ResolvedOptions, store: KnexApiKeyStore): Promise<KeyCache> {
  if (!cache) return new KeyCache({ now, logger });
  let redisTier: RedisTier | undefined;
  if (redis) {
    const { client, owned } = await openRedis(redis, cache.redisTimeout * 4);
    // Entries in Redis are signed with a key that whoever can write to Redis does not have.
    const signingKey = async () => deriveKey(await rootSecret(pepper, store), KEY_PURPOSES.cacheEntry);
    redisTier = new RedisTier(client, owned, { prefix: cache.redisPrefix, ttl: cache.redisTtl, timeout: cache.redisTimeout, logger, now, signingKey });
  }
  const { max, maxSize, ttl, staleIfError, negativeMax, negativeTtl } = cache;
  const memory = cache.memory ? { max, maxSize, ttl, staleIfError, negativeMax, negativeTtl } : undefined;
  const keyCache = new KeyCache({ memory, redis: redisTier, now, logger });
  await keyCache.start();
  return keyCache;
}

/** The service the latest `initialize()` returned, while it is open. */
export function getDefaultService(): ApiKeyService | undefined {
  return defaultService;
}

/** The given service, else the default one; `unavailable` when there is neither. */
export function serviceOrDefault(service: ApiKeyService | undefined): ApiKeyService {
  const found = service ?? defaultService;
  if (!found) throw new ApiKeyError("unavailable", "No API key service: await initialize() before serving requests, or pass `service`");
  return found;
}

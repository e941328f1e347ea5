// initialize(): the composition root. It wires options, environment and embedded defaults into
// a ready service, and is the one place that knows every store, cache and clock.
import type { Knex } from "knex";
import type { Clocks } from "../lib/clocks";
import { forgetDefaultService, setDefaultService } from "../lib/default-service";
import { KEY_PURPOSES, deriveKey, rootSecret } from "../lib/deployment-secret";
import { LeasedRateLimits } from "../lib/rate-limit-leases";
import { ApiKeyService } from "../lib/service";
import type { ApiKeyStore } from "../lib/store";
import type { Metrics } from "../lib/metrics";
import { loadTokenRules } from "../lib/token-gate";
import { type ApiKeysOptions, DEFAULT_REDIS_PREFIX, DEFAULT_REDIS_TIMEOUT, type ResolvedOptions, resolveOptions } from "./options";
import { isPostgresServer, openDatabase } from "../store/connect";
import { connectionError } from "../store/connection-errors";
import type { InvalidationListener } from "../store/cache/invalidation-channel";
import { KeyCache } from "../store/cache/key-cache";
import { PgNotifyChannel } from "../store/cache/pg-notify";
import { openRedis } from "../store/cache/open-redis";
import type { RedisClient } from "../store/cache/redis-client";
import { RateLimiters } from "../store/rate-limiters";
import { RedisTier } from "../store/cache/redis";
import { KnexApiKeyStore } from "../store/knex-store";
import { openMedusaSource } from "../store/medusa-source";
import { openMetrics } from "./metrics";
import { type OpenedReplica, openReplica } from "./read-replica";

/**
 * Opens the store, runs migrations (unless turned off) and returns the service. The latest
 * service initialized becomes the default that middleware uses when given none.
 */
export async function initialize(options?: ApiKeysOptions): Promise<ApiKeyService> {
  const resolved = resolveOptions(options);
  const { store, knex, close } = await openStore(resolved);
  const { pepper, now, lastUsedFlushInterval, logger } = resolved;
  // The replica's watch hears every change from the cache, and asks it whether it hears them all.
  const built: { cache?: KeyCache; service?: ApiKeyService } = {};
  const replica = await openReadReplica(resolved, knex, () => built.cache?.listening ?? false).catch(async (error: unknown) => {
    await close();
    throw error;
  });
  const redisTimeout = resolved.cache ? resolved.cache.redisTimeout : DEFAULT_REDIS_TIMEOUT;
  const redis = resolved.redis ? await openRedis(resolved.redis, redisTimeout * 4) : undefined;
  // Metrics are made before the tiers that report to them; the service reports its pending writes once it exists.
  const opened = resolved.metrics
    ? await openMetrics(resolved.metrics, () => built.service?.pendingWrites ?? { last_used: 0, usage: 0 }, redis !== undefined)
    : undefined;
  const metrics = opened?.metrics;
  const cache = await openCache(resolved, store, redis?.client, { knex, observer: replica?.freshness, metrics });
  built.cache = cache;
  const clocks: Clocks = { policy: now, counter: Date.now };
  const rateLimits = new LeasedRateLimits(
    new RateLimiters({ redis: redis?.client, prefix: redisPrefixOf(resolved), timeout: redisTimeout, logger, now: clocks.counter }),
    clocks.counter,
  );
  // Read before the first request, and before an app's transaction could hold the only
  // connection of an embedded database; when they cannot be read, the service tries again on use.
  const tokenRules = await loadTokenRules(store, pepper, now()).catch(() => undefined);
  const usageRetentionMs = resolved.usageAnalytics ? resolved.usageRetentionDays * 86_400_000 : undefined;
  const config = { pepper, now, lastUsedFlushInterval, logger, rateLimits, tokenRules, replicaReads: replica?.reads, usageRetentionMs, metrics, tokenPrefix: resolved.tokenPrefix, openMedusaSource };
  const service: ApiKeyService = new ApiKeyService(store, cache, config, async () => {
    forgetDefaultService(service);
    opened?.close();
    // A client the app passed stays open: the app made it and closes it.
    if (redis?.owned) redis.client.disconnect();
    await replica?.close();
    await close();
  });
  built.service = service;
  setDefaultService(service);
  return service;
}

function redisPrefixOf({ cache }: ResolvedOptions): string {
  return cache ? cache.redisPrefix : DEFAULT_REDIS_PREFIX;
}

/**
 * The app's own store as it is, or a Knex store on the configured database (with its Knex);
 * migrated unless turned off.
 */
async function openStore(resolved: ResolvedOptions): Promise<{ store: ApiKeyStore; knex?: Knex; close: () => Promise<void> }> {
  if (resolved.store) {
    if (resolved.runMigrations) await resolved.store.migrate?.();
    // The app's store stays open: the app made it and closes it.
    return { store: resolved.store, close: async () => {} };
  }
  const database = await openDatabase(resolved.database);
  const store = new KnexApiKeyStore(database.knex, resolved.schema);
  try {
    if (resolved.runMigrations) await store.migrate();
  } catch (error) {
    await database.close();
    // A database that cannot be used at boot (unreachable, a refused login, an unknown
    // database) is `unavailable`, as on any later call, and the message says where and why.
    const unusable = connectionError(error, database.knex);
    if (unusable) throw unusable;
    const translated = store.translateError(error);
    throw translated.type === "unavailable" ? translated : error;
  }
  return { store, knex: database.knex, close: () => database.close() };
}

/** The read replica, when one is configured beside the database store. */
async function openReadReplica(resolved: ResolvedOptions, knex: Knex | undefined, listening: () => boolean): Promise<OpenedReplica | undefined> {
  if (!resolved.readDatabase || !knex) return undefined;
  const { schema, readDatabaseTimeout: timeout, logger } = resolved;
  return openReplica(resolved.readDatabase, knex, { schema, timeout, logger, listening });
}

/**
 * What else invalidations reach: without Redis, on a PostgreSQL server, LISTEN/NOTIFY carries
 * them between instances; and a read replica's watch hears of every change.
 */
interface Invalidations {
  knex: Knex | undefined;
  observer: InvalidationListener | undefined;
  metrics: Metrics | undefined;
}

function notifyChannel({ cache, schema, logger }: ResolvedOptions, redis: RedisClient | undefined, knex: Knex | undefined): PgNotifyChannel | undefined {
  return cache && !redis && knex && isPostgresServer(knex) ? new PgNotifyChannel(knex, schema, logger) : undefined;
}

async function openCache(resolved: ResolvedOptions, store: ApiKeyStore, redis: RedisClient | undefined, { knex, observer, metrics }: Invalidations): Promise<KeyCache> {
  const { cache, now, logger, pepper } = resolved;
  if (!cache) return new KeyCache({ observer, now, logger, metrics });
  let redisTier: RedisTier | undefined;
  if (redis) {
    // Entries in Redis are signed with a key that whoever can write to Redis does not have.
    const signingKey = async () => deriveKey(await rootSecret(pepper, store), KEY_PURPOSES.cacheEntry);
    redisTier = new RedisTier(redis, false, { prefix: cache.redisPrefix, ttl: cache.redisTtl, timeout: cache.redisTimeout, logger, now, signingKey, metrics });
  }
  const { max, maxSize, ttl, staleIfError, negativeMax, negativeTtl } = cache;
  const memory = cache.memory ? { max, maxSize, ttl, staleIfError, negativeMax, negativeTtl } : undefined;
  const keyCache = new KeyCache({ memory, redis: redisTier, channel: notifyChannel(resolved, redis, knex), observer, now, logger, metrics });
  await keyCache.start();
  return keyCache;
}

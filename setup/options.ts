// Options for initialize(): the public shape, its documented defaults, and the one place
// where the environment is read.
import { failConfiguration } from "../lib/errors";
import { TOKEN_SEGMENT } from "../lib/tokens";
import type { Logger } from "../lib/logger";
import { type ApiKeyStore, assertApiKeyStore } from "../lib/store";
import { type DatabaseOption, isKnex } from "../store/connect";
import type { RedisAddress, RedisTopology } from "../store/cache/open-redis";
import { type RedisClient, isCluster, isRedisClient } from "../store/cache/redis-client";
import { prefixFitsCluster } from "../store/cache/redis-names";
import { type MetricsOptions, checkMetricsOption } from "./metrics";

/** Cache settings; every field is optional and has the default shown. */
export interface CacheOptions {
  /** Keep verified keys in process memory (the first tier). Default: `true`. */
  memory?: boolean;
  /** Most keys kept in memory. Default: `10000`. */
  max?: number;
  /** Most bytes kept in memory, counted from each entry's JSON size. Default: `16777216` (16 MiB). */
  maxSize?: number;
  /**
   * How long a key is served from memory before the next tier is asked again, in milliseconds.
   * Without Redis, on MySQL, SQLite and PGlite (which have no LISTEN/NOTIFY between instances),
   * this also bounds how late another instance learns of a revocation. Default: `5000`.
   */
  ttl?: number;
  /** How much longer keys verified before a database outage keep working during it, in milliseconds. Default: `60000`. */
  staleIfError?: number;
  /**
   * Most "no such key" answers kept in memory. They have a tier of their own, apart from `max`,
   * so that a flood of unknown tokens cannot push valid keys out; they are never written to
   * Redis. Default: `10000`.
   */
  negativeMax?: number;
  /** How long a "no such key" answer is kept in memory, in milliseconds. Default: `1000`. */
  negativeTtl?: number;
  /** Longest life of an entry in Redis, in milliseconds (never past the key's `revoked_at`). Default: `60000`. */
  redisTtl?: number;
  /**
   * Prefix of every Redis key and of the invalidation channel; every app and CLI sharing keys must
   * use the same one. Default: `API_KEYS_REDIS_PREFIX` when set, else `"apikey:"`.
   */
  redisPrefix?: string;
  /** How long a Redis command may take before authentication goes on without it, in milliseconds. Default: `250`. */
  redisTimeout?: number;
}

export type ResolvedCacheOptions = Required<CacheOptions>;

/** Where Redis keys go, and how long a Redis command may take, when no cache options say. */
export const DEFAULT_REDIS_PREFIX = "apikey:";
export const DEFAULT_REDIS_TIMEOUT = 250;

const CACHE_DEFAULTS: ResolvedCacheOptions = {
  memory: true,
  max: 10_000,
  maxSize: 16 * 1024 * 1024,
  ttl: 5_000,
  staleIfError: 60_000,
  negativeMax: 10_000,
  negativeTtl: 1_000,
  redisTtl: 60_000,
  redisPrefix: DEFAULT_REDIS_PREFIX,
  redisTimeout: DEFAULT_REDIS_TIMEOUT,
};

/**
 * Redis named by its nodes, each `host:port` (`[::1]:6379` for IPv6), as `REDIS_CLUSTER_NODES`,
 * `REDIS_SENTINELS` and the CLI name them. For credentials or TLS, pass a client of your own.
 */
export type RedisNodes =
  | {
      /** Some nodes of a Redis Cluster; the others are discovered. */
      clusterNodes: string[];
    }
  | {
      /** Sentinels that watch the master. */
      sentinels: string[];
      /** The master's name in the Sentinels' configuration. Default: `REDIS_SENTINEL_NAME`. */
      sentinelName?: string;
    };

export interface ApiKeysOptions {
  /**
   * A Knex instance the app owns (pg, PGlite, mysql2 or better-sqlite3), a `postgres://` URL,
   * `pglite://<directory>` / `pglite://memory` for the embedded database, a `mysql://` or
   * `mariadb://` URL (needs the mysql2 package), or `sqlite://<file>` / `sqlite://memory`
   * (needs better-sqlite3). Default: `DATABASE_URL` when set, else `pglite://.express-api-keys`.
   */
  database?: DatabaseOption;
  /**
   * Any ApiKeyStore implementation, instead of `database` (not both). It stays the app's: the
   * service never closes it. Default: a KnexApiKeyStore on `database`.
   */
  store?: ApiKeyStore;
  /**
   * The shared cache tier, which also carries invalidations to every instance: an ioredis client
   * the app owns (a `Redis`, perhaps found through Sentinel, or a `Cluster`), a `redis://` URL,
   * or `{ clusterNodes }` / `{ sentinels, sentinelName }`. `false` turns Redis off even when the
   * environment names one. Default: `REDIS_URL`, `REDIS_CLUSTER_NODES` or `REDIS_SENTINELS`
   * (with `REDIS_SENTINEL_NAME`), whichever is set, else no Redis.
   */
  redis?: RedisClient | string | RedisNodes | false;
  /** Cache settings, or `false` for no cache at all (every authentication asks the database). */
  cache?: CacheOptions | false;
  /**
   * A read replica of `database` (PostgreSQL streaming replication): a pg Knex the app owns, or a
   * `postgres://` URL. Lookups that miss the caches, and list and retrieve calls, read there once
   * it has applied every change they must see; writes, and every read that must see the latest
   * state, go to `database`. `false` ignores `DATABASE_READ_URL`.
   * Default: `DATABASE_READ_URL` when set (and no `store` is given), else none.
   */
  readDatabase?: DatabaseOption | false;
  /** How long a read may take on the replica before `database` answers it instead, in milliseconds. Default: `250`. */
  readDatabaseTimeout?: number;
  /**
   * Where our tables live: a PostgreSQL schema, or a MySQL database; SQLite has none, so there
   * it is a TypeError. Default: `API_KEYS_SCHEMA` when set, else the connection's search path
   * (usually `public`) or database.
   */
  schema?: string;
  /** Bring the tables up to date on initialize. Default: `true`. */
  runMigrations?: boolean;
  /**
   * A server-side secret mixed into secret-key hashes (HMAC-SHA-256), so a leaked table alone
   * cannot be checked against guesses. Changing it invalidates every secret key, so every app and
   * CLI sharing keys must use the same one. Default: `API_KEYS_PEPPER` when set, else none (plain SHA-256).
   */
  pepper?: string | Buffer;
  /**
   * This deployment's own segment in new tokens, `sk_<tokenPrefix>_...` and `pk_<tokenPrefix>_...`
   * (1 to 16 lower-case letters and digits), covered by the tag and the checksum, so that secret
   * scanners can tell its tokens from everyone else's (`apiKeys.tokenPattern`). Tokens issued
   * before it was set or changed keep working. Default: `API_KEYS_TOKEN_PREFIX` when set, else none.
   */
  tokenPrefix?: string;
  /** The clock. Default: `() => new Date()`. */
  now?: () => Date;
  /**
   * How often the last use of each key is written, in milliseconds: uses are coalesced in
   * memory and flushed in one statement per interval, and on `close()`. Default: `10000`.
   */
  lastUsedFlushInterval?: number;
  /**
   * Count every verification per key, hour and code (see `getUsage`), written in the background
   * with `last_used_at`, at each `lastUsedFlushInterval`. Default: `true`.
   */
  usageAnalytics?: boolean;
  /** How many days verification counts are kept; older hours are deleted in the background. Default: `90`. */
  usageRetentionDays?: number;
  /**
   * Prometheus metrics through prom-client (an optional peer dependency: install it): `true` for
   * prom-client's default registry, or `{ registry, prefix }`. Default: `false`, which loads nothing.
   */
  metrics?: boolean | MetricsOptions;
  /** Receives warnings from background work, such as a failed last_used_at flush. Default: `console`. */
  logger?: Logger;
}

export interface ResolvedOptions {
  database: DatabaseOption;
  store: ApiKeyStore | undefined;
  redis: RedisClient | string | RedisTopology | undefined;
  cache: ResolvedCacheOptions | false;
  readDatabase: DatabaseOption | undefined;
  readDatabaseTimeout: number;
  schema: string | undefined;
  runMigrations: boolean;
  pepper: string | Buffer | undefined;
  tokenPrefix: string | undefined;
  now: () => Date;
  lastUsedFlushInterval: number;
  usageAnalytics: boolean;
  usageRetentionDays: number;
  metrics: MetricsOptions | undefined;
  logger: Logger;
}

/** Where the embedded PGlite database lives when nothing else is configured (relative to the working directory). */
export const DEFAULT_EMBEDDED_DIRECTORY = ".express-api-keys";

const OPTION_NAMES = [
  "database", "store", "redis", "cache", "schema", "runMigrations", "pepper", "now", "lastUsedFlushInterval", "logger",
  "readDatabase", "readDatabaseTimeout", "usageAnalytics", "usageRetentionDays", "metrics", "tokenPrefix",
];
const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

function isPositive(value: unknown): boolean {
  return typeof value === "number" && value > 0 && Number.isFinite(value);
}

function resolveCache(cache: CacheOptions | false | undefined): ResolvedCacheOptions | false {
  if (cache === false) return false;
  if (cache !== undefined && (typeof cache !== "object" || cache === null)) failConfiguration("`cache` must be an object or `false`.");
  const given = Object.fromEntries(Object.entries(cache ?? {}).filter(([, value]) => value !== undefined));
  const unknown = Object.keys(given).filter((name) => !(name in CACHE_DEFAULTS));
  if (unknown.length > 0) failConfiguration(`unknown option \`cache.${unknown[0]}\`; the cache options are ${Object.keys(CACHE_DEFAULTS).join(", ")}.`);
  const resolved = { ...CACHE_DEFAULTS, ...given } as ResolvedCacheOptions;
  for (const name of ["max", "maxSize", "ttl", "negativeMax", "negativeTtl", "redisTtl", "redisTimeout"] as const) {
    if (!isPositive(resolved[name])) failConfiguration(`\`cache.${name}\` must be a positive number.`);
  }
  if (typeof resolved.staleIfError !== "number" || !(resolved.staleIfError >= 0)) failConfiguration("`cache.staleIfError` must be zero or more milliseconds.");
  if (typeof resolved.memory !== "boolean") failConfiguration("`cache.memory` must be a boolean.");
  if (typeof resolved.redisPrefix !== "string") failConfiguration("`cache.redisPrefix` must be a string.");
  return resolved;
}

const REDIS_VARIABLES = ["REDIS_URL", "REDIS_CLUSTER_NODES", "REDIS_SENTINELS"];
/** `host:port`, the host a name or IPv4 address, or an IPv6 address in brackets. */
const ADDRESS = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/;

/** `host:port` entries (spaces around each ignored), or a configuration error naming `name`. */
function addresses(entries: unknown, name: string): RedisAddress[] {
  const parsed = Array.isArray(entries) ? entries.map((entry) => (typeof entry === "string" ? ADDRESS.exec(entry.trim()) : null)) : [];
  const valid = parsed.length > 0 && parsed.every((match) => match !== null && Number(match[3]) >= 1 && Number(match[3]) <= 65535);
  if (!valid) failConfiguration(`\`${name}\` must list host:port addresses, such as \`10.0.0.1:6379,10.0.0.2:6379\`.`);
  return parsed.map((match) => ({ host: match![1] ?? match![2]!, port: Number(match![3]) }));
}

function sentinelTopology(sentinels: RedisAddress[], name: unknown, env: NodeJS.ProcessEnv): RedisTopology {
  const master = name ?? env.REDIS_SENTINEL_NAME;
  if (typeof master !== "string" || master.length === 0) {
    failConfiguration("the Sentinels need the master's name: set `redis.sentinelName` or `REDIS_SENTINEL_NAME`.");
  }
  return { sentinels, name: master };
}

/** `{ clusterNodes }` or `{ sentinels, sentinelName }` given as the option, checked (keys set to undefined count as left out). */
function topologyOption(redis: unknown, env: NodeJS.ProcessEnv): RedisTopology {
  const given = typeof redis === "object" && redis !== null ? Object.entries(redis).filter(([, value]) => value !== undefined) : [];
  const names = given.map(([name]) => name).sort().join(",");
  if (names === "clusterNodes") return { cluster: addresses((redis as { clusterNodes: unknown }).clusterNodes, "redis.clusterNodes") };
  if (names === "sentinels" || names === "sentinelName,sentinels") {
    const { sentinels, sentinelName } = redis as { sentinels: unknown; sentinelName?: unknown };
    return sentinelTopology(addresses(sentinels, "redis.sentinels"), sentinelName, env);
  }
  return failConfiguration(
    "`redis` must be an ioredis client (Redis or Cluster), a redis:// URL, `{ clusterNodes }`, `{ sentinels, sentinelName }` or false.",
  );
}

/** At most one of the variables that name Redis, as the option would. */
function redisFromEnvironment(env: NodeJS.ProcessEnv): string | RedisTopology | undefined {
  const set = REDIS_VARIABLES.filter((name) => env[name]);
  if (set.length > 1) failConfiguration(`set one of \`${REDIS_VARIABLES.join("`, `")}\`, not ${set.map((name) => `\`${name}\``).join(" and ")}.`);
  if (env.REDIS_CLUSTER_NODES) return { cluster: addresses(env.REDIS_CLUSTER_NODES.split(","), "REDIS_CLUSTER_NODES") };
  if (env.REDIS_SENTINELS) return sentinelTopology(addresses(env.REDIS_SENTINELS.split(","), "REDIS_SENTINELS"), undefined, env);
  return env.REDIS_URL;
}

function resolveRedis(redis: ApiKeysOptions["redis"], env: NodeJS.ProcessEnv): ResolvedOptions["redis"] {
  if (redis === false) return undefined;
  if (redis === undefined) return redisFromEnvironment(env);
  if (typeof redis === "string" || isRedisClient(redis)) return redis;
  return topologyOption(redis, env);
}

/** On a Cluster, a prefix must keep each token's entry and version in one slot. */
function checkClusterPrefix(redis: ResolvedOptions["redis"], cache: ResolvedCacheOptions | false): void {
  // A client has a `cluster` method too (the CLUSTER command): only a topology is a plain object.
  const cluster = isCluster(redis) || (typeof redis === "object" && !isRedisClient(redis) && "cluster" in redis);
  if (cluster && cache && !prefixFitsCluster(cache.redisPrefix)) {
    failConfiguration("on a Redis Cluster, `cache.redisPrefix` may hold braces only as a whole hash tag such as `{apikey}:`; a stray `{` or an empty `{}` would split a key's entries across slots.");
  }
}

/** How long a read may take on the replica when no option says. */
export const DEFAULT_READ_DATABASE_TIMEOUT = 250;

const POSTGRES_URL = /^postgres(ql)?:\/\//;

/**
 * The read replica: the option, else DATABASE_READ_URL, each only beside the database store.
 * Only PostgreSQL replicas are told apart from their primary (by WAL position), so a URL must
 * be a postgres:// one; a Knex instance is checked when it is opened.
 */
function resolveReadDatabase(options: ApiKeysOptions, env: NodeJS.ProcessEnv): DatabaseOption | undefined {
  const { readDatabase, store } = options;
  if (readDatabase === false) return undefined;
  if (readDatabase === undefined) {
    if (store !== undefined) return undefined;
    return fromEnvironment(env, "DATABASE_READ_URL", (value) => POSTGRES_URL.test(value), "must be a postgres:// URL of a streaming replica");
  }
  if (store !== undefined) failConfiguration("`readDatabase` belongs to the database store; configure a custom `store` itself.");
  if (!isKnex(readDatabase) && !(typeof readDatabase === "string" && POSTGRES_URL.test(readDatabase))) {
    failConfiguration("`readDatabase` must be a pg Knex instance, a postgres:// URL of a streaming replica, or false.");
  }
  return readDatabase;
}

/** An environment variable's value, undefined when unset; a set but malformed one fails like a bad option. */
function fromEnvironment(env: NodeJS.ProcessEnv, name: string, valid: (value: string) => boolean, problem: string): string | undefined {
  const value = env[name];
  if (value !== undefined && !valid(value)) failConfiguration(`\`${name}\` ${problem}.`);
  return value;
}

/** `cache.redisPrefix` falls back to `API_KEYS_REDIS_PREFIX`; anything that is not a cache object is left for resolveCache to judge. */
function withPrefixFromEnvironment(cache: CacheOptions | false | undefined, env: NodeJS.ProcessEnv): CacheOptions | false | undefined {
  const prefix = env.API_KEYS_REDIS_PREFIX;
  if (prefix === undefined || cache === false || (cache !== undefined && (typeof cache !== "object" || cache === null))) return cache;
  return cache?.redisPrefix === undefined ? { ...cache, redisPrefix: prefix } : cache;
}

export function resolveOptions(options: ApiKeysOptions = {}, env: NodeJS.ProcessEnv = process.env): ResolvedOptions {
  if (typeof options !== "object" || options === null) failConfiguration("`initialize(options)` takes an object.");
  const unknown = Object.keys(options).filter((name) => !OPTION_NAMES.includes(name));
  if (unknown.length > 0) failConfiguration(`unknown option \`${unknown[0]}\`; the options are ${OPTION_NAMES.join(", ")}.`);

  const { store, redis, runMigrations, now, lastUsedFlushInterval, logger } = options;
  if (store !== undefined) {
    if (options.database !== undefined) failConfiguration("pass `store` or `database`, not both.");
    if (options.schema !== undefined) failConfiguration("`schema` belongs to the database store; configure a custom `store` itself.");
    assertApiKeyStore(store);
  }
  // The settings that change what is stored or where it is cached fall back to the environment,
  // so that an app and the CLI given the same environment read and write the same keys.
  const schema =
    options.schema ?? fromEnvironment(env, "API_KEYS_SCHEMA", (value) => SCHEMA_NAME.test(value), "must be a plain SQL identifier such as `auth`");
  const pepper =
    options.pepper ?? fromEnvironment(env, "API_KEYS_PEPPER", (value) => value.length > 0, "is set but empty; unset it for plain SHA-256");
  if (schema !== undefined && (typeof schema !== "string" || !SCHEMA_NAME.test(schema))) {
    failConfiguration("`schema` must be a plain SQL identifier such as `auth`.");
  }
  if (runMigrations !== undefined && typeof runMigrations !== "boolean") failConfiguration("`runMigrations` must be a boolean.");
  if (pepper !== undefined && !(typeof pepper === "string" || Buffer.isBuffer(pepper)) ) {
    failConfiguration("`pepper` must be a string or a Buffer.");
  }
  if (pepper !== undefined && pepper.length === 0) failConfiguration("`pepper` must not be empty; leave it out for plain SHA-256.");
  const tokenPrefix = options.tokenPrefix ?? fromEnvironment(env, "API_KEYS_TOKEN_PREFIX", (value) => TOKEN_SEGMENT.test(value), "must be 1 to 16 lower-case letters and digits");
  if (tokenPrefix !== undefined && (typeof tokenPrefix !== "string" || !TOKEN_SEGMENT.test(tokenPrefix))) {
    failConfiguration("`tokenPrefix` must be 1 to 16 lower-case letters and digits, such as `acme`.");
  }
  if (now !== undefined && typeof now !== "function") failConfiguration("`now` must be a function returning a Date.");
  if (
    lastUsedFlushInterval !== undefined && !isPositive(lastUsedFlushInterval)
  ) {
    failConfiguration("`lastUsedFlushInterval` must be a positive number of milliseconds.");
  }
  const { readDatabaseTimeout, usageAnalytics, usageRetentionDays } = options;
  if (usageAnalytics !== undefined && typeof usageAnalytics !== "boolean") failConfiguration("`usageAnalytics` must be a boolean.");
  if (usageRetentionDays !== undefined && !isPositive(usageRetentionDays)) failConfiguration("`usageRetentionDays` must be a positive number of days.");
  if (readDatabaseTimeout !== undefined && !isPositive(readDatabaseTimeout)) failConfiguration("`readDatabaseTimeout` must be a positive number of milliseconds.");
  if (logger !== undefined && (typeof logger?.warn !== "function" || typeof logger?.error !== "function")) {
    failConfiguration("`logger` must have `warn` and `error` methods.");
  }

  const resolvedRedis = resolveRedis(redis, env);
  const cache = resolveCache(withPrefixFromEnvironment(options.cache, env));
  checkClusterPrefix(resolvedRedis, cache);

  return {
    database: options.database ?? env.DATABASE_URL ?? `pglite://${DEFAULT_EMBEDDED_DIRECTORY}`,
    store,
    redis: resolvedRedis,
    cache,
    readDatabase: resolveReadDatabase(options, env),
    readDatabaseTimeout: readDatabaseTimeout ?? DEFAULT_READ_DATABASE_TIMEOUT,
    schema,
    runMigrations: runMigrations ?? true,
    pepper,
    tokenPrefix,
    now: now ?? (() => new Date()),
    lastUsedFlushInterval: lastUsedFlushInterval ?? 10_000,
    usageAnalytics: usageAnalytics ?? true,
    usageRetentionDays: usageRetentionDays ?? 90,
    metrics: checkMetricsOption(options.metrics),
    logger: logger ?? console,
  };
}

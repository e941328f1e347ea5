// The names of the Redis tier's keys and channel. The keys one command touches together (a
// token's entry and its version, read by one MGET and fenced by one script) must live in one
// slot on a Redis Cluster, or the cluster refuses the command (CROSSSLOT). There the cache key
// is a hash tag, `{<hash>}`: only the part within the braces decides the slot, and tokens still
// spread over every node. On one Redis (or one found through Sentinel) the names stay as they
// were before Cluster support, so that instances of both releases share entries and versions,
// and fence each other's fills, during a rolling upgrade.

export interface RedisNames {
  entry(cacheKey: string): string;
  version(cacheKey: string): string;
  /** A SCAN pattern that matches every entry (and no version). */
  readonly entries: string;
  readonly channel: string;
}

export function redisNames(prefix: string, cluster: boolean): RedisNames {
  const tag = cluster ? (cacheKey: string) => `{${cacheKey}}` : (cacheKey: string) => cacheKey;
  return {
    entry: (cacheKey) => `${prefix}key:${tag(cacheKey)}`,
    version: (cacheKey) => `${prefix}ver:${tag(cacheKey)}`,
    entries: `${prefix}key:*`,
    channel: `${prefix}invalidate`,
  };
}

/** The part of a key that Redis Cluster hashes to find its slot: the first non-empty `{...}`, else all of it. */
export function hashedPart(key: string): string {
  const open = key.indexOf("{");
  if (open === -1) return key;
  const close = key.indexOf("}", open + 1);
  return close > open + 1 ? key.slice(open + 1, close) : key;
}

/**
 * Whether a token's entry and version share a slot under this prefix. A prefix with a whole
 * hash tag of its own (`{apikey}:`) does: it puts every key in one slot. A stray `{`, or an
 * empty `{}`, does not, and would make every command fail with CROSSSLOT.
 */
export function prefixFitsCluster(prefix: string): boolean {
  const names = redisNames(prefix, true);
  const sample = "0".repeat(64);
  return hashedPart(names.entry(sample)) === hashedPart(names.version(sample));
}

// The ioredis clients the Redis tier takes, and how to tell them apart without loading ioredis:
// one Redis (perhaps found through Sentinel, which behaves as one Redis) or a Cluster.
import type { Cluster, Redis } from "ioredis";

export type RedisClient = Redis | Cluster;

/**
 * A Cluster has `duplicate` too (its argument is a list of startup nodes, not options), so the
 * two are told apart by `isCluster`, which ioredis sets on both; `instanceof` would fail for a
 * client made by another copy of ioredis.
 */
export function isCluster(value: unknown): value is Cluster {
  return isClientLike(value) && (value as Cluster).isCluster === true && typeof (value as Cluster).nodes === "function";
}

export function isRedisClient(value: unknown): value is RedisClient {
  return isClientLike(value) && typeof (value as { isCluster?: unknown }).isCluster === "boolean";
}

function isClientLike(value: unknown): boolean {
  return typeof value === "object" && value !== null && typeof (value as Redis).duplicate === "function";
}

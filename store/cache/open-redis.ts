// Turns the `redis` option into a client, loading ioredis only when Redis is used: the app's
// own client as it is, or one we open from a URL, a Cluster's nodes or a set of Sentinels.
import { type RedisClient, isRedisClient } from "./redis-client";

export interface RedisAddress {
  host: string;
  port: number;
}

/** Redis named by its nodes rather than a URL: a Cluster's startup nodes, or the Sentinels that know the master called `name`. */
export type RedisTopology = { cluster: RedisAddress[] } | { sentinels: RedisAddress[]; name: string };

export interface OpenedRedis {
  client: RedisClient;
  /** True when we created the client, so `close()` must disconnect it. */
  owned: boolean;
}

export async function openRedis(redis: RedisClient | string | RedisTopology, timeoutMs: number): Promise<OpenedRedis> {
  if (isRedisClient(redis)) return { client: redis, owned: false };
  const client = await createClient(redis);
  // The Redis tier reports errors through the logger once it is built; until then, this keeps
  // ioredis from printing "Unhandled error event" to the console when Redis is down at boot.
  client.on("error", () => {});
  // Redis is a cache: boot goes on without it, and ioredis keeps reconnecting in the background.
  await Promise.race([client.connect().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, timeoutMs).unref())]);
  return { client, owned: true };
}

async function createClient(redis: string | RedisTopology): Promise<RedisClient> {
  const { Cluster, Redis } = await import("ioredis");
  const reconnect = (attempt: number) => Math.min(attempt * 100, 1000);
  // Fail commands at once while disconnected, so authentication falls through to the database.
  const failFast = { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy: reconnect };
  if (typeof redis === "string") return new Redis(redis, failFast);
  if ("cluster" in redis) return new Cluster(redis.cluster, { lazyConnect: true, enableOfflineQueue: false, clusterRetryStrategy: reconnect });
  // failoverDetector: hear a failover from the Sentinels (+switch-master) and move to the new
  // master at once, so that every instance, and its subscription, moves together; otherwise each
  // stays on the old master until the Sentinels demote it, which can take many seconds.
  return new Redis({ ...failFast, sentinels: redis.sentinels, name: redis.name, failoverDetector: true });
}

// Turns the `redis` option into a client, loading ioredis only when Redis is used.
import type { Redis } from "ioredis";

export interface OpenedRedis {
  client: Redis;
  /** True when we created the client, so `close()` must disconnect it. */
  owned: boolean;
}

export async function openRedis(redis: Redis | string, timeoutMs: number): Promise<OpenedRedis> {
  if (typeof redis !== "string") return { client: redis, owned: false };
  const { Redis: RedisClient } = await import("ioredis");
  const client = new RedisClient(redis, {
    lazyConnect: true,
    // Fail commands at once while disconnected, so authentication falls through to the database.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    retryStrategy: (attempt) => Math.min(attempt * 100, 1000),
  });
  // The Redis tier reports errors through the logger once it is built; until then, this keeps
  // ioredis from printing "Unhandled error event" to the console when Redis is down at boot.
  client.on("error", () => {});
  // Redis is a cache: boot goes on without it, and ioredis keeps reconnecting in the background.
  await Promise.race([client.connect().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, timeoutMs).unref())]);
  return { client, owned: true };
}

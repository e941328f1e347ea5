// The shared tier: verified keys in Redis under a prefix, and a pub/sub channel that carries
// invalidations to every instance. Redis is only a cache: every failure here is logged once
// per outage and the caller falls through to the database.
import type { Redis } from "ioredis";
import type { Logger } from "../last-used";
import { type CacheEntry, deserializeEntry, serializeEntry } from "./entry";

export interface RedisTierOptions {
  prefix: string;
  /** Longest life of an entry, in milliseconds; an entry never outlives its key's `revoked_at`. */
  ttl: number;
  /** How long one command may take before the caller stops waiting for Redis. */
  timeout: number;
  logger: Logger;
  now: () => Date;
}

/** Invalidations that could not reach Redis are kept for its return; past this many, everything is cleared. */
const MAX_PENDING = 10_000;
/** How long a key's version outlives its last invalidation: far longer than any fill can take. */
const VERSION_TTL_MS = 60 * 60 * 1000;

// Writes a filled entry only if no invalidation bumped the key's version since the fill read it.
const SET_IF_VERSION = `
local current = redis.call('GET', KEYS[2]) or ''
if current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0`;

export interface RedisRead {
  entry: CacheEntry | undefined;
  /** The key's version when read: a fill may only write while it is unchanged. */
  version: string;
}

export class RedisTier {
  readonly #client: Redis;
  readonly #ownsClient: boolean;
  readonly #options: RedisTierOptions;
  readonly #channel: string;
  #subscriber: Redis | undefined;
  #pending = new Set<string>();
  #pendingAll = false;
  #warned = false;

  constructor(client: Redis, ownsClient: boolean, options: RedisTierOptions) {
    this.#client = client;
    this.#ownsClient = ownsClient;
    this.#options = options;
    this.#channel = `${options.prefix}invalidate`;
    client.on("ready", this.#onReady);
    client.on("error", this.#down);
  }

  #entryKey(cacheKey: string): string {
    return `${this.#options.prefix}key:${cacheKey}`;
  }

  #versionKey(cacheKey: string): string {
    return `${this.#options.prefix}ver:${cacheKey}`;
  }

  /**
   * Subscribes to invalidations. `onResync` runs whenever the subscription drops or comes back,
   * because messages sent meanwhile are lost and the in-process tier can no longer trust itself.
   */
  async start(onInvalidate: (cacheKeys: string[] | "all") => void, onResync: () => void): Promise<void> {
    const subscriber = this.#client.duplicate({ enableOfflineQueue: true, lazyConnect: true });
    this.#subscriber = subscriber;
    subscriber.on("message", (_channel: string, message: string) => {
      onInvalidate(message === "*" ? "all" : (JSON.parse(message) as string[]));
    });
    // Resync once per drop and once per return, not on every failed reconnect attempt.
    let connected = false;
    let everConnected = false;
    subscriber.on("ready", () => {
      if (everConnected) onResync();
      connected = everConnected = true;
    });
    subscriber.on("close", () => {
      if (connected) onResync();
      connected = false;
    });
    subscriber.on("error", (error: unknown) => this.#down(error));
    try {
      await subscriber.connect();
      await subscriber.subscribe(this.#channel);
    } catch (error) {
      // Redis is down at boot: ioredis keeps retrying and resubscribes when it is back.
      this.#down(error);
    }
  }

  readonly #down = (error: unknown): void => {
    if (this.#warned) return;
    this.#warned = true;
    this.#options.logger.warn("express-api-keys: Redis is unavailable; authenticating from the database until it is back", error);
  };

  readonly #onReady = (): void => {
    if (this.#warned) this.#options.logger.warn("express-api-keys: Redis is back; using the shared cache again");
    this.#warned = false;
    void this.#flushPending();
  };

  /** Runs a command when Redis is ready, giving up after the timeout; undefined means "no answer". */
  async #call<T>(command: (client: Redis) => Promise<T>): Promise<T | undefined> {
    if (this.#client.status !== "ready") {
      this.#down(new Error(`Redis connection is ${this.#client.status}`));
      return undefined;
    }
    let timer: NodeJS.Timeout | undefined;
    try {
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`Redis did not answer within ${this.#options.timeout} ms`)), this.#options.timeout);
      });
      return await Promise.race([command(this.#client), timeout]);
    } catch (error) {
      this.#down(error);
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The cached entry and the key's version, in one round trip; undefined when Redis does not answer. */
  async read(cacheKey: string): Promise<RedisRead | undefined> {
    const values = await this.#call((client) => client.mget(this.#entryKey(cacheKey), this.#versionKey(cacheKey)));
    if (!values) return undefined;
    const [entry, version] = values;
    return { entry: entry ? deserializeEntry(entry) : undefined, version: version ?? "" };
  }

  /** Stores a filled entry unless an invalidation came in since `version` was read. */
  async write(cacheKey: string, entry: CacheEntry, version: string): Promise<void> {
    let ttl = this.#options.ttl;
    const revokedAt = entry.found ? entry.api_key.revoked_at : null;
    const untilRevoked = revokedAt ? revokedAt.getTime() - this.#options.now().getTime() : Infinity;
    if (untilRevoked > 0) ttl = Math.min(ttl, Math.ceil(untilRevoked));
    await this.#call((client) =>
      client.eval(SET_IF_VERSION, 2, this.#entryKey(cacheKey), this.#versionKey(cacheKey), version, serializeEntry(entry), ttl),
    );
  }

  /**
   * Drops entries everywhere: bumps each key's version (fencing fills in flight), deletes the
   * entries and tells every instance. What cannot reach Redis now is sent when it is back.
   */
  async invalidate(cacheKeys: string[]): Promise<void> {
    if (cacheKeys.length === 0) return;
    const done = await this.#call(async (client) => {
      const multi = client.multi();
      for (const cacheKey of cacheKeys) {
        multi.incr(this.#versionKey(cacheKey)).pexpire(this.#versionKey(cacheKey), VERSION_TTL_MS);
        multi.del(this.#entryKey(cacheKey));
      }
      multi.publish(this.#channel, JSON.stringify(cacheKeys));
      return multi.exec();
    });
    if (done) return;
    for (const cacheKey of cacheKeys) this.#pending.add(cacheKey);
    if (this.#pending.size > MAX_PENDING) {
      this.#pending.clear();
      this.#pendingAll = true;
    }
  }

  async #flushPending(): Promise<void> {
    if (this.#pendingAll) {
      this.#pendingAll = false;
      await this.clear();
    }
    const keys = [...this.#pending];
    this.#pending.clear();
    await this.invalidate(keys);
  }

  /** Deletes every entry under our prefix (a SCAN, never FLUSHDB) and tells every instance. */
  async clear(): Promise<void> {
    await this.#call(async (client) => {
      let cursor = "0";
      do {
        const [next, keys] = await client.scan(cursor, "MATCH", `${this.#options.prefix}key:*`, "COUNT", 500);
        cursor = next;
        if (keys.length > 0) await client.del(...keys);
      } while (cursor !== "0");
      await client.publish(this.#channel, "*");
    });
  }

  /** Closes the subscriber, and the client too when we opened it; an app's client stays open. */
  async close(): Promise<void> {
    this.#client.off("ready", this.#onReady);
    this.#client.off("error", this.#down);
    this.#subscriber?.disconnect();
    if (this.#ownsClient) this.#client.disconnect();
  }
}

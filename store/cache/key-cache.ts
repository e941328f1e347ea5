// Looks keys up through the tiers, nearest first: in-process LRU, then Redis, then the store.
// Concurrent misses for one token share a single lookup, invalidations fence fills in flight,
// and while the store is down, keys verified shortly before keep working for a bounded time.
import { LRUCache } from "lru-cache";
import { ApiKeyError } from "../../lib/errors";
import type { Logger } from "../last-used";
import type { CacheEntry } from "./entry";
import type { RedisTier } from "./redis";

export interface MemoryTierOptions {
  /** Most entries kept. */
  max: number;
  /** Most bytes kept, counted roughly from each entry's JSON size. */
  maxSize: number;
  /** How long an entry is served without asking the next tier, in milliseconds. */
  ttl: number;
  /** How much longer an entry keeps working while the store cannot be reached, in milliseconds. */
  staleIfError: number;
}

type Slot = CacheEntry & { storedAt: number };
type Loader = () => Promise<CacheEntry>;

export class KeyCache {
  readonly #memory: LRUCache<string, Slot, Loader> | undefined;
  readonly #memoryOptions: MemoryTierOptions | undefined;
  readonly #redis: RedisTier | undefined;
  readonly #now: () => Date;
  readonly #logger: Logger;
  #servingStale = false;

  constructor(options: { memory?: MemoryTierOptions; redis?: RedisTier; now: () => Date; logger: Logger }) {
    this.#redis = options.redis;
    this.#now = options.now;
    this.#logger = options.logger;
    this.#memoryOptions = options.memory;
    if (options.memory) {
      this.#memory = new LRUCache<string, Slot, Loader>({
        max: options.memory.max,
        maxSize: options.memory.maxSize,
        sizeCalculation: (slot) => JSON.stringify(slot).length,
        ttl: options.memory.ttl,
        // Keep expired entries so they can stand in while the store is down.
        allowStaleOnFetchRejection: true,
        noDeleteOnFetchRejection: true,
        // Read the service's clock on every check (lru-cache would otherwise reuse one reading for 1 ms).
        perf: { now: () => this.#now().getTime() },
        ttlResolution: 0,
        fetchMethod: async (_key, _stale, { context }) => ({ ...(await context()), storedAt: this.#now().getTime() }),
      });
    }
  }

  /** Subscribes to invalidations from other instances. */
  async start(): Promise<void> {
    await this.#redis?.start(
      (cacheKeys) => (cacheKeys === "all" ? this.#memory?.clear() : this.#dropLocal(cacheKeys)),
      () => this.#memory?.clear(),
    );
  }

  async lookup(cacheKey: string, load: Loader): Promise<CacheEntry> {
    const loadThroughRedis = () => this.#loadThroughRedis(cacheKey, load);
    if (!this.#memory) return loadThroughRedis();
    try {
      return await this.#fetch(cacheKey, loadThroughRedis);
    } catch (error) {
      if (error instanceof ApiKeyError) throw error;
      // An invalidation aborted the fetch in flight, so its possibly stale result was not
      // kept. Look again past this tier: that read starts after the change.
      return loadThroughRedis();
    }
  }

  async #fetch(cacheKey: string, load: Loader): Promise<CacheEntry> {
    const status: LRUCache.Status<string, Slot, Loader> = {};
    const slot = await this.#memory!.fetch(cacheKey, { context: load, status });
    // A failed load with nothing stale to stand in resolves to undefined; its error is in status.
    if (!slot) throw status.fetchError ?? new ApiKeyError("unavailable", "The API key store is unavailable");
    if (!status.returnedStale) {
      if (this.#servingStale) this.#logger.warn("express-api-keys: the key store is back");
      this.#servingStale = false;
      return slot;
    }
    // The refresh failed: the store is unavailable. Serve what was verified, within bounds.
    const { ttl, staleIfError } = this.#memoryOptions!;
    if (this.#now().getTime() - slot.storedAt > ttl + staleIfError) {
      throw new ApiKeyError("unavailable", "The API key store is unavailable", { cause: status.fetchError });
    }
    if (!this.#servingStale) {
      this.#servingStale = true;
      this.#logger.warn("express-api-keys: the key store is unavailable; serving recently verified keys", status.fetchError);
    }
    return slot;
  }

  async #loadThroughRedis(cacheKey: string, load: Loader): Promise<CacheEntry> {
    if (!this.#redis) return load();
    const cached = await this.#redis.read(cacheKey);
    if (cached?.entry) return cached.entry;
    const entry = await load();
    if (cached) await this.#redis.write(cacheKey, entry, cached.version);
    return entry;
  }

  #dropLocal(cacheKeys: string[]): void {
    // Deleting also aborts a fetch in flight for that key, so a fill that raced the change is never kept.
    for (const cacheKey of cacheKeys) this.#memory?.delete(cacheKey);
  }

  /** Drops keys here at once, and everywhere else through Redis. */
  async invalidate(cacheKeys: string[]): Promise<void> {
    this.#dropLocal(cacheKeys);
    await this.#redis?.invalidate(cacheKeys);
  }

  async close(): Promise<void> {
    this.#memory?.clear();
    await this.#redis?.close();
  }
}

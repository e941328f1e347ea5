// Looks keys up through the tiers, nearest first: in-process LRU, then Redis, then the store.
// Concurrent misses for one token share a single lookup, invalidations fence fills in flight,
// and while the store is down, keys verified shortly before keep working for a bounded time.
// "No such key" answers live apart, in memory only: a flood of unknown tokens can neither push
// valid keys out of memory nor write anything to Redis.
import { LRUCache } from "lru-cache";
import { ApiKeyError } from "../../lib/errors";
import type { Logger } from "../../lib/logger";
import type { CacheEntry, EntryLoader, FoundEntry, KeyLookupCache } from "../../lib/key-lookup-cache";
import { type Metrics, secondsSince } from "../../lib/metrics";
import type { InvalidationChannel, InvalidationListener } from "./invalidation-channel";
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
  /** Most "no such key" answers kept, apart from `max`. */
  negativeMax: number;
  /** How long a "no such key" answer is kept, in milliseconds. */
  negativeTtl: number;
}

type Slot = FoundEntry & { storedAt: number };

const NOT_FOUND: CacheEntry = Object.freeze({ found: false });

/**
 * One lookup past the memory tier, shared by every concurrent lookup of its key. An
 * invalidation marks it aborted: its answer may have been read before the change, so it is
 * neither kept nor given to anyone.
 */
interface Flight {
  readonly answer: Promise<CacheEntry>;
  aborted: boolean;
}

export class KeyCache implements KeyLookupCache {
  readonly #memory: LRUCache<string, Slot> | undefined;
  readonly #unknown: LRUCache<string, true> | undefined;
  readonly #memoryOptions: MemoryTierOptions | undefined;
  readonly #flights = new Map<string, Flight>();
  readonly #redis: RedisTier | undefined;
  readonly #channel: InvalidationChannel | undefined;
  readonly #observer: InvalidationListener | undefined;
  readonly #now: () => Date;
  readonly #logger: Logger;
  readonly #metrics: Metrics | undefined;
  #servingStale = false;

  /**
   * `channel` carries invalidations when there is no Redis tier (whose pub/sub carries them
   * otherwise). `observer` hears every invalidation this instance makes or hears of, and every
   * resync, before the tiers act on it: a read replica's reader must know what changed.
   */
  constructor(options: {
    memory?: MemoryTierOptions;
    redis?: RedisTier;
    channel?: InvalidationChannel;
    observer?: InvalidationListener;
    now: () => Date;
    logger: Logger;
    /** Hears which tier answered each lookup, and how long the store took. */
    metrics?: Metrics;
  }) {
    this.#metrics = options.metrics;
    this.#redis = options.redis;
    this.#channel = options.channel;
    this.#observer = options.observer;
    this.#now = options.now;
    this.#logger = options.logger;
    this.#memoryOptions = options.memory;
    if (options.memory) {
      // Freshness is decided here from `storedAt`, not by lru-cache: an entry past its ttl stays
      // (until pushed out) so that it can stand in while the store is down.
      this.#memory = new LRUCache<string, Slot>({
        max: options.memory.max,
        maxSize: options.memory.maxSize,
        sizeCalculation: (slot) => JSON.stringify(slot).length,
      });
      this.#unknown = new LRUCache<string, true>({
        max: options.memory.negativeMax,
        ttl: options.memory.negativeTtl,
        // Read the service's clock on every check (lru-cache would otherwise reuse one reading for 1 ms).
        perf: { now: () => this.#now().getTime() },
        ttlResolution: 0,
      });
    }
  }

  /** Subscribes to invalidations from other instances. */
  async start(): Promise<void> {
    const invalidated = (cacheKeys: string[] | "all") => {
      this.#observer?.invalidated(cacheKeys);
      if (cacheKeys === "all") this.#clearLocal();
      else this.#dropLocal(cacheKeys);
    };
    const resync = () => {
      this.#observer?.resync();
      this.#clearLocal();
    };
    await this.#redis?.start(invalidated, resync);
    await this.#channel?.start({ invalidated, resync });
  }

  /** Whether invalidations from every instance reach this one now (false with no carrier at all). */
  get listening(): boolean {
    return this.#redis ? this.#redis.subscribed : (this.#channel?.live ?? false);
  }

  /**
   * What the memory tier can answer at once, with no I/O: a fresh entry, a fresh "no such key",
   * or undefined when only `lookup` can tell (no memory tier, a miss, an entry past its ttl).
   * `now` is the caller's reading of the clock, which it goes on to judge the entry by.
   */
  peek(cacheKey: string, now: Date): CacheEntry | undefined {
    if (!this.#memory) return undefined;
    const slot = this.#memory.get(cacheKey);
    if (slot && now.getTime() - slot.storedAt < this.#memoryOptions!.ttl) return slot;
    return this.#unknown!.get(cacheKey) ? NOT_FOUND : undefined;
  }

  async lookup(cacheKey: string, load: EntryLoader): Promise<CacheEntry> {
    if (!this.#memory) return this.#loadThroughRedis(cacheKey, load);
    const slot = this.#memory.get(cacheKey);
    if (slot && this.#now().getTime() - slot.storedAt < this.#memoryOptions!.ttl) {
      this.#metrics?.answered("memory");
      return slot;
    }
    if (this.#unknown!.get(cacheKey)) {
      this.#metrics?.answered("memory");
      return NOT_FOUND;
    }
    const flight = this.#flights.get(cacheKey) ?? this.#fly(cacheKey, load);
    try {
      const entry = await flight.answer;
      if (!flight.aborted) return entry;
    } catch (error) {
      if (!flight.aborted) return this.#standIn(slot, error);
    }
    // An invalidation arrived while the lookup was in flight, so its answer may predate the
    // change. Look again past this tier: that read starts after the change.
    return this.#loadThroughRedis(cacheKey, load);
  }

  #fly(cacheKey: string, load: EntryLoader): Flight {
    const flight = { aborted: false } as { answer: Promise<CacheEntry>; aborted: boolean };
    const landed = () => {
      if (this.#flights.get(cacheKey) === flight) this.#flights.delete(cacheKey);
    };
    flight.answer = this.#loadThroughRedis(cacheKey, load).then(
      (entry) => {
        landed();
        if (!flight.aborted) this.#keep(cacheKey, entry);
        return entry;
      },
      (error: unknown) => {
        landed();
        throw error;
      },
    );
    this.#flights.set(cacheKey, flight);
    return flight;
  }

  #keep(cacheKey: string, entry: CacheEntry): void {
    if (entry.found) {
      this.#memory!.set(cacheKey, { ...entry, storedAt: this.#now().getTime() });
      this.#unknown!.delete(cacheKey);
    } else {
      this.#memory!.delete(cacheKey);
      this.#unknown!.set(cacheKey, true);
    }
    if (this.#servingStale) this.#logger.warn("express-api-keys: the key store is back");
    this.#servingStale = false;
  }

  /**
   * The store could not be reached: serve what was verified shortly before, within bounds,
   * else the failure. Any other failure (a bug, a broken schema) is no outage and is never
   * papered over with a stale entry.
   */
  #standIn(slot: Slot | undefined, error: unknown): Slot {
    if (!(error instanceof ApiKeyError && error.type === "unavailable")) throw error;
    const { ttl, staleIfError } = this.#memoryOptions!;
    if (!slot || this.#now().getTime() - slot.storedAt > ttl + staleIfError) throw error;
    if (!this.#servingStale) {
      this.#servingStale = true;
      this.#logger.warn("express-api-keys: the key store is unavailable; serving recently verified keys", error);
    }
    return slot;
  }

  async #loadThroughRedis(cacheKey: string, load: EntryLoader): Promise<CacheEntry> {
    if (!this.#redis) return this.#fromStore(load, false);
    const cached = await this.#redis.read(cacheKey);
    if (cached?.entry) {
      this.#metrics?.answered("redis");
      return cached.entry;
    }
    // A key with a version was invalidated within the hour, perhaps by an instance we have not
    // heard from yet: what is written to Redis must not come from a replica behind that change.
    const entry = await this.#fromStore(load, Boolean(cached?.version));
    if (cached) await this.#redis.write(cacheKey, entry, cached);
    return entry;
  }

  #fromStore(load: EntryLoader, latest: boolean): Promise<CacheEntry> {
    const metrics = this.#metrics;
    if (!metrics) return load(latest);
    const start = process.hrtime.bigint();
    return load(latest).then(
      (entry) => {
        metrics.timed("store", secondsSince(start), true);
        metrics.answered("store");
        return entry;
      },
      (error: unknown) => {
        metrics.timed("store", secondsSince(start), false);
        throw error;
      },
    );
  }

  #abort(cacheKey: string): void {
    const flight = this.#flights.get(cacheKey);
    if (!flight) return;
    flight.aborted = true;
    this.#flights.delete(cacheKey);
  }

  #dropLocal(cacheKeys: string[]): void {
    for (const cacheKey of cacheKeys) {
      this.#memory?.delete(cacheKey);
      this.#unknown?.delete(cacheKey);
      this.#abort(cacheKey);
    }
  }

  #clearLocal(): void {
    this.#memory?.clear();
    this.#unknown?.clear();
    for (const cacheKey of [...this.#flights.keys()]) this.#abort(cacheKey);
  }

  /** Drops keys here at once, and everywhere else through Redis or the channel. */
  async invalidate(cacheKeys: string[]): Promise<void> {
    // Told even of an empty list: a key was created, which a reader of lists must see.
    this.#observer?.invalidated(cacheKeys);
    this.#dropLocal(cacheKeys);
    await this.#redis?.invalidate(cacheKeys);
    await this.#channel?.publish(cacheKeys);
  }

  async close(): Promise<void> {
    this.#clearLocal();
    await this.#redis?.close();
    await this.#channel?.close();
  }
}

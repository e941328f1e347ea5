// The cache the verifier looks keys up through, as the domain needs it: store/cache/key-cache.ts
// implements it with an in-process LRU and Redis; the service knows only this contract.
import type { ApiKeyDTO } from "./types";

/** What the tiers hold for one token hash: the verified key without secret material... */
export type FoundEntry = { found: true; api_key: ApiKeyDTO; sales_channel_ids: string[] };
/** ...or the fact that no key has that token. */
export type CacheEntry = FoundEntry | { found: false };

/**
 * Reads the entry from the store on a miss of every tier. `latest`: the key changed recently on
 * some instance, perhaps one not heard from yet, so the answer must reflect every committed
 * change (a read replica may lag behind that change).
 */
export type EntryLoader = (latest: boolean) => Promise<CacheEntry>;

export interface KeyLookupCache {
  /**
   * What the nearest tier can answer at once, with no I/O: a fresh entry, a fresh "no such key",
   * or undefined when only `lookup` can tell. `now` is the caller's reading of the clock, which
   * it goes on to judge the entry by. Called on every verification, before any other work.
   */
  peek(cacheKey: string, now: Date): CacheEntry | undefined;
  /**
   * The entry through every tier, nearest first, calling `load` when none has it. Concurrent
   * lookups of one key share one `load`; a lookup in flight during an invalidation of its key is
   * made again rather than answered stale. Rejects with `load`'s error when no tier may stand in.
   */
  lookup(cacheKey: string, load: EntryLoader): Promise<CacheEntry>;
  /** Drops these keys from every tier of every instance; awaited after each committed change. */
  invalidate(cacheKeys: string[]): Promise<void>;
  /** Stops listening for invalidations; called once, by the service's `close()`. */
  close(): Promise<void>;
}

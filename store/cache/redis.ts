// The shared tier: verified keys in Redis under a prefix, and a pub/sub channel that carries
// invalidations to every instance. Redis is only a cache: every failure here is logged once
// per outage and the caller falls through to the database.
//
// Nothing read from Redis is trusted. Anyone who can write to it could otherwise sign in with
// an entry made up for a token of their choosing, or bring a revoked key back by putting a
// saved entry back. So each entry is signed (see entry.ts) with a key derived from the pepper or
// the deployment secret, which Redis never sees, and carries when it was written and when it
// expires. An entry is refused, and the lookup goes on to the database, unless its signature
// holds, it has not expired, and it was written after this instance subscribed to
// invalidations and after the last invalidation of its key this instance heard of.
import type { Redis } from "ioredis";
import type { Logger } from "../../lib/logger";
import type { CacheEntry, FoundEntry } from "../../lib/key-lookup-cache";
import { openSignedEntry, signEntry } from "./entry";
import { FailureRun } from "./failure-run";
import { invalidationMessages, parseInvalidation } from "./invalidation-message";

export interface RedisTierOptions {
  prefix: string;
  /** Longest life of an entry, in milliseconds; an entry never outlives its key's `revoked_at` or `expires_at`. */
  ttl: number;
  /** How long one command may take before the caller stops waiting for Redis. */
  timeout: number;
  logger: Logger;
  now: () => Date;
  /**
   * The key that signs entries. Called when first needed and again after a failure (it may read
   * the database); until it succeeds, Redis is not used at all.
   */
  signingKey: () => Promise<Buffer>;
  /** Invalidated keys remembered at most (see MAX_REMEMBERED); smaller in tests. */
  maxRemembered?: number;
}

/** Invalidations that could not reach Redis are kept for its return; past this many, everything is cleared. */
const MAX_PENDING = 10_000;
/** How long a key's version outlives its last invalidation: far longer than any fill can take. */
const VERSION_TTL_MS = 60 * 60 * 1000;
/** Invalidated keys remembered at most; past this, the oldest give way to a floor instant. */
const MAX_REMEMBERED = 50_000;
/** After the signing key could not be had, how long Redis is skipped before trying again. */
const KEY_RETRY_MS = 1_000;
/** How long rejected entries must stop before the warning about them is lifted. */
const QUIET_MS = 60_000;
/**
 * An entry written this much before an invalidation cannot be a fill that raced it (such a fill
 * writes after the change, and only the pub/sub delay separates the two): it was put back.
 */
const REPLAY_MARGIN_MS = 1_000;

// Writes a filled entry only if no invalidation bumped the key's version since the fill read it.
const SET_IF_VERSION = `
local current = redis.call('GET', KEYS[2]) or ''
if current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0`;

export interface RedisRead {
  /** The entry, when one was there and passed every check. Only found keys are ever written. */
  entry: FoundEntry | undefined;
  /** An entry was there but was not served: the fill replaces or deletes it. */
  refused: boolean;
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
  #key: Buffer | undefined;
  #keyLoading: Promise<Buffer | undefined> | undefined;
  #keyRetryAt = 0;
  readonly #maxRemembered: number;
  readonly #keyFailures: FailureRun;
  readonly #rejections: FailureRun;
  readonly #badMessages: FailureRun;
  /** Cache key -> when this instance last heard it was invalidated (its clock), oldest first. */
  readonly #invalidatedAt = new Map<string, number>();
  /** Entries written at or before this instant are refused: Infinity while not subscribed. */
  #floor = Infinity;

  constructor(client: Redis, ownsClient: boolean, options: RedisTierOptions) {
    this.#client = client;
    this.#ownsClient = ownsClient;
    this.#options = options;
    this.#channel = `${options.prefix}invalidate`;
    this.#maxRemembered = options.maxRemembered ?? MAX_REMEMBERED;
    this.#keyFailures = new FailureRun(options.logger, options.now, 0, {
      start: "express-api-keys: cannot read the deployment secret; the Redis tier is skipped until it can be read",
      end: "express-api-keys: the deployment secret was read; using the shared cache again",
    });
    this.#rejections = new FailureRun(options.logger, options.now, QUIET_MS, {
      start:
        "express-api-keys: refused an entry read from Redis that failed verification (forged, altered, put back after " +
        "an invalidation, or signed under another deployment secret or pepper); such entries are looked up in the database",
      end: "express-api-keys: entries read from Redis verify again",
    });
    this.#badMessages = new FailureRun(options.logger, options.now, QUIET_MS, {
      start: `express-api-keys: ignored a message on the invalidation channel ${this.#channel} that is not one of ours`,
      end: "express-api-keys: the invalidation channel carries only well-formed messages again",
    });
    client.on("ready", this.#onReady);
    client.on("error", this.#down);
  }

  /** Whether the subscription is up: no invalidation published from now on can be missed. */
  get subscribed(): boolean {
    return this.#floor !== Infinity;
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
    subscriber.on("message", (_channel: string, message: unknown) => this.#onMessage(message, onInvalidate));
    // Resync once per drop and once per return, not on every failed reconnect attempt.
    let connected = false;
    let everConnected = false;
    let booting = true;
    subscriber.on("ready", () => {
      if (everConnected) onResync();
      connected = everConnected = true;
      // After boot, (re)subscribe ourselves: that also covers a boot without Redis, and tells us
      // from when on no invalidation can be missed.
      if (!booting) void this.#subscribe(subscriber);
    });
    subscriber.on("close", () => {
      // Invalidations sent from now on are lost to us: no entry can be vouched for.
      this.#floor = Infinity;
      if (connected) onResync();
      connected = false;
    });
    subscriber.on("error", (error: unknown) => this.#down(error));
    try {
      await subscriber.connect();
      await this.#subscribe(subscriber);
    } catch (error) {
      // Redis is down at boot: ioredis keeps retrying, and the ready handler subscribes when it is back.
      this.#down(error);
    } finally {
      booting = false;
    }
    await this.#signingKey();
  }

  /**
   * Acts on one message. Anyone who can publish to Redis can send anything: what is not one of
   * our messages is ignored (and logged once per run), and nothing here may throw, because a
   * throw inside an ioredis event handler would end the process.
   */
  #onMessage(message: unknown, onInvalidate: (cacheKeys: string[] | "all") => void): void {
    const cacheKeys = parseInvalidation(message);
    if (!cacheKeys) {
      this.#badMessages.failed();
      return;
    }
    this.#badMessages.succeeded();
    try {
      this.#heard(cacheKeys);
      onInvalidate(cacheKeys);
    } catch (error) {
      this.#options.logger.error("express-api-keys: could not apply an invalidation", error);
    }
  }

  /** Subscribes; from then on, entries written earlier are refused (invalidations of them may have been missed). */
  async #subscribe(subscriber: Redis): Promise<void> {
    try {
      await subscriber.subscribe(this.#channel);
      this.#floor = this.#options.now().getTime();
    } catch (error) {
      this.#down(error);
    }
  }

  /** Remembers, for cache.redisTtl, when each key was invalidated, so entries from before are refused. */
  #heard(cacheKeys: string[] | "all"): void {
    const now = this.#options.now().getTime();
    if (cacheKeys === "all") {
      this.#invalidatedAt.clear();
      this.#floor = Math.max(this.#floor, now);
      return;
    }
    for (const cacheKey of cacheKeys) {
      // Re-inserted at the end, so the map stays ordered by time.
      this.#invalidatedAt.delete(cacheKey);
      this.#invalidatedAt.set(cacheKey, now);
    }
    // Past cache.redisTtl an invalidation is no longer needed: every entry from before it has expired.
    for (const [cacheKey, at] of this.#invalidatedAt) {
      if (now - at <= this.#options.ttl && this.#invalidatedAt.size <= this.#maxRemembered) break;
      this.#invalidatedAt.delete(cacheKey);
      // Forgotten too early (the map is full): refuse everything written before it instead.
      if (now - at <= this.#options.ttl) this.#floor = Math.max(this.#floor, at);
    }
  }

  /**
   * The signing key, loading it when first needed; undefined while it cannot be had. After a
   * failure (the database is down, or the secret table is missing) it is tried again at most
   * once per KEY_RETRY_MS, so that lookups do not each wait for the database twice.
   */
  #signingKey(): Buffer | Promise<Buffer | undefined> {
    if (this.#key) return this.#key;
    if (!this.#keyLoading && this.#options.now().getTime() < this.#keyRetryAt) return Promise.resolve(undefined);
    this.#keyLoading ??= this.#options.signingKey().then(
      (key) => {
        this.#key = key;
        this.#keyLoading = undefined;
        this.#keyFailures.succeeded();
        return key;
      },
      (error: unknown) => {
        this.#keyLoading = undefined;
        this.#keyRetryAt = this.#options.now().getTime() + KEY_RETRY_MS;
        this.#keyFailures.failed(error);
        return undefined;
      },
    );
    return this.#keyLoading;
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

  /**
   * The cached entry, if it passes every check, and the key's version, in one round trip;
   * undefined when Redis does not answer or the signing key cannot be had.
   */
  async read(cacheKey: string): Promise<RedisRead | undefined> {
    const key = this.#key ?? (await this.#signingKey());
    if (!key) return undefined;
    const values = await this.#call((client) => client.mget(this.#entryKey(cacheKey), this.#versionKey(cacheKey)));
    if (!values) return undefined;
    const [text, version] = values;
    const entry = text ? this.#verify(key, cacheKey, text) : undefined;
    return { entry, refused: Boolean(text) && !entry, version: version ?? "" };
  }

  /** The entry if `text` passes every check; undefined (a miss) otherwise. */
  #verify(key: Buffer, cacheKey: string, text: string): FoundEntry | undefined {
    const signed = openSignedEntry(key, cacheKey, text);
    const now = this.#options.now().getTime();
    if (!signed || signed.expiresAt - signed.writtenAt > this.#options.ttl || outlivesRevocation(signed)) {
      this.#rejections.failed();
      return undefined;
    }
    const { entry, writtenAt, expiresAt } = signed;
    // Expired, or older than what this instance can vouch for: a miss, but no sign of an attack.
    // (A signed "not found" is never written: unknown tokens stay in each instance's memory.)
    if (expiresAt <= now || writtenAt <= this.#floor || !entry.found) return undefined;
    const invalidatedAt = this.#invalidatedAt.get(cacheKey);
    if (invalidatedAt !== undefined && writtenAt <= invalidatedAt) {
      // Within the margin this may be a fill that raced the invalidation on another instance's clock.
      if (writtenAt < invalidatedAt - REPLAY_MARGIN_MS) this.#rejections.failed();
      return undefined;
    }
    this.#rejections.succeeded();
    return entry;
  }

  /**
   * Stores a found key's entry, signed, unless an invalidation came in since `read` was made.
   * "Not found" is never stored, so that unknown tokens cannot fill Redis; an entry that was
   * refused for such a token is deleted instead.
   */
  async write(cacheKey: string, entry: CacheEntry, read: RedisRead): Promise<void> {
    const key = this.#key;
    if (!key) return;
    if (!entry.found) {
      if (read.refused) await this.#call((client) => client.del(this.#entryKey(cacheKey)));
      return;
    }
    const now = this.#options.now().getTime();
    let ttl = this.#options.ttl;
    const end = endOf(entry);
    const untilEnd = end === undefined ? Infinity : end - now;
    if (untilEnd > 0) ttl = Math.min(ttl, Math.ceil(untilEnd));
    const text = signEntry(key, cacheKey, { entry, writtenAt: now, expiresAt: now + ttl });
    await this.#call((client) => client.eval(SET_IF_VERSION, 2, this.#entryKey(cacheKey), this.#versionKey(cacheKey), read.version, text, ttl));
  }

  /**
   * Drops entries everywhere: bumps each key's version (fencing fills in flight), deletes the
   * entries and tells every instance. What cannot reach Redis now is sent when it is back.
   */
  async invalidate(cacheKeys: string[]): Promise<void> {
    if (cacheKeys.length === 0) return;
    // Our own message comes back too, but until it does, entries from before are refused here.
    this.#heard(cacheKeys);
    const done = await this.#call(async (client) => {
      const multi = client.multi();
      for (const cacheKey of cacheKeys) {
        multi.incr(this.#versionKey(cacheKey)).pexpire(this.#versionKey(cacheKey), VERSION_TTL_MS);
        multi.del(this.#entryKey(cacheKey));
      }
      for (const message of invalidationMessages(cacheKeys)) multi.publish(this.#channel, message);
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
    this.#heard("all");
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

/** When a found key stops authenticating: the earlier of its `revoked_at` and `expires_at`, in epoch ms. */
function endOf(entry: CacheEntry): number | undefined {
  if (!entry.found) return undefined;
  const instants = [entry.api_key.revoked_at, entry.api_key.expires_at].flatMap((at) => (at ? [at.getTime()] : []));
  return instants.length > 0 ? Math.min(...instants) : undefined;
}

/** A signed entry of a key scheduled for revocation or expiry must expire by then (the writer ensures it). */
function outlivesRevocation({ entry, writtenAt, expiresAt }: { entry: CacheEntry; writtenAt: number; expiresAt: number }): boolean {
  const end = endOf(entry);
  return end !== undefined && end > writtenAt && expiresAt > end;
}

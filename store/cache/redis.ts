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
//
// On a Redis Cluster the same holds: a token's entry and version share a slot (redis-names.ts),
// so every command here touches one slot; invalidations are sent key by key and then published;
// and the subscription is one connection that moves to another node when its own is lost
// (subscriber.ts). MOVED, ASK and TRYAGAIN during resharding or a failover are ioredis's to
// follow; what takes longer than the timeout is a miss, as any other Redis failure.
//
// Over 400 lines for one reason: reads, writes and invalidations share the fences that keep a
// stale entry out (the subscription's floor, the invalidations heard, the versions): split
// apart, each part would need all of them.
import type { Logger } from "../../lib/logger";
import type { CacheEntry, FoundEntry } from "../../lib/key-lookup-cache";
import { type Metrics, secondsSince } from "../../lib/metrics";
import { openSignedEntry, signEntry } from "./entry";
import { FailureRun } from "./failure-run";
import { invalidationMessages, parseInvalidation } from "./invalidation-message";
import { type RedisClient, isCluster } from "./redis-client";
import { type RedisNames, redisNames } from "./redis-names";
import { type Subscriber, openSubscriber } from "./subscriber";

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
  /** Hears how long each command took, and whether it succeeded. */
  metrics?: Metrics;
}

/** Invalidations that could not reach Redis are kept for its return; past this many, everything is cleared. */
const MAX_PENDING = 10_000;
/** How long a key's version outlives its last invalidation: far longer than any fill can take. */
const VERSION_TTL_MS = 60 * 60 * 1000;
/** Invalidated keys remembered at most; past this, the oldest give way to a floor instant. */
const MAX_REMEMBERED = 50_000;
/** After invalidations could not be sent, how long until they are sent again, doubling up to PENDING_RETRY_MAX_MS. */
const PENDING_RETRY_MS = 50;
const PENDING_RETRY_MAX_MS = 1_000;
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

// On a Cluster: bumps a key's version (fencing fills in flight) and deletes its entry, in one step.
const BUMP_VERSION = `
redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return 1`;

export interface RedisRead {
  /** The entry, when one was there and passed every check. Only found keys are ever written. */
  entry: FoundEntry | undefined;
  /** An entry was there but was not served: the fill replaces or deletes it. */
  refused: boolean;
  /** The key's version when read: a fill may only write while it is unchanged. */
  version: string;
  /** When the read began, by this instance's clock (see `write`). */
  readAt: number;
}

export class RedisTier {
  readonly #client: RedisClient;
  readonly #ownsClient: boolean;
  readonly #options: RedisTierOptions;
  readonly #names: RedisNames;
  #subscriber: Subscriber | undefined;
  #pending = new Set<string>();
  #pendingAll = false;
  #pendingTimer: NodeJS.Timeout | undefined;
  #pendingRetries = 0;
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

  constructor(client: RedisClient, ownsClient: boolean, options: RedisTierOptions) {
    this.#client = client;
    this.#ownsClient = ownsClient;
    this.#options = options;
    this.#names = redisNames(options.prefix, isCluster(client));
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
      start: `express-api-keys: ignored a message on the invalidation channel ${this.#names.channel} that is not one of ours`,
      end: "express-api-keys: the invalidation channel carries only well-formed messages again",
    });
    client.on("ready", this.#onReady);
    client.on("error", this.#down);
  }

  /** Whether the subscription is up: no invalidation published from now on can be missed. */
  get subscribed(): boolean {
    return this.#floor !== Infinity;
  }

  /**
   * Subscribes to invalidations. `onResync` runs whenever the subscription drops or comes back,
   * because messages sent meanwhile are lost and the in-process tier can no longer trust itself.
   */
  async start(onInvalidate: (cacheKeys: string[] | "all") => void, onResync: () => void): Promise<void> {
    const subscriber = openSubscriber(this.#client);
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
  async #subscribe(subscriber: Subscriber): Promise<void> {
    try {
      await subscriber.subscribe(this.#names.channel);
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
  async #call<T>(command: (client: RedisClient) => Promise<T>): Promise<T | undefined> {
    const { metrics } = this.#options;
    if (this.#client.status !== "ready") {
      this.#down(new Error(`Redis connection is ${this.#client.status}`));
      metrics?.timed("redis", 0, false);
      return undefined;
    }
    let timer: NodeJS.Timeout | undefined;
    const start = metrics && process.hrtime.bigint();
    try {
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`Redis did not answer within ${this.#options.timeout} ms`)), this.#options.timeout);
      });
      const answer = await Promise.race([command(this.#client), timeout]);
      if (start !== undefined) metrics!.timed("redis", secondsSince(start), true);
      // A Cluster says "ready" once, not after each failover or timeout: an answer says it is back.
      if (this.#warned) this.#onReady();
      return answer;
    } catch (error) {
      if (start !== undefined) metrics!.timed("redis", secondsSince(start), false);
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
    const readAt = this.#options.now().getTime();
    const values = await this.#call((client) => client.mget(this.#names.entry(cacheKey), this.#names.version(cacheKey)));
    if (!values) return undefined;
    const [text, version] = values;
    const entry = text ? this.#verify(key, cacheKey, text) : undefined;
    return { entry, refused: Boolean(text) && !entry, version: version ?? "", readAt };
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
   *
   * Two fences keep out a fill that raced a change: the key's version in Redis, and what this
   * instance heard since the read began (an invalidation of the key, or a drop of the
   * subscription). The second holds even when Redis lost the version bump, as when a failover
   * promotes a replica that had not yet received it.
   */
  async write(cacheKey: string, entry: CacheEntry, read: RedisRead): Promise<void> {
    const key = this.#key;
    if (!key) return;
    if (!entry.found) {
      if (read.refused) await this.#call((client) => client.del(this.#names.entry(cacheKey)));
      return;
    }
    if (Math.max(this.#invalidatedAt.get(cacheKey) ?? -Infinity, this.#floor) > read.readAt) return;
    const now = this.#options.now().getTime();
    let ttl = this.#options.ttl;
    const end = endOf(entry);
    const untilEnd = end === undefined ? Infinity : end - now;
    if (untilEnd > 0) ttl = Math.min(ttl, Math.ceil(untilEnd));
    const text = signEntry(key, cacheKey, { entry, writtenAt: now, expiresAt: now + ttl });
    await this.#call((client) => client.eval(SET_IF_VERSION, 2, this.#names.entry(cacheKey), this.#names.version(cacheKey), read.version, text, ttl));
  }

  /**
   * Drops entries everywhere: bumps each key's version (fencing fills in flight), deletes the
   * entries and tells every instance. What cannot reach Redis now is sent again shortly, and
   * at once when the client is ready again.
   */
  async invalidate(cacheKeys: string[]): Promise<void> {
    if (cacheKeys.length === 0) return;
    // Our own message comes back too, but until it does, entries from before are refused here.
    this.#heard(cacheKeys);
    if (await this.#call((client) => this.#send(client, cacheKeys))) return;
    for (const cacheKey of cacheKeys) this.#pending.add(cacheKey);
    if (this.#pending.size > MAX_PENDING) {
      this.#pending.clear();
      this.#pendingAll = true;
    }
    this.#retryPending();
  }

  /** Bumps and deletes, then publishes; throws (or resolves undefined) when Redis did not take it all. */
  async #send(client: RedisClient, cacheKeys: string[]): Promise<unknown> {
    if (isCluster(client)) return this.#sendKeyByKey(client, cacheKeys);
    // One Redis: every bump and the messages in one transaction, in one round trip.
    const multi = client.multi();
    for (const cacheKey of cacheKeys) {
      multi.incr(this.#names.version(cacheKey)).pexpire(this.#names.version(cacheKey), VERSION_TTL_MS);
      multi.del(this.#names.entry(cacheKey));
    }
    for (const message of invalidationMessages(cacheKeys)) multi.publish(this.#names.channel, message);
    return multi.exec();
  }

  /**
   * On a Cluster a key's version and entry share a slot, but two keys seldom do: each key gets a
   * script of its own, and the messages go out once every script has answered, so that no
   * instance hears of a change before a fill that raced it is fenced. They go out even when a
   * script failed: instances that hear them refuse the entries from before, and the failure
   * keeps the keys pending, so that their versions are bumped later.
   */
  async #sendKeyByKey(client: RedisClient, cacheKeys: string[]): Promise<true> {
    const bumps = await Promise.allSettled(
      cacheKeys.map((cacheKey) => client.eval(BUMP_VERSION, 2, this.#names.version(cacheKey), this.#names.entry(cacheKey), VERSION_TTL_MS)),
    );
    for (const message of invalidationMessages(cacheKeys)) await client.publish(this.#names.channel, message);
    const failed = bumps.find((bump) => bump.status === "rejected");
    if (failed) throw failed.reason;
    return true;
  }

  /**
   * Sends pending invalidations again after a delay that grows while they keep failing. A
   * Cluster stays "ready" through a reshard or a failover, so waiting for "ready" is not enough.
   */
  #retryPending(): void {
    if (this.#pendingTimer) return;
    const delay = Math.min(PENDING_RETRY_MS * 2 ** this.#pendingRetries++, PENDING_RETRY_MAX_MS);
    this.#pendingTimer = setTimeout(() => {
      this.#pendingTimer = undefined;
      void this.#flushPending();
    }, delay);
    this.#pendingTimer.unref();
  }

  async #flushPending(): Promise<void> {
    if (this.#pendingAll) {
      this.#pendingAll = false;
      if (!(await this.#clear())) {
        this.#pendingAll = true;
        this.#retryPending();
        return;
      }
    }
    const keys = [...this.#pending];
    this.#pending.clear();
    if (keys.length === 0) {
      this.#pendingRetries = 0;
      return;
    }
    await this.invalidate(keys);
    if (this.#pending.size === 0) this.#pendingRetries = 0;
  }

  /**
   * Deletes every entry under our prefix (a SCAN of each master, never FLUSHDB) and tells every
   * instance; false when Redis did not answer.
   */
  async #clear(): Promise<boolean> {
    this.#heard("all");
    const done = await this.#call(async (client) => {
      for (const node of isCluster(client) ? client.nodes("master") : [client]) {
        let cursor = "0";
        do {
          const [next, keys] = await node.scan(cursor, "MATCH", this.#names.entries, "COUNT", 500);
          cursor = next;
          // One DEL per key: on a Cluster, keys found together seldom share a slot.
          await Promise.all(keys.map((key) => client.del(key)));
        } while (cursor !== "0");
      }
      await client.publish(this.#names.channel, "*");
      return true;
    });
    return done === true;
  }

  /** Closes the subscriber, and the client too when we opened it; an app's client stays open. */
  async close(): Promise<void> {
    this.#client.off("ready", this.#onReady);
    this.#client.off("error", this.#down);
    clearTimeout(this.#pendingTimer);
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

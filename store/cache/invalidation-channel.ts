// How invalidations travel between instances, for the tiers and readers that must hear them:
// the Redis tier's pub/sub when Redis is configured, PostgreSQL LISTEN/NOTIFY (pg-notify.ts)
// when it is not. Messages are those of invalidation-message.ts on either carrier.

/** What an instance hears. Called from event handlers: an implementation must not throw. */
export interface InvalidationListener {
  /** These keys (or every key) changed, on this instance or another one. */
  invalidated(cacheKeys: string[] | "all"): void;
  /** Messages may have been lost: the connection dropped, or came back after a drop. */
  resync(): void;
}

export interface InvalidationChannel {
  /** Whether every message sent from now on will be heard: connected and listening. */
  readonly live: boolean;
  /** Starts listening; resolves even when the carrier is down (it keeps trying in the background). */
  start(listener: InvalidationListener): Promise<void>;
  /** Tells every instance, this one included, that these keys changed; never rejects. */
  publish(cacheKeys: string[]): Promise<void>;
  close(): Promise<void>;
}

// ApiKeyStore: everything the service needs from storage, and nothing more. The service, the
// last_used_at recorder and the cache tiers depend on this interface only; KnexApiKeyStore
// (store/knex-store.ts) implements it for PostgreSQL, PGlite, MySQL/MariaDB and SQLite, and any
// other implementation can be passed as `initialize({ store })`.
//
// Conventions for every member:
// - The service validates all input before it calls a store: conditions come from
//   `normalizeFilters`, ids are non-empty strings, lists are bounded. A store never needs to
//   check them again, and never sees a plaintext secret token (only its hash).
// - "Not found" is never an error: reads answer `undefined` or `[]`, writes of unknown ids do
//   nothing.
// - A store that cannot reach its storage throws an `ApiKeyError` of type `unavailable` (HTTP 503),
//   or any error that `translateError` maps to one. Any other error is a bug: the service logs
//   it and reports `unknown_error` (HTTP 500).
// - Every call is awaited by the service, except `recordLastUsed`, which runs in the background
//   and whose failures are logged and retried.
import type { AuditEvent, AuditFilter, AuditQuery } from "./audit-log";
import { type ApiKeyError, failConfiguration } from "./errors";
import type { Condition, NormalizedFindConfig } from "./filters";
import type { QuotaConsumption, QuotaRefill } from "./quota";
import type { ApiKeyDTO, ApiKeyType } from "./types";
import type { UsageCount, UsageQuery } from "./usage-analytics";

/**
 * A stored key: the DTO's fields, with `token` as stored (a hash for secret keys). The policy
 * fields come back as the DTO has them: `scopes`, `metadata` and `rate_limits` as an array or
 * object (never null: a key written before they existed reads `[]`, `{}`, `[]`), `refill` as an
 * object or null, `remaining` as a number or null, `expires_at` as a Date or null. A store must
 * not share these objects with its callers (copy them in and out), and the filter language
 * reaches only the fields lib/columns.ts marks filterable (`expires_at` and `owner_id` among
 * them, never the JSON ones).
 */
export type ApiKeyRecord = ApiKeyDTO;

/**
 * The fields a write may change. `token` changes only when an imported key's first use replaces
 * Medusa's hash with this package's (lib/imported-keys.ts).
 */
export type ApiKeyPatch = Partial<Omit<ApiKeyRecord, "id" | "redacted" | "type" | "token_format" | "created_by" | "created_at">>;

/** A publishable key with the ids of the sales channels it is linked to, sorted. */
export type PublishableRecord = ApiKeyRecord & { sales_channel_ids: string[] };

/** A row a change wrote, to tell after an app's transaction whether the change was committed. */
export interface WriteProbe {
  id: string;
  /** The row's `updated_at` after the write; `null` when the write deleted the row. */
  updatedAt: Date | null;
}

export interface ApiKeyStore {
  /**
   * Required. The keys matching `condition`, soft-deleted ones only with `config.withDeleted`,
   * ordered by `config.order` (always ending with `id`), then `skip`/`take` applied.
   * `forUpdate`: called inside `transaction` before a change, to lock the rows until it ends;
   * a store without row locks must still make read-check-write sequences in one transaction
   * serialisable (for example by running transactions one at a time).
   */
  find(condition: Condition, config: NormalizedFindConfig, options?: { forUpdate?: boolean }): Promise<ApiKeyRecord[]>;

  /** Required. How many keys match, ignoring `skip`/`take`; soft-deleted ones only with `withDeleted`. */
  count(condition: Condition, withDeleted: boolean): Promise<number>;

  /**
   * Required. The one key whose stored token equals `storedToken` and whose type is `type`,
   * soft-deleted keys excluded; called on every cache miss of the authentication path, so it
   * should be a single indexed lookup (O(1) in the number of keys).
   */
  findByToken(storedToken: string, type: ApiKeyType): Promise<ApiKeyRecord | undefined>;

  /**
   * Recommended. A publishable key by token together with its sales channel ids, in one round
   * trip. Without it the service calls `findByToken` and then `linkedIds`.
   */
  findPublishable?(token: string): Promise<PublishableRecord | undefined>;

  /** Required. Inserts new keys; all or none. */
  insert(records: ApiKeyRecord[]): Promise<void>;

  /**
   * Required. Applies `patch` to the keys with these ids (deleted or not). Soft delete and
   * restore are such patches (`deleted_at` set to an instant, or back to null).
   */
  update(ids: string[], patch: ApiKeyPatch): Promise<void>;

  /** Required. Removes keys for good, with their links. */
  delete(ids: string[]): Promise<void>;

  /** Required. The resource ids of one type linked to a key, sorted. */
  linkedIds(apiKeyId: string, resourceType: string): Promise<string[]>;

  /** Required. Links a key to resource ids; links that exist already are kept as they are. */
  addLinks(apiKeyId: string, resourceType: string, resourceIds: string[]): Promise<void>;

  /** Required. Unlinks resource ids; ids not linked are ignored. */
  removeLinks(apiKeyId: string, resourceType: string, resourceIds: string[]): Promise<void>;

  /** Required. Gives `toId` every link `fromId` has, of every resource type (used by `roll`). */
  copyLinks(fromId: string, toId: string): Promise<void>;

  /**
   * Required. Writes many keys' last use at once, in the background (not awaited on any request).
   * An older use must never overwrite a newer one, since several instances flush in any order.
   */
  recordLastUsed(uses: [id: string, at: Date][]): Promise<void>;

  /**
   * Optional; required for keys with a usage quota (`remaining`). Takes `cost` from the quota of
   * key `id`, only if at least `cost` is left: one atomic conditional write, so that concurrent
   * calls from any number of instances never admit one use more than the quota allows. With
   * `refill`, a quota last refilled (or created) before the current UTC day or month (see
   * `refillIntervalStart`, from `now`) is first set back to `refill.amount`, by exactly one of
   * the concurrent calls, which answers `refilled: true`. Called, and awaited, on every
   * verification of a key that has a quota (so once per use: the price of an exact count);
   * never for keys without one. A key with no quota answers `{ admitted: true, remaining: null }`;
   * an unknown or soft-deleted id answers `admitted: false`. A thrown error fails the
   * verification (closed), as any store outage does.
   */
  consumeQuota?(id: string, cost: number, now: Date, refill?: QuotaRefill): Promise<QuotaConsumption>;

  /**
   * Recommended, with `consumeQuota`. Gives `units` back to the quota of key `id`: units an
   * instance took with `consumeQuota` at `takenAt` as a lease (lib/quota-leases.ts) and did not
   * spend, returned when its service closes. Only if the key still has a quota, is not
   * soft-deleted, still has the `updated_at` it had then (`version`: an edit set a new value)
   * and was not refilled after `takenAt` (the units belong to the interval they were taken in):
   * one atomic conditional write. Without it, unspent units are lost when a service closes.
   */
  returnQuota?(id: string, units: number, takenAt: Date, version: Date): Promise<void>;

  /**
   * Required. Runs `work` atomically: every change made through the store it is given commits
   * together or not at all, and rows read with `forUpdate` stay locked until it ends. Called
   * inside another transaction (from `within`), it must nest (a savepoint) or join it.
   */
  transaction<T>(work: (store: ApiKeyStore) => Promise<T>): Promise<T>;

  /**
   * Optional. The same store, running every call inside the app's own transaction (what apps
   * pass as `{ transaction }` in a method's context). Without it, passing a transaction is an
   * `invalid_data` error.
   */
  within?(transaction: unknown): ApiKeyStore;

  /**
   * Optional, with `within`. Resolves once the app's transaction has ended, committed or not
   * (never rejects for a rollback). The service then drops the changed keys from the caches
   * again, and sends its events if a row it wrote is there as written.
   */
  settled?(transaction: unknown): Promise<void>;

  /**
   * Recommended. Stores audit events (lib/audit-log.ts). Called on the store a change's
   * transaction hands its work, after the change's own writes, so that an event is stored
   * exactly when its change commits. Without it, changes keep no audit log (events still reach
   * listeners) and `listAuditEvents` is `not_allowed`.
   */
  insertAuditEvents?(events: AuditEvent[]): Promise<void>;

  /** With `insertAuditEvents`: the events matching `query.where`, by `at` then `id` in `query.order`, then `skip`/`take`. */
  findAuditEvents?(query: AuditQuery): Promise<AuditEvent[]>;

  /** With `insertAuditEvents`: how many events match, ignoring `skip`/`take`. */
  countAuditEvents?(where: AuditFilter): Promise<number>;

  /**
   * Recommended. Adds verification counts (lib/usage-analytics.ts) to the stored ones, per key,
   * hour and code, in one atomic write per call, so that the counts of every instance sum
   * exactly. Called in the background (not awaited on any request); a failure is logged and the
   * counts are written again later. Without it, verifications are not counted and `getUsage` is
   * `not_allowed`.
   */
  recordUsage?(counts: UsageCount[]): Promise<void>;

  /** With `recordUsage`: the stored counts of hours starting in [from, to], of one key, one owner's keys, or all (null key included). */
  findUsage?(query: UsageQuery): Promise<UsageCount[]>;

  /** With `recordUsage`: deletes the counts of hours before `hour` (the retention), in the background. */
  deleteUsageBefore?(hour: Date): Promise<void>;

  /**
   * Optional. The value stored under `name`, written first as `create()` when there is none;
   * concurrent first calls from several processes must all get the same value. Keeps the
   * deployment secret that signs cache entries and tags tokens when no pepper is configured.
   * Without it (and without a `pepper`), the Redis tier cannot be used and tokens are issued
   * untagged, in format 1.
   */
  loadSecret?(name: string, create: () => string): Promise<string>;

  /**
   * Recommended. Whether any key whose token is format 1 (`token_format` 1, or null in a row
   * written before that column existed) could still authenticate: one not revoked at or before
   * `now`. Soft-deleted and expired keys count, since a restore or an update can bring them
   * back. Called, and awaited, when a service starts, after it revokes, deletes or rolls a key,
   * and every minute while the answer is true; once it is false, format-1 tokens are refused
   * with no I/O. Without it, format-1 tokens are always looked up.
   */
  hasLegacyTokens?(now: Date): Promise<boolean>;

  /**
   * Recommended. Of the keys imported from Medusa (`token_format` 3) not revoked at or before
   * `now` (soft-deleted ones count, as for `hasLegacyTokens`): how many there are, and how many
   * of those are secret keys whose stored token still starts with `IMPORTED_HASH_PREFIX`
   * (lib/imported-keys.ts), awaiting their first use. Called when a service starts, after an
   * import or a first use, and every minute. Without it, Medusa-shaped tokens are always looked
   * up, and a secret one that no hash matches is checked against imported keys' hashes.
   */
  importedKeys?(now: Date): Promise<{ live: number; awaiting: number }>;

  /** Optional. Maps an error this store threw to a typed one (see the conventions above). */
  translateError?(error: unknown): ApiKeyError;

  /** Optional. Brings the storage up to date; `initialize()` calls it unless `runMigrations: false`. */
  migrate?(): Promise<void>;

  /** Optional. Releases what the store opened; `close()` of the service calls it last. */
  close?(): Promise<void>;
}

/** The members every store must have; the rest are optional. */
const REQUIRED_MEMBERS = [
  "find", "count", "findByToken", "insert", "update", "delete",
  "linkedIds", "addLinks", "removeLinks", "copyLinks", "recordLastUsed", "transaction",
] as const;

/** Checks at `initialize()` that a custom store has every required method, naming the first one missing. */
export function assertApiKeyStore(value: unknown): asserts value is ApiKeyStore {
  if (typeof value !== "object" || value === null) failConfiguration("`store` must be an object implementing ApiKeyStore.");
  const missing = REQUIRED_MEMBERS.find((name) => typeof (value as Record<string, unknown>)[name] !== "function");
  if (missing) failConfiguration(`\`store\` has no \`${missing}()\` method; see ApiKeyStore for what a store must implement.`);
}

/** What a store can do beyond the required members, read once, when the service is built. */
export interface StoreCapabilities {
  /** It counts usage quotas (`consumeQuota`): keys may have `remaining`. */
  readonly quotas: boolean;
  /** It takes an app's transaction (`within`): calls may pass `{ transaction }`. */
  readonly appTransactions: boolean;
  /** It keeps the audit log (`insertAuditEvents`, `findAuditEvents`, `countAuditEvents`). */
  readonly auditLog: boolean;
  /** It keeps verification counts (`recordUsage`, `findUsage`, `deleteUsageBefore`). */
  readonly usage: boolean;
}

export function capabilitiesOf(store: ApiKeyStore): StoreCapabilities {
  return Object.freeze({
    quotas: typeof store.consumeQuota === "function",
    appTransactions: typeof store.within === "function",
    auditLog: typeof store.insertAuditEvents === "function" && typeof store.findAuditEvents === "function" && typeof store.countAuditEvents === "function",
    usage: typeof store.recordUsage === "function" && typeof store.findUsage === "function" && typeof store.deleteUsageBefore === "function",
  });
}

// How a change reaches the store and then everyone else: the one boundary where store failures
// become typed errors; the app's transaction when a call is given one; the rows a change
// locks, checked against what the acting key may manage; its audit events, in its transaction;
// and, once committed, cache invalidation followed by events, in that order, so that no
// listener acts on a stale cache.
import { type AuditEntry, actorOf, auditEvent, detailsOf } from "./audit-log";
import { checkTargets } from "./delegation";
import { ApiKeyError, redactError, unknownError } from "./errors";
import type { ApiKeyEventBus, EventBatch } from "./events";
import { type Condition, type NormalizedFindConfig, foldCondition, isPlainObject, normalizeFilters } from "./filters";
import { IMPORTED_HASH_PREFIX } from "./imported-keys";
import type { KeyLookupCache } from "./key-lookup-cache";
import { endedBy } from "./key-status";
import type { Logger } from "./logger";
import type { ReplicaReadKind, ReplicaReadOptions, ReplicaReads } from "./replica-reads";
import type { ApiKeyRecord, ApiKeyStore, WriteProbe } from "./store";
import type { TokenGate } from "./token-gate";
import { hashToken } from "./tokens";
import type { Context } from "./types";
import { validateId } from "./validate-input";

/** Every row, in creation order, without soft-deleted ones: what changes select from. */
export const ALL_ROWS: NormalizedFindConfig = { order: [["id", "asc"]], withDeleted: false };

export function byId(id: string): Condition {
  return { kind: "compare", field: "id", op: "=", value: id };
}

/** Whether a change to this key may have left no format-1 key: it was one (revoked, deleted or rolled). */
function endsLegacy(record: ApiKeyRecord): boolean {
  return record.token_format === 1;
}

export interface ChangeUnitParts {
  store: ApiKeyStore;
  cache: KeyLookupCache;
  tokens: TokenGate;
  events: ApiKeyEventBus;
  logger: Logger;
  pepper: string | Buffer | undefined;
  /** Policy time: what the acting key's state is judged by. */
  now: () => Date;
  /** Maps a token in a selector to what the store holds (a secret token's hash). */
  mapToken: (token: string) => string;
  /** Where reads that may lag go (a read replica); without it, every read is the store's. */
  reads?: ReplicaReads;
}

export class ChangeUnit {
  readonly #parts: ChangeUnitParts;

  constructor(parts: ChangeUnitParts) {
    this.#parts = parts;
  }

  /** The store, bound to the app's transaction when the call was given one. */
  #storeFor(ctx: Context | undefined): ApiKeyStore {
    const { store } = this.#parts;
    if (ctx?.transaction === undefined) return store;
    if (!store.within) throw new ApiKeyError("invalid_data", "This store does not take an app transaction in `{ transaction }`");
    return store.within(ctx.transaction);
  }

  /** Runs store work at the one boundary where store failures become typed errors. */
  async run<T>(ctx: Context | undefined, work: (store: ApiKeyStore) => Promise<T>, transactional = false): Promise<T> {
    const store = this.#storeFor(ctx);
    try {
      return await (transactional ? store.transaction(work) : work(store));
    } catch (error) {
      if (error instanceof ApiKeyError) throw error;
      const translated = this.#parts.store.translateError?.(error) ?? unknownError(error);
      // Logged here, once: the caller only ever sees the generic message.
      if (translated.type === "unknown_error") {
        this.#parts.logger.error("express-api-keys: unexpected error from the key store", redactError(error));
      }
      throw translated;
    }
  }

  /**
   * Runs a read that a read replica may serve (see lib/replica-reads.ts), at the same boundary.
   * Inside an app's transaction it is the transaction's, like every other call.
   */
  read<T>(ctx: Context | undefined, kind: ReplicaReadKind, work: (store: ApiKeyStore) => Promise<T>, options: ReplicaReadOptions<T>): Promise<T> {
    const { reads } = this.#parts;
    if (!reads || ctx?.transaction !== undefined) return this.run(ctx, work);
    return this.run(undefined, (primary) => reads.read(kind, primary, work, options));
  }

  /**
   * The cache name of a key: the hash of its token (a secret key's `token` column already is);
   * none for an imported key awaiting its first use, which no cache can hold.
   */
  #cacheKeyOf(record: ApiKeyRecord): string | undefined {
    if (record.type === "publishable") return hashToken(record.token, this.#parts.pepper);
    return record.token.startsWith(IMPORTED_HASH_PREFIX) ? undefined : record.token;
  }

  /**
   * Runs what follows a committed change: cache invalidation, then events. Inside an app's
   * transaction the outcome is known only when it ends: the keys are invalidated again then
   * (fills until then could read the old rows), and the events are sent only if the store says
   * the change was committed.
   */
  async committed(records: ApiKeyRecord[], events: EventBatch[], ctx: Context | undefined, probe: WriteProbe | undefined): Promise<void> {
    const { cache, tokens, store } = this.#parts;
    const cacheKeys = records.map((record) => this.#cacheKeyOf(record)).filter((key) => key !== undefined);
    await cache.invalidate(cacheKeys);
    const transaction = ctx?.transaction;
    if (transaction === undefined) {
      if (records.some(endsLegacy)) await tokens.recheck();
      this.#parts.events.emit(events);
      return;
    }
    if (!store.settled) return;
    store
      .settled(transaction)
      .then(async () => {
        await cache.invalidate(cacheKeys);
        if (records.some(endsLegacy)) await tokens.recheck();
        if (probe && events.length > 0 && (await this.#persisted(probe))) this.#parts.events.emit(events);
      })
      .catch((error: unknown) => {
        this.#parts.logger.error("express-api-keys: could not confirm a change made in an app transaction", error);
      });
  }

  /**
   * Whether a write made in an app's transaction was committed. Some transaction APIs (Knex's
   * among them) report a rollback as success, so the store is asked: everything one call wrote
   * commits or rolls back together, so one row tells.
   */
  async #persisted(probe: WriteProbe): Promise<boolean> {
    const [row] = await this.#parts.store.find(byId(probe.id), { ...ALL_ROWS, withDeleted: true });
    return probe.updatedAt === null ? row === undefined : row?.updated_at.getTime() === probe.updatedAt.getTime();
  }

  /**
   * Stores what a change did as audit events, through the store its transaction handed the
   * work: they commit or roll back with the change. Keys the change left as they were record nothing.
   */
  async audit(store: ApiKeyStore, ctx: Context | undefined, entries: AuditEntry[]): Promise<void> {
    const recorded = entries.filter((entry) => Object.keys(entry.changes).length > 0);
    if (recorded.length === 0 || !store.insertAuditEvents) return;
    const actor = actorOf(ctx);
    const details = detailsOf(ctx);
    const at = this.#parts.now();
    await store.insertAuditEvents(recorded.map((entry) => auditEvent(entry, actor, at, details)));
  }

  /**
   * The key a call acts for (`ctx.actingKey`), as it stands now, read in the call's own
   * transaction; undefined when the call acts for nobody in particular. A key that no longer
   * authenticates acts for nobody: the call is refused.
   */
  async actingKey(store: ApiKeyStore, ctx: Context | undefined): Promise<ApiKeyRecord | undefined> {
    const id: unknown = ctx?.actingKey;
    if (id === undefined) return undefined;
    if (typeof id !== "string") throw new ApiKeyError("invalid_data", "Expected an api key id for 'actingKey'");
    validateId(id);
    const [record] = await store.find(byId(id), { ...ALL_ROWS, withDeleted: true });
    if (!record || record.deleted_at !== null || endedBy(record, this.#parts.now()) !== undefined) {
      throw new ApiKeyError("unauthorized", `The acting key ${id} is no longer valid: it is revoked, expired or deleted`);
    }
    return record;
  }

  /**
   * Locks the rows an id or a selector names, inside the caller's transaction, and refuses the
   * change unless the acting key, if any, may manage every one of them. Soft-deleted rows are
   * out of reach of a selector; `withDeleted` ids (delete, soft delete, restore) reach them.
   */
  async lockManageable(
    store: ApiKeyStore,
    ctx: Context | undefined,
    target: { idOrSelector: unknown } | { ids: string[] },
  ): Promise<{ records: ApiKeyRecord[]; acting: ApiKeyRecord | undefined }> {
    const acting = await this.actingKey(store, ctx);
    const records = "ids" in target ? await lockByIds(store, target.ids) : await this.#lockTargets(store, target.idOrSelector);
    if (acting) checkTargets(acting, records);
    return { records, acting };
  }

  /** Resolves an id or a selector to locked rows inside the caller's transaction. */
  async #lockTargets(store: ApiKeyStore, idOrSelector: unknown): Promise<ApiKeyRecord[]> {
    if (typeof idOrSelector === "string") {
      const id = validateId(idOrSelector);
      const rows = await store.find(byId(id), ALL_ROWS, { forUpdate: true });
      if (rows.length === 0) throw new ApiKeyError("not_found", `ApiKey with id "${id}" not found`);
      return rows;
    }
    if (!isPlainObject(idOrSelector)) {
      throw new ApiKeyError("invalid_data", "Expected an api key id or a selector object");
    }
    // Judged by meaning, not form: `{ $or: [{}] }` or `{ id: { $nin: [] } }` is as empty as `{}`.
    const condition = foldCondition(normalizeFilters(idOrSelector, this.#parts.mapToken), { liveOnly: !ALL_ROWS.withDeleted });
    if (condition === true) {
      throw new ApiKeyError(
        "invalid_data",
        "The selector would match every key: an empty selector, or one whose conditions always hold (such as { id: { $nin: [] } }), cannot update or revoke keys",
      );
    }
    return condition === false ? [] : store.find(condition, ALL_ROWS, { forUpdate: true });
  }
}

/** Locks the rows of these ids, soft-deleted ones too; unknown ids are skipped. */
function lockByIds(store: ApiKeyStore, ids: string[]): Promise<ApiKeyRecord[]> {
  const condition: Condition = { kind: "in", field: "id", values: ids, negated: false };
  return store.find(condition, { ...ALL_ROWS, withDeleted: true }, { forUpdate: true });
}

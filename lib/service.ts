// The management service: the reference's methods and DTOs, validated up front, atomic where
// it matters, and with no secret material in anything it returns after creation.
import { ApiKeyError, redactError, unknownError } from "./errors";
import { ApiKeyEventBus, type ApiKeyEventListener, type ApiKeyEventName, type EventBatch } from "./events";
import { POLICY_FIELDS, policyDefaults } from "./columns";
import { type Condition, type NormalizedFindConfig, foldCondition, isPlainObject, normalizeFilters, normalizeFindConfig } from "./filters";
import { generateApiKeyId } from "./ids";
import { CURRENT_TOKEN_FORMAT, type TokenRules, generateToken, hashToken, parseToken, redactToken, sameSecret, storedTokenValue } from "./tokens";
import { TokenGate, legacyKeysRemain, loadTokenRules } from "./token-gate";
import type {
  ApiKeyDTO,
  ApiKeyField,
  ApiKeyType,
  Context,
  CreateApiKeyDTO,
  FilterableApiKeyProps,
  FindConfig,
  RevokeApiKeyDTO,
  SoftDeleteResult,
  UpdateApiKeyDTO,
  UpdateLinksDTO,
  VerifyOptions,
  VerifyResult,
} from "./types";
import { missingScopes } from "./scopes";
import { checkGrant, checkSelfUpdate, checkTargets } from "./delegation";
import {
  validateCreate,
  validateId,
  validateList,
  validateLinks,
  validateRequiredScopes,
  validateRevoke,
  validateUpdate,
} from "./validate-input";
import type { ApiKeyRecord, ApiKeyStore, PublishableRecord, WriteProbe } from "./store";
import { LastUsedRecorder } from "./last-used";
import { readOnlyKey } from "./read-only";
import { type RateLimitCounter, UsageLimits } from "./usage-limits";
import type { Logger } from "./logger";
import type { CacheEntry, FoundEntry, KeyLookupCache } from "./key-lookup-cache";

export interface ServiceConfig {
  /** Server-side secret for HMAC-SHA-256 token hashes; plain SHA-256 without it. */
  pepper?: string | Buffer;
  /** The clock every expiry and revocation decision reads. */
  now: () => Date;
  /** How often pending last_used_at writes are flushed, in milliseconds. */
  lastUsedFlushInterval: number;
  /** Where background failures (such as a failed last_used_at flush) are reported. */
  logger: Logger;
  /** Counts uses against keys' rate limits: across instances in Redis, or in this process. */
  rateLimits: RateLimitCounter;
  /** The token rules, when read already (see lib/token-gate.ts); the service reads them itself otherwise. */
  tokenRules?: TokenRules;
}

/** What a valid publishable key gives a storefront request. */
export interface PublishableKeyMatch {
  api_key: ApiKeyDTO;
  sales_channel_ids: string[];
}

const ALL_ROWS: NormalizedFindConfig = { order: [["id", "asc"]], withDeleted: false };
const MATCH_ALL: Condition = { kind: "and", items: [] };

function byId(id: string): Condition {
  return { kind: "compare", field: "id", op: "=", value: id };
}

/** A key authenticates while `revoked_at` is unset or still in the future. */
export function isActive(record: Pick<ApiKeyRecord, "revoked_at">, now: Date): boolean {
  return record.revoked_at === null || record.revoked_at.getTime() > now.getTime();
}

/** A key has expired once `expires_at` is reached: expiry works exactly as a scheduled revocation. */
export function isExpired(record: Pick<ApiKeyRecord, "expires_at">, now: Date): boolean {
  return record.expires_at !== null && record.expires_at.getTime() <= now.getTime();
}

/**
 * Why a found key does not authenticate at `now`, or undefined when it does: revoked or
 * expired, whichever took effect first (revoked when both at once).
 */
function endedBy(record: Pick<ApiKeyRecord, "revoked_at" | "expires_at">, now: Date): "revoked" | "expired" | undefined {
  const revoked = !isActive(record, now);
  const expired = isExpired(record, now);
  if (revoked && expired) return record.expires_at!.getTime() < record.revoked_at!.getTime() ? "expired" : "revoked";
  return revoked ? "revoked" : expired ? "expired" : undefined;
}

/** Whether a change to this key may have left no format-1 key: it was one (revoked, deleted or rolled). */
function endsLegacy(record: ApiKeyRecord): boolean {
  return record.token_format === 1;
}

const NOT_FOUND: VerifyResult = Object.freeze({ valid: false, code: "not_found" });

/** What `authenticate` answers for a verification. */
function keyOf(result: VerifyResult): ApiKeyDTO | false {
  return result.valid ? result.api_key! : false;
}

/** The default units a valid verification consumes. */
const DEFAULT_COST = 1;

/** Verification options once checked; `checkVerifyOptions` makes them. */
export interface CheckedVerifyOptions {
  readonly type?: ApiKeyType;
  readonly scopes: readonly string[];
  readonly cost: number;
}

/**
 * The verification that answers at once when it can: with a fresh entry in the memory tier and
 * no usage to count outside this process, the result itself, in the same tick; otherwise a
 * promise of it. For callers that gain from a synchronous answer (the middleware calls `next()`
 * in the same tick); `verifyApiKey` is the public form. Takes options `checkVerifyOptions` made.
 */
export const verifyNow = Symbol("express-api-keys.verifyNow");

const SECRET_ONLY: CheckedVerifyOptions = Object.freeze({ type: "secret", scopes: Object.freeze([]), cost: DEFAULT_COST });
const PUBLISHABLE_ONLY: CheckedVerifyOptions = Object.freeze({ type: "publishable", scopes: Object.freeze([]), cost: DEFAULT_COST });

/** Checks verification options as `verifyApiKey` does, throwing an `invalid_data` error for bad ones. */
export function checkVerifyOptions(options: unknown): CheckedVerifyOptions {
  if (options === undefined) return { scopes: [], cost: DEFAULT_COST };
  if (!isPlainObject(options)) throw new ApiKeyError("invalid_data", "Expected an object for the verification options");
  const { type, scopes, cost, ...rest } = options;
  const unknown = Object.keys(rest).filter((key) => rest[key] !== undefined);
  if (unknown.length > 0) throw new ApiKeyError("invalid_data", `Unrecognized verification options: ${unknown.map((key) => `'${key}'`).join(", ")}`);
  if (type !== undefined && type !== "secret" && type !== "publishable") {
    throw new ApiKeyError("invalid_data", "Expected: 'publishable, secret' for option 'type'");
  }
  if (cost !== undefined && (typeof cost !== "number" || !Number.isSafeInteger(cost) || cost < 0)) {
    throw new ApiKeyError("invalid_data", "Expected a non-negative whole number for option 'cost'");
  }
  return { type, scopes: scopes === undefined ? [] : validateRequiredScopes(scopes), cost: cost ?? DEFAULT_COST };
}

/** The DTO for a record: secret keys show `token: ""` unless the plaintext is being handed out once. */
function toDTO(record: ApiKeyRecord, plaintext?: string): ApiKeyDTO {
  return { ...record, token: plaintext ?? (record.type === "secret" ? "" : record.token) };
}

function project(dto: ApiKeyDTO, select: ApiKeyField[] | undefined): ApiKeyDTO {
  if (!select) return dto;
  const picked: Partial<ApiKeyDTO> = { id: dto.id };
  for (const field of select) Object.assign(picked, { [field]: dto[field] });
  return picked as ApiKeyDTO;
}

function alreadyRevokedMessage(records: ApiKeyRecord[]): string {
  const types = new Set(records.map((record) => record.type));
  const kind = types.size === 1 ? `${[...types][0]} ` : "";
  return `There are ${records.length} ${kind}keys that are already revoked.`;
}

function linkLabel(resourceType: string): string {
  return resourceType === "sales_channel" ? "Sales channels" : `Resources of type '${resourceType}'`;
}

export class ApiKeyService {
  readonly #store: ApiKeyStore;
  readonly #config: ServiceConfig;
  readonly #onClose: () => Promise<void>;
  readonly #lastUsed: LastUsedRecorder;
  readonly #cache: KeyLookupCache;
  readonly #events: ApiKeyEventBus;
  readonly #usage: UsageLimits;
  readonly #tokens: TokenGate;
  /** Read-only copies of cached keys, by the cached key they copy; they go when it goes. */
  readonly #readOnlyKeys = new WeakMap<ApiKeyDTO, ApiKeyDTO>();
  #closing: Promise<void> | undefined;

  constructor(store: ApiKeyStore, cache: KeyLookupCache, config: ServiceConfig, onClose: () => Promise<void> = async () => {}) {
    this.#store = store;
    this.#cache = cache;
    this.#config = config;
    this.#onClose = onClose;
    this.#lastUsed = new LastUsedRecorder(store, config.lastUsedFlushInterval, config.logger);
    this.#events = new ApiKeyEventBus(config.logger);
    this.#usage = new UsageLimits({ store, rateLimits: config.rateLimits, now: config.now, emit: (event) => this.#events.emit([event]) });
    this.#tokens = new TokenGate({
      rules: config.tokenRules,
      load: () => this.#run(undefined, (store) => loadTokenRules(store, config.pepper, config.now())),
      legacyRemain: () => this.#run(undefined, (store) => legacyKeysRemain(store, config.now())),
      logger: config.logger,
      now: config.now,
    });
  }

  /** Where the service reports failures no caller can act on; the middleware and admin router report their unexpected errors here too. */
  get logger(): Logger {
    return this.#config.logger;
  }

  /** The service's clock (the `now` option): what the dashboard times its sessions by, so they agree with revocations and expiry. */
  now(): Date {
    return this.#config.now();
  }

  /** Subscribes to an event; see ApiKeyEvents for the payloads. */
  on<E extends ApiKeyEventName>(name: E, listener: ApiKeyEventListener<E>): this {
    this.#events.on(name, listener);
    return this;
  }

  off<E extends ApiKeyEventName>(name: E, listener: ApiKeyEventListener<E>): this {
    this.#events.off(name, listener);
    return this;
  }

  /** The cache name of a key: the hash of its token (a secret key's `token` column already is). */
  #cacheKeyOf(record: ApiKeyRecord): string {
    return record.type === "secret" ? record.token : hashToken(record.token, this.#config.pepper);
  }

  /**
   * Runs what follows a committed change: cache invalidation, then events. Inside an app's
   * transaction the outcome is known only when it ends: the keys are invalidated again then
   * (fills until then could read the old rows), and the events are sent only if the store says
   * the change was committed.
   */
  async #committed(records: ApiKeyRecord[], events: EventBatch[], ctx: Context | undefined, probe: WriteProbe | undefined): Promise<void> {
    const cacheKeys = records.map((record) => this.#cacheKeyOf(record));
    await this.#cache.invalidate(cacheKeys);
    const transaction = ctx?.transaction;
    if (transaction === undefined) {
      if (records.some(endsLegacy)) await this.#tokens.recheck();
      this.#events.emit(events);
      return;
    }
    if (!this.#store.settled) return;
    this.#store
      .settled(transaction)
      .then(async () => {
        await this.#cache.invalidate(cacheKeys);
        if (records.some(endsLegacy)) await this.#tokens.recheck();
        if (probe && events.length > 0 && (await this.#persisted(probe))) this.#events.emit(events);
      })
      .catch((error: unknown) => {
        this.#config.logger.error("express-api-keys: could not confirm a change made in an app transaction", error);
      });
  }

  /**
   * Whether a write made in an app's transaction was committed. Some transaction APIs (Knex's
   * among them) report a rollback as success, so the store is asked: everything one call wrote
   * commits or rolls back together, so one row tells.
   */
  async #persisted(probe: WriteProbe): Promise<boolean> {
    const [row] = await this.#store.find(byId(probe.id), { ...ALL_ROWS, withDeleted: true });
    return probe.updatedAt === null ? row === undefined : row?.updated_at.getTime() === probe.updatedAt.getTime();
  }

  /** Finds a token's key through the cache tiers; the store is asked only on a miss. */
  async #lookup(token: string, type: ApiKeyType, hash: string): Promise<CacheEntry> {
    return this.#cache.lookup(hash, () =>
      this.#run(undefined, async (store): Promise<CacheEntry> => {
        if (type === "secret") {
          const record = await store.findByToken(hash, "secret");
          return record && sameSecret(record.token, hash) ? { found: true, api_key: toDTO(record), sales_channel_ids: [] } : { found: false };
        }
        const found = store.findPublishable
          ? await store.findPublishable(token)
          : await this.#publishableInTwoSteps(store, token);
        if (!found) return { found: false };
        const { sales_channel_ids, ...record } = found;
        return { found: true, api_key: toDTO(record), sales_channel_ids };
      }),
    );
  }

  /** For stores without `findPublishable`: the key, then its sales channels. */
  async #publishableInTwoSteps(store: ApiKeyStore, token: string): Promise<PublishableRecord | undefined> {
    const record = await store.findByToken(token, "publishable");
    return record && { ...record, sales_channel_ids: await store.linkedIds(record.id, "sales_channel") };
  }

  /** The store, bound to the app's transaction when the call was given one. */
  #storeFor(ctx: Context | undefined): ApiKeyStore {
    if (ctx?.transaction === undefined) return this.#store;
    if (!this.#store.within) throw new ApiKeyError("invalid_data", "This store does not take an app transaction in `{ transaction }`");
    return this.#store.within(ctx.transaction);
  }

  /** Runs store work at the one boundary where store failures become typed errors. */
  async #run<T>(ctx: Context | undefined, work: (store: ApiKeyStore) => Promise<T>, transactional = false): Promise<T> {
    const store = this.#storeFor(ctx);
    try {
      return await (transactional ? store.transaction(work) : work(store));
    } catch (error) {
      if (error instanceof ApiKeyError) throw error;
      const translated = this.#store.translateError?.(error) ?? unknownError(error);
      // Logged here, once: the caller only ever sees the generic message.
      if (translated.type === "unknown_error") {
        this.#config.logger.error("express-api-keys: unexpected error from the key store", redactError(error));
      }
      throw translated;
    }
  }

  #mapToken = (token: string): string => {
    const type = parseToken(token);
    return type ? storedTokenValue(token, type, this.#config.pepper) : token;
  };

  /**
   * A new key from a validated create input (or, for roll, the key it replaces): its token
   * tagged under `tagKey`, or in format 1 when the deployment has no tag key.
   */
  #newKey(input: CreateApiKeyDTO | ApiKeyRecord, now: Date, tagKey: Buffer | undefined): { record: ApiKeyRecord; token: string } {
    const token = generateToken(input.type, tagKey);
    const policy = policyDefaults();
    for (const field of POLICY_FIELDS) {
      const value = input[field as keyof typeof input];
      if (value !== undefined) Object.assign(policy, { [field]: structuredClone(value) });
    }
    const record: ApiKeyRecord = {
      id: generateApiKeyId(now.getTime()),
      token: storedTokenValue(token, input.type, this.#config.pepper),
      redacted: redactToken(token),
      title: input.title,
      type: input.type,
      last_used_at: null,
      created_by: input.created_by,
      created_at: now,
      updated_at: now,
      deleted_at: null,
      revoked_by: null,
      revoked_at: null,
      ...policy,
      token_format: tagKey === undefined ? 1 : CURRENT_TOKEN_FORMAT,
    };
    return { record, token };
  }

  /** The instant a revocation takes effect: now, or `revoke_in` whole seconds from now. */
  #revocationTime(now: Date, revokeIn: number | undefined): Date {
    const seconds = revokeIn !== undefined && revokeIn > 0 ? Math.trunc(revokeIn) : 0;
    const at = new Date(now.getTime() + seconds * 1000);
    if (Number.isNaN(at.getTime())) throw new ApiKeyError("invalid_data", "Field 'revoke_in' is too large");
    return at;
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
    const condition = foldCondition(normalizeFilters(idOrSelector, this.#mapToken), { liveOnly: !ALL_ROWS.withDeleted });
    if (condition === true) {
      throw new ApiKeyError(
        "invalid_data",
        "The selector would match every key: an empty selector, or one whose conditions always hold (such as { id: { $nin: [] } }), cannot update or revoke keys",
      );
    }
    return condition === false ? [] : store.find(condition, ALL_ROWS, { forUpdate: true });
  }

  /**
   * The key a call acts for (`ctx.actingKey`), as it stands now, read in the call's own
   * transaction; undefined when the call acts for nobody in particular. A key that no longer
   * authenticates acts for nobody: the call is refused.
   */
  async #actingKey(store: ApiKeyStore, ctx: Context | undefined): Promise<ApiKeyRecord | undefined> {
    const id: unknown = ctx?.actingKey;
    if (id === undefined) return undefined;
    if (typeof id !== "string") throw new ApiKeyError("invalid_data", "Expected an api key id for 'actingKey'");
    validateId(id);
    const [record] = await store.find(byId(id), { ...ALL_ROWS, withDeleted: true });
    if (!record || record.deleted_at !== null || endedBy(record, this.#config.now()) !== undefined) {
      throw new ApiKeyError("unauthorized", `The acting key ${id} is no longer valid: it is revoked, expired or deleted`);
    }
    return record;
  }

  /** Locks the targets of a change and refuses it unless the acting key, if any, may manage every one of them. */
  async #lockManageable(store: ApiKeyStore, ctx: Context | undefined, idOrSelector: unknown): Promise<{ records: ApiKeyRecord[]; acting: ApiKeyRecord | undefined }> {
    const acting = await this.#actingKey(store, ctx);
    const records = await this.#lockTargets(store, idOrSelector);
    if (acting) checkTargets(acting, records);
    return { records, acting };
  }

  createApiKeys(data: CreateApiKeyDTO, ctx?: Context): Promise<ApiKeyDTO>;
  createApiKeys(data: CreateApiKeyDTO[], ctx?: Context): Promise<ApiKeyDTO[]>;
  async createApiKeys(data: CreateApiKeyDTO | CreateApiKeyDTO[], ctx?: Context): Promise<ApiKeyDTO | ApiKeyDTO[]> {
    const now = this.#config.now();
    const inputs = validateList(Array.isArray(data) ? data : [data], "keys", (item) => validateCreate(item, now));
    const tagKey = await this.#tokens.tagKey();
    const created = inputs.map((input) => this.#newKey(input, now, tagKey));
    await this.#run(
      ctx,
      async (store) => {
        const acting = await this.#actingKey(store, ctx);
        if (acting) for (const input of inputs) checkGrant(acting, input.type, input.scopes);
        await store.insert(created.map(({ record }) => record));
      },
      ctx?.actingKey !== undefined,
    );
    const events = created.map(({ record: { id, type, title, created_by } }): EventBatch => ({
      name: "api_key.created",
      payload: { id, type, title, created_by },
    }));
    const first = created[0]?.record;
    await this.#committed([], events, ctx, first && { id: first.id, updatedAt: first.updated_at });
    const dtos = created.map(({ record, token }) => toDTO(record, token));
    return Array.isArray(data) ? dtos : dtos[0]!;
  }

  async retrieveApiKey(id: string, config?: FindConfig, ctx?: Context): Promise<ApiKeyDTO> {
    if (id === undefined || id === null || id === "") {
      throw new ApiKeyError("not_found", "apiKey - id must be defined");
    }
    validateId(id);
    const { select, withDeleted } = normalizeFindConfig(config);
    const [record] = await this.#run(ctx, (store) => store.find(byId(id), { ...ALL_ROWS, withDeleted }));
    if (!record) throw new ApiKeyError("not_found", `ApiKey with id: ${id} was not found`);
    return project(toDTO(record), select);
  }

  /** A filter's condition with its constant parts folded away; `false` when no key in scope can match. */
  #folded(condition: Condition, find: NormalizedFindConfig): Condition | false {
    const folded = foldCondition(condition, { liveOnly: !find.withDeleted });
    return folded === true ? MATCH_ALL : folded;
  }

  async listApiKeys(filters?: FilterableApiKeyProps, config?: FindConfig, ctx?: Context): Promise<ApiKeyDTO[]> {
    const normalized = normalizeFilters(filters, this.#mapToken);
    const find = normalizeFindConfig(config);
    const condition = this.#folded(normalized, find);
    if (condition === false) return [];
    const records = await this.#run(ctx, (store) => store.find(condition, find));
    return records.map((record) => project(toDTO(record), find.select));
  }

  async listAndCountApiKeys(
    filters?: FilterableApiKeyProps,
    config?: FindConfig,
    ctx?: Context,
  ): Promise<[ApiKeyDTO[], number]> {
    const normalized = normalizeFilters(filters, this.#mapToken);
    const find = normalizeFindConfig(config);
    const condition = this.#folded(normalized, find);
    if (condition === false) return [[], 0];
    const [records, count] = await this.#run(ctx, async (store) => [
      await store.find(condition, find),
      await store.count(condition, find.withDeleted),
    ] as const);
    return [records.map((record) => project(toDTO(record), find.select)), count];
  }

  updateApiKeys(id: string, data: UpdateApiKeyDTO, ctx?: Context): Promise<ApiKeyDTO>;
  updateApiKeys(selector: FilterableApiKeyProps, data: UpdateApiKeyDTO, ctx?: Context): Promise<ApiKeyDTO[]>;
  async updateApiKeys(
    idOrSelector: string | FilterableApiKeyProps,
    data: UpdateApiKeyDTO,
    ctx?: Context,
  ): Promise<ApiKeyDTO | ApiKeyDTO[]> {
    const patch = validateUpdate(data, this.#config.now());
    const changed = Object.keys(patch) as (keyof UpdateApiKeyDTO)[];
    const updated = await this.#run(
      ctx,
      async (store) => {
        const { records, acting } = await this.#lockManageable(store, ctx, idOrSelector);
        if (patch.scopes !== undefined && patch.scopes.length > 0) {
          const publishable = records.find((record) => record.type === "publishable");
          if (publishable) throw new ApiKeyError("invalid_data", `Field 'scopes' is only allowed on secret keys; ${publishable.id} is publishable`);
        }
        if (acting) {
          if (patch.scopes !== undefined) for (const record of records) checkGrant(acting, record.type, patch.scopes);
          const self = records.find((record) => record.id === acting.id);
          if (self) checkSelfUpdate(self, patch as UpdateApiKeyDTO & { expires_at?: Date | null });
        }
        const now = this.#config.now();
        const write = { ...patch, updated_at: now } as Partial<ApiKeyRecord>;
        await store.update(
          records.map((record) => record.id),
          write,
        );
        return records.map((record): ApiKeyRecord => ({ ...record, ...structuredClone(write) }));
      },
      true,
    );
    const events = updated.map(({ id }): EventBatch => ({ name: "api_key.updated", payload: { id, changed: [...changed] } }));
    await this.#committed(updated, events, ctx, updated[0] && { id: updated[0].id, updatedAt: updated[0].updated_at });
    const dtos = updated.map((record) => toDTO(record));
    return typeof idOrSelector === "string" ? dtos[0]! : dtos;
  }

  revoke(id: string, data: RevokeApiKeyDTO, ctx?: Context): Promise<ApiKeyDTO>;
  revoke(selector: FilterableApiKeyProps, data: RevokeApiKeyDTO, ctx?: Context): Promise<ApiKeyDTO[]>;
  async revoke(
    idOrSelector: string | FilterableApiKeyProps,
    data: RevokeApiKeyDTO,
    ctx?: Context,
  ): Promise<ApiKeyDTO | ApiKeyDTO[]> {
    const input = validateRevoke(data);
    const { revoked, changed } = await this.#run(
      ctx,
      async (store) => {
        const { records } = await this.#lockManageable(store, ctx, idOrSelector);
        if (records.length === 0) return { revoked: [], changed: new Set<string>() };
        if (!input.revoked_by) {
          throw new ApiKeyError("invalid_data", "You must provide a revoked_by field when revoking a key.");
        }
        const now = this.#config.now();
        const at = this.#revocationTime(now, input.revoke_in);
        const already = records.filter((record) => !isActive(record, now));
        if (already.length > 0) throw new ApiKeyError("invalid_data", alreadyRevokedMessage(already));
        // A scheduled revocation may be brought forward, never pushed back: a second call
        // cannot bring a key back to life.
        const changed = new Set(
          records.filter((record) => record.revoked_at === null || at < record.revoked_at).map((record) => record.id),
        );
        const patch = { revoked_at: at, revoked_by: input.revoked_by, updated_at: now };
        await store.update([...changed], patch);
        return { revoked: records.map((record) => (changed.has(record.id) ? { ...record, ...patch } : record)), changed };
      },
      true,
    );
    // A second revoke that left a key's earlier schedule in place changed nothing and reports nothing.
    const events = revoked
      .filter((record) => changed.has(record.id))
      .map(({ id, revoked_by, revoked_at }): EventBatch => ({
        name: "api_key.revoked",
        payload: { id, revoked_by: revoked_by!, revoked_at: revoked_at! },
      }));
    const probe = revoked.find((record) => changed.has(record.id));
    await this.#committed(revoked, events, ctx, probe && { id: probe.id, updatedAt: probe.updated_at });
    const dtos = revoked.map((record) => toDTO(record));
    return typeof idOrSelector === "string" ? dtos[0]! : dtos;
  }

  /** Deletes revoked keys for good, with their links. Unknown ids are skipped. */
  async deleteApiKeys(ids: string | string[], ctx?: Context): Promise<void> {
    const list = [...new Set(validateList(Array.isArray(ids) ? ids : [ids], "ids", validateId))];
    if (list.length === 0) return;
    const deleted = await this.#run(
      ctx,
      async (store) => {
        const condition: Condition = { kind: "in", field: "id", values: list, negated: false };
        const acting = await this.#actingKey(store, ctx);
        const records = await store.find(condition, { ...ALL_ROWS, withDeleted: true }, { forUpdate: true });
        if (acting) checkTargets(acting, records);
        const now = this.#config.now();
        // An expired key counts as revoked at its expiry.
        const live = records.filter((record) => endedBy(record, now) === undefined);
        if (live.length > 0) {
          const names = live.map((record) => record.id).join(", ");
          throw new ApiKeyError("not_allowed", `Cannot delete api keys that are not revoked - ${names}`);
        }
        await store.delete(records.map((record) => record.id));
        return records;
      },
      true,
    );
    await this.#committed(
      deleted,
      deleted.map(({ id }): EventBatch => ({ name: "api_key.deleted", payload: { id } })),
      ctx,
      deleted[0] && { id: deleted[0].id, updatedAt: null },
    );
  }

  /**
   * Verifies a token: the one path every authentication takes. Answers with a `code` rather
   * than throwing, whatever string it is given; only a store failure is an error (`unavailable`,
   * or `unknown_error` for a bug). Malformed, forged and foreign tokens (format, checksum, tag)
   * are rejected without touching a cache or the store.
   * Revocation and expiry are checked on every call, cached or not, so a scheduled one takes
   * effect at its instant. A valid verification is recorded as the key's last use (written
   * later in a batch) and pays `cost` from its rate limits and quota; a refused one pays nothing.
   */
  async verifyApiKey(token: string, options?: VerifyOptions): Promise<VerifyResult> {
    return this[verifyNow](token, checkVerifyOptions(options));
  }

  [verifyNow](token: string, options: CheckedVerifyOptions): VerifyResult | Promise<VerifyResult> {
    const { type, scopes, cost } = options;
    // The public format and checksum first: no hash is paid for a typo.
    const parsed = parseToken(token);
    if (!parsed || (type !== undefined && parsed !== type)) return { ...NOT_FOUND };
    const hash = hashToken(token, this.#config.pepper);
    const now = this.#config.now();
    // A fresh in-process entry for this very token was made after the token passed the gate
    // below (nothing else writes the memory tier), so a hit needs no second tag check; reading
    // it costs no I/O and writes nothing, so a forged token gains nothing from it.
    const cached = this.#cache.peek(hash, now);
    if (cached) return this.#answer(cached, parsed, scopes, cost, now);
    // Tag and the format-1 rule before the Redis tier, the negative tier or the store.
    const accepted = this.#tokens.accept(token);
    if (accepted instanceof Promise) return accepted.then((ok) => (ok ? this.#lookUpAndAnswer(token, parsed, hash, scopes, cost) : { ...NOT_FOUND }));
    return accepted ? this.#lookUpAndAnswer(token, parsed, hash, scopes, cost) : { ...NOT_FOUND };
  }

  #lookUpAndAnswer(token: string, parsed: ApiKeyType, hash: string, scopes: readonly string[], cost: number): Promise<VerifyResult> {
    // Judged when the answer arrives, by the clock then.
    return this.#lookup(token, parsed, hash).then((entry) => this.#answer(entry, parsed, scopes, cost, this.#config.now()));
  }

  /**
   * The verdict on a looked-up key: at once, unless its use must be counted outside this
   * process (a quota, a rate limit whose local lease cannot pay).
   */
  #answer(entry: CacheEntry, parsed: ApiKeyType, scopes: readonly string[], cost: number, now: Date): VerifyResult | Promise<VerifyResult> {
    if (!entry.found || entry.api_key.type !== parsed || entry.api_key.deleted_at !== null) return { ...NOT_FOUND };
    // Decided on the entry itself, which no caller ever holds: they get the read-only copy.
    const ended = endedBy(entry.api_key, now);
    if (ended) return { valid: false, code: ended, api_key: this.#readOnly(entry) };
    // Most routes require no scope: no arrays and no Set made for them.
    if (scopes.length > 0) {
      const missing = missingScopes(entry.api_key.scopes, scopes);
      if (missing.length > 0) return { valid: false, code: "forbidden", api_key: this.#readOnly(entry), missing_scopes: missing };
    }
    if (cost === 0) return this.#valid(entry, parsed, now, {});
    const local = this.#usage.consumeLocal(entry.api_key, cost);
    if (local) return this.#valid(entry, parsed, now, local.rate_limit ? { rate_limit: local.rate_limit } : {});
    return this.#consume(entry, cost).then(({ refused, ...counts }) => {
      let api_key = this.#readOnly(entry);
      // The cached key's quota is as last read; the store's answer is the truth.
      if (counts.remaining !== undefined) api_key = Object.freeze({ ...api_key, remaining: counts.remaining });
      if (refused) return { valid: false, code: refused, api_key, ...counts };
      return this.#valid(entry, parsed, now, counts, api_key);
    });
  }

  #valid(
    entry: FoundEntry,
    parsed: ApiKeyType,
    now: Date,
    counts: Pick<VerifyResult, "rate_limit" | "remaining">,
    api_key = this.#readOnly(entry),
  ): VerifyResult {
    this.#lastUsed.record(api_key.id, now);
    const result: VerifyResult = { valid: true, code: "valid", api_key, ...counts };
    if (parsed === "publishable") result.sales_channel_ids = [...entry.sales_channel_ids];
    return result;
  }

  /** The read-only copy of an entry's key, made once per cached entry. */
  #readOnly(entry: FoundEntry): ApiKeyDTO {
    let copy = this.#readOnlyKeys.get(entry.api_key);
    if (!copy) {
      copy = readOnlyKey(entry.api_key);
      this.#readOnlyKeys.set(entry.api_key, copy);
    }
    return copy;
  }

  /**
   * Where a valid verification pays `cost` from the key's rate limits (rate-limiter-flexible,
   * shared through Redis) and then its `remaining` quota (one atomic write in the store), so
   * that the quota is exact across instances. Answers the counts for the response headers, and
   * with `refused` the code to answer instead; a refused use pays nothing.
   */
  async #consume(entry: FoundEntry, cost: number): Promise<Pick<VerifyResult, "rate_limit" | "remaining"> & { refused?: "rate_limited" | "usage_exceeded" }> {
    if (cost === 0) return {};
    const decision = await this.#run(undefined, () => this.#usage.consume(entry.api_key, cost));
    const counts: Pick<VerifyResult, "rate_limit" | "remaining"> = {};
    if (decision.rate_limit) counts.rate_limit = decision.rate_limit;
    if (decision.remaining !== undefined) counts.remaining = decision.remaining;
    return decision.admitted ? counts : { ...counts, refused: decision.code };
  }

  /**
   * The key for a valid secret token, or `false`: `verifyApiKey(token, { type: "secret" })`
   * reduced to the key. A store failure is an `unavailable` error, not a `false`.
   */
  authenticate(token: string): Promise<ApiKeyDTO | false> {
    // Not an async function: a warm answer resolves in one hop, not in two.
    try {
      const answer = this[verifyNow](token, SECRET_ONLY);
      return answer instanceof Promise ? answer.then(keyOf) : Promise.resolve(keyOf(answer));
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
  }

  /** The key and sales channel ids for a valid publishable token, or `false`; as `authenticate`. */
  async authenticatePublishable(token: string): Promise<PublishableKeyMatch | false> {
    const result = await this[verifyNow](token, PUBLISHABLE_ONLY);
    return result.valid ? { api_key: result.api_key!, sales_channel_ids: result.sales_channel_ids ?? [] } : false;
  }

  /**
   * Hides keys from reads and authentication, as the reference's soft delete: live keys too
   * (no revoked-first guard). Unknown and already soft-deleted ids are skipped. Answers the ids
   * affected, in the order given.
   */
  async softDeleteApiKeys(ids: string | string[], ctx?: Context): Promise<SoftDeleteResult> {
    return this.#setDeleted(ids, true, ctx);
  }

  /** Brings soft-deleted keys back; a restored key authenticates again unless revoked or expired meanwhile. */
  async restoreApiKeys(ids: string | string[], ctx?: Context): Promise<SoftDeleteResult> {
    return this.#setDeleted(ids, false, ctx);
  }

  async #setDeleted(ids: string | string[], deleted: boolean, ctx: Context | undefined): Promise<SoftDeleteResult> {
    const list = [...new Set(validateList(Array.isArray(ids) ? ids : [ids], "ids", validateId))];
    if (list.length === 0) return { api_key_id: [] };
    const changed = await this.#run(
      ctx,
      async (store) => {
        const condition: Condition = { kind: "in", field: "id", values: list, negated: false };
        const acting = await this.#actingKey(store, ctx);
        const records = await store.find(condition, { ...ALL_ROWS, withDeleted: true }, { forUpdate: true });
        if (acting) checkTargets(acting, records);
        const targets = records.filter((record) => (record.deleted_at === null) === deleted);
        const now = this.#config.now();
        const patch = { deleted_at: deleted ? now : null, updated_at: now };
        await store.update(targets.map((record) => record.id), patch);
        return targets.map((record) => ({ ...record, ...patch }));
      },
      true,
    );
    const events = changed.map((record): EventBatch =>
      deleted ? { name: "api_key.soft_deleted", payload: { id: record.id, deleted_at: record.deleted_at! } } : { name: "api_key.restored", payload: { id: record.id } },
    );
    await this.#committed(changed, events, ctx, changed[0] && { id: changed[0].id, updatedAt: changed[0].updated_at });
    const affected = new Set(changed.map((record) => record.id));
    return { api_key_id: list.filter((id) => affected.has(id)) };
  }

  /**
   * Replaces a key in one transaction: the old key is revoked (now, or after `revoke_in`
   * seconds) and a new key with the same title, type, creator, policy (expiry, scopes, owner,
   * metadata, rate limits, quota) and links is returned with its plaintext token. A key already
   * revoked, scheduled for revocation or expired cannot be rolled, so every key has at most one
   * successor and no successor is born expired.
   */
  async roll(id: string, data: RevokeApiKeyDTO, ctx?: Context): Promise<ApiKeyDTO> {
    validateId(id);
    const input = validateRevoke(data);
    if (!input.revoked_by) {
      throw new ApiKeyError("invalid_data", "You must provide a revoked_by field when revoking a key.");
    }
    const tagKey = await this.#tokens.tagKey();
    const { old, successor, token } = await this.#run(
      ctx,
      async (store) => {
        const {
          records: [old],
        } = await this.#lockManageable(store, ctx, id);
        if (old!.revoked_at !== null) {
          throw new ApiKeyError(
            "not_allowed",
            `ApiKey with id "${id}" is already revoked or scheduled for revocation and cannot be rolled`,
          );
        }
        const now = this.#config.now();
        if (isExpired(old!, now)) {
          throw new ApiKeyError("not_allowed", `ApiKey with id "${id}" has expired and cannot be rolled`);
        }
        const at = this.#revocationTime(now, input.revoke_in);
        await store.update([old!.id], { revoked_at: at, revoked_by: input.revoked_by, updated_at: now });
        const { record, token } = this.#newKey(old!, now, tagKey);
        await store.insert([record]);
        await store.copyLinks(old!.id, record.id);
        return { old: { ...old!, revoked_at: at, updated_at: now }, successor: record, token };
      },
      true,
    );
    const event: EventBatch = {
      name: "api_key.rolled",
      payload: { id: old.id, successor_id: successor.id, revoked_by: input.revoked_by, revoked_at: old.revoked_at },
    };
    await this.#committed([old], [event], ctx, { id: old.id, updatedAt: old.updated_at });
    return toDTO(successor, token);
  }

  /** Adds and removes links from a publishable key to resources (sales channels by default). */
  async updateLinks(id: string, data: UpdateLinksDTO, ctx?: Context): Promise<string[]> {
    validateId(id);
    const change = validateLinks(data);
    const { record, linked } = await this.#run(
      ctx,
      async (store) => {
        const {
          records: [record],
        } = await this.#lockManageable(store, ctx, id);
        if (record!.type !== "publishable") {
          throw new ApiKeyError(
            "invalid_data",
            `${linkLabel(change.resource_type)} can only be associated with publishable API keys`,
          );
        }
        await store.removeLinks(id, change.resource_type, change.remove);
        await store.addLinks(id, change.resource_type, change.add);
        const now = this.#config.now();
        await store.update([id], { updated_at: now });
        return { record: { ...record!, updated_at: now }, linked: await store.linkedIds(id, change.resource_type) };
      },
      true,
    );
    const event: EventBatch = { name: "api_key.updated", payload: { id: record.id, changed: ["links"] } };
    await this.#committed([record], [event], ctx, { id: record.id, updatedAt: record.updated_at });
    return linked;
  }

  /** The resource ids (sales channels by default) a key is linked to. */
  async listLinks(id: string, resourceType = "sales_channel", ctx?: Context): Promise<string[]> {
    validateId(id);
    return this.#run(ctx, async (store) => {
      const [record] = await store.find(byId(id), ALL_ROWS);
      if (!record) throw new ApiKeyError("not_found", `ApiKey with id "${id}" not found`);
      return store.linkedIds(id, resourceType);
    });
  }

  /**
   * Writes pending last_used_at values, then releases what `initialize()` opened (never an
   * app-owned Knex). Safe to call twice.
   */
  close(): Promise<void> {
    this.#closing ??= this.#tokens
      .close()
      .then(() => this.#lastUsed.close())
      .then(() => this.#cache.close())
      .then(this.#onClose);
    return this.#closing;
  }
}

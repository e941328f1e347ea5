// The management service: the reference's methods and DTOs, validated up front, atomic where
// it matters, and with no secret material in anything it returns after creation. It is a facade:
// verification is the KeyVerifier's (lib/key-verifier.ts), how a change reaches the store, the
// caches and the listeners is the ChangeUnit's (lib/change-unit.ts), and a new key's making is
// lib/new-key.ts's; the audit log's and the verification counts' queries are lib/audit-log.ts's
// and lib/usage-analytics.ts's, and here only as the public methods over them. Over 400 lines
// for one reason: one method per method of the reference, each its own transaction with its own
// rules, read best side by side.
import { type AuditEvent, type AuditEventConfig, type AuditEventFilters, type AuditQuery, changesBetween, normalizeAuditQuery } from "./audit-log";
import { ALL_ROWS, ChangeUnit, byId } from "./change-unit";
import { checkGrant, checkSelfUpdate } from "./delegation";
import { ApiKeyError } from "./errors";
import { ApiKeyEventBus, type ApiKeyEventListener, type ApiKeyEventName, type EventBatch } from "./events";
import { type Condition, type NormalizedFindConfig, foldCondition, normalizeFilters, normalizeFindConfig } from "./filters";
import type { KeyLookupCache } from "./key-lookup-cache";
import { endedBy, isActive, isExpired } from "./key-status";
import { CachedKeyVerifier, type CheckedVerifyOptions, type KeyVerifier, checkVerifyOptions, toDTO } from "./key-verifier";
import { ImportedFirstUse } from "./imported-keys";
import { LastUsedRecorder } from "./last-used";
import { type MedusaImportOptions, type MedusaImportReport, type MedusaKeySource, importMedusaKeys } from "./medusa-import";
import type { Logger } from "./logger";
import type { Metrics } from "./metrics";
import type { ReplicaReads } from "./replica-reads";
import { type ApiKeyRecord, type ApiKeyStore, type StoreCapabilities, capabilitiesOf } from "./store";
import { TokenGate, importedKeysLeft, legacyKeysRemain, loadTokenRules } from "./token-gate";
import { newKey, revocationTime } from "./new-key";
import { type TokenRules, parseToken, secretTokenPattern, storedTokenValue } from "./tokens";
import type {
  ApiKeyDTO,
  ApiKeyField,
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
import { type UsageFilters, UsageRecorder, type UsageRow, normalizeUsageQuery, usageRows } from "./usage-analytics";
import { type RateLimitCounter, UsageLimits } from "./usage-limits";
import { validateCreate, validateId, validateLinks, validateList, validateRevoke, validateUpdate } from "./validate-input";

export interface ServiceConfig {
  /** Server-side secret for HMAC-SHA-256 token hashes; plain SHA-256 without it. */
  pepper?: string | Buffer;
  /** Policy time: the clock every expiry and revocation decision reads. */
  now: () => Date;
  /** How often pending last_used_at writes are flushed, in milliseconds. */
  lastUsedFlushInterval: number;
  /** Where background failures (such as a failed last_used_at flush) are reported. */
  logger: Logger;
  /** Counts uses against keys' rate limits: across instances in Redis, or in this process. */
  rateLimits: RateLimitCounter;
  /** The token rules, when read already (see lib/token-gate.ts); the service reads them itself otherwise. */
  tokenRules?: TokenRules;
  /** A read replica for lookups that miss the caches and for list and retrieve calls; none by default. */
  replicaReads?: ReplicaReads;
  /** How long verification counts are kept, in milliseconds; without it, verifications are not counted. */
  usageRetentionMs?: number;
  /** Hears every verification, when the app turned metrics on. */
  metrics?: Metrics;
  /** The deployment's segment in new tokens (`sk_<segment>_...`); none by default. */
  tokenPrefix?: string;
  /** Opens a Medusa database (a Knex instance or a connection string) for `importMedusaKeys`. */
  openMedusaSource?: (database: unknown) => Promise<MedusaKeySource>;
}

/** How many imported Medusa keys could still authenticate, and how many secret ones await their first use. */
export interface ImportedKeysStatus {
  imported: number;
  awaiting_first_use: number;
}

/** What a valid publishable key gives a storefront request. */
export interface PublishableKeyMatch {
  api_key: ApiKeyDTO;
  sales_channel_ids: string[];
}

const MATCH_ALL: Condition = { kind: "and", items: [] };

/** A read found something: an empty answer from a read replica is asked of the primary again. */
const isNotEmpty = (records: readonly unknown[]): boolean => records.length > 0;

/** What `authenticate` answers for a verification. */
function keyOf(result: VerifyResult): ApiKeyDTO | false {
  return result.valid ? result.api_key! : false;
}

const SECRET_ONLY: CheckedVerifyOptions = Object.freeze({ type: "secret", scopes: Object.freeze([]), cost: 1 });
const PUBLISHABLE_ONLY: CheckedVerifyOptions = Object.freeze({ type: "publishable", scopes: Object.freeze([]), cost: 1 });

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

/**
 * Refuses a policy the store cannot enforce, when a key is given it, rather than with a 503 at
 * every verification of the key afterwards.
 */
function checkEnforceable(capabilities: StoreCapabilities, policy: { remaining?: number | null }): void {
  if (policy.remaining !== undefined && policy.remaining !== null && !capabilities.quotas) {
    throw new ApiKeyError("invalid_data", "This store cannot count usage quotas (it has no consumeQuota): leave out 'remaining'");
  }
}

function linkLabel(resourceType: string): string {
  return resourceType === "sales_channel" ? "Sales channels" : `Resources of type '${resourceType}'`;
}

export class ApiKeyService {
  readonly #config: ServiceConfig;
  readonly #onClose: () => Promise<void>;
  readonly #lastUsed: LastUsedRecorder;
  readonly #usage: UsageRecorder | undefined;
  readonly #cache: KeyLookupCache;
  readonly #events: ApiKeyEventBus;
  readonly #tokens: TokenGate;
  readonly #changes: ChangeUnit;
  readonly #verifier: CachedKeyVerifier;
  readonly #firstUse: ImportedFirstUse;
  readonly #limits: UsageLimits;
  readonly #capabilities: StoreCapabilities;
  #closing: Promise<void> | undefined;

  constructor(store: ApiKeyStore, cache: KeyLookupCache, config: ServiceConfig, onClose: () => Promise<void> = async () => {}) {
    this.#cache = cache;
    this.#config = config;
    this.#capabilities = capabilitiesOf(store);
    this.#onClose = onClose;
    this.#lastUsed = new LastUsedRecorder(store, config.lastUsedFlushInterval, config.logger);
    const { usageRetentionMs } = config;
    if (usageRetentionMs !== undefined && this.#capabilities.usage) {
      const sink = { recordUsage: store.recordUsage!.bind(store), deleteUsageBefore: store.deleteUsageBefore!.bind(store) };
      const options = { intervalMs: config.lastUsedFlushInterval, retentionMs: usageRetentionMs, now: config.now, logger: config.logger };
      this.#usage = new UsageRecorder(sink, options);
    }
    this.#events = new ApiKeyEventBus(config.logger);
    this.#tokens = new TokenGate({
      rules: config.tokenRules,
      load: () => this.#changes.run(undefined, (store) => loadTokenRules(store, config.pepper, config.now())),
      legacyRemain: () => this.#changes.run(undefined, (store) => legacyKeysRemain(store, config.now())),
      importedLeft: () => this.#changes.run(undefined, (store) => importedKeysLeft(store, config.now())),
      logger: config.logger,
      now: config.now,
    });
    const { pepper, now, logger } = config;
    this.#changes = new ChangeUnit({
      store,
      cache,
      tokens: this.#tokens,
      events: this.#events,
      logger,
      pepper,
      now,
      mapToken: this.#mapToken,
      reads: config.replicaReads,
    });
    const usage = new UsageLimits({ store, rateLimits: config.rateLimits, now, emit: (event) => this.#events.emit([event]), logger });
    this.#limits = usage;
    this.#firstUse = new ImportedFirstUse({
      read: (work) => this.#changes.run(undefined, work),
      now,
      counter: Date.now,
      afterFirstUse: () => void this.#tokens.recheckImported(),
      logger,
    });
    this.#verifier = new CachedKeyVerifier({
      cache,
      tokens: this.#tokens,
      firstUse: this.#firstUse,
      usage,
      lastUsed: this.#lastUsed,
      analytics: this.#usage,
      metrics: config.metrics,
      pepper,
      now,
      read: (work) => this.#changes.run(undefined, work),
      lookUp: (work, options) => this.#changes.read(undefined, "lookup", work, options),
    });
  }

  /**
   * A regular expression (its source) that finds this deployment's secret tokens in text, to
   * register with secret scanners such as GitHub's: with `tokenPrefix`, exactly the tokens issued
   * under it.
   */
  get tokenPattern(): string {
    return secretTokenPattern(this.#config.tokenPrefix);
  }

  /** Where the service reports failures no caller can act on; the middleware and admin router report their unexpected errors here too. */
  get logger(): Logger {
    return this.#config.logger;
  }

  /** The service's clock (the `now` option): what the dashboard times its sessions by, so that they agree with revocations and expiry. */
  now(): Date {
    return this.#config.now();
  }

  /**
   * The verification path, answering at once when it can (see KeyVerifier): for callers that
   * gain from a synchronous answer, such as the middleware. `verifyApiKey` is the public form.
   */
  get verifier(): KeyVerifier {
    return this.#verifier;
  }

  /** Writes waiting for the next flush: keys' last uses, and (hour, key) pairs of verification counts. */
  get pendingWrites(): { last_used: number; usage: number } {
    return { last_used: this.#lastUsed.pending, usage: this.#usage?.pending ?? 0 };
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

  #mapToken = (token: string): string => {
    const type = parseToken(token);
    return type ? storedTokenValue(token, type, this.#config.pepper) : token;
  };

  createApiKeys(data: CreateApiKeyDTO, ctx?: Context): Promise<ApiKeyDTO>;
  createApiKeys(data: CreateApiKeyDTO[], ctx?: Context): Promise<ApiKeyDTO[]>;
  async createApiKeys(data: CreateApiKeyDTO | CreateApiKeyDTO[], ctx?: Context): Promise<ApiKeyDTO | ApiKeyDTO[]> {
    const now = this.#config.now();
    const inputs = validateList(Array.isArray(data) ? data : [data], "keys", (item) => validateCreate(item, now));
    for (const input of inputs) checkEnforceable(this.#capabilities, input);
    const tagKey = await this.#tokens.tagKey();
    const created = inputs.map((input) => newKey(input, { now, tagKey, pepper: this.#config.pepper, segment: this.#config.tokenPrefix }));
    await this.#changes.run(
      ctx,
      async (store) => {
        const acting = await this.#changes.actingKey(store, ctx);
        if (acting) for (const input of inputs) checkGrant(acting, input.type, input.scopes);
        await store.insert(created.map(({ record }) => record));
        await this.#changes.audit(store, ctx, created.map(({ record }) => ({ action: "created", key_id: record.id, changes: changesBetween(undefined, record) })));
      },
      true,
    );
    const events = created.map(({ record: { id, type, title, created_by } }): EventBatch => ({
      name: "api_key.created",
      payload: { id, type, title, created_by },
    }));
    const first = created[0]?.record;
    await this.#changes.committed([], events, ctx, first && { id: first.id, updatedAt: first.updated_at });
    const dtos = created.map(({ record, token }) => toDTO(record, token));
    return Array.isArray(data) ? dtos : dtos[0]!;
  }

  async retrieveApiKey(id: string, config?: FindConfig, ctx?: Context): Promise<ApiKeyDTO> {
    if (id === undefined || id === null || id === "") {
      throw new ApiKeyError("not_found", "apiKey - id must be defined");
    }
    validateId(id);
    const { select, withDeleted } = normalizeFindConfig(config);
    const [record] = await this.#changes.read(ctx, "list", (store) => store.find(byId(id), { ...ALL_ROWS, withDeleted }), { found: isNotEmpty });
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
    const records = await this.#changes.read(ctx, "list", (store) => store.find(condition, find), { found: isNotEmpty });
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
    const [records, count] = await this.#changes.read(
      ctx,
      "list",
      async (store) => [await store.find(condition, find), await store.count(condition, find.withDeleted)] as const,
      { found: ([, total]) => total > 0 },
    );
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
    checkEnforceable(this.#capabilities, patch);
    const changed = Object.keys(patch) as (keyof UpdateApiKeyDTO)[];
    const updated = await this.#changes.run(
      ctx,
      async (store) => {
        const { records, acting } = await this.#changes.lockManageable(store, ctx, { idOrSelector });
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
        const after = records.map((record): ApiKeyRecord => ({ ...record, ...structuredClone(write) }));
        await this.#changes.audit(store, ctx, records.map((record, i) => ({ action: "updated", key_id: record.id, changes: changesBetween(record, after[i]) })));
        return after;
      },
      true,
    );
    const events = updated.map(({ id }): EventBatch => ({ name: "api_key.updated", payload: { id, changed: [...changed] } }));
    await this.#changes.committed(updated, events, ctx, updated[0] && { id: updated[0].id, updatedAt: updated[0].updated_at });
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
    const { revoked, changed } = await this.#changes.run(
      ctx,
      async (store) => {
        const { records } = await this.#changes.lockManageable(store, ctx, { idOrSelector });
        if (records.length === 0) return { revoked: [], changed: new Set<string>() };
        if (!input.revoked_by) {
          throw new ApiKeyError("invalid_data", "You must provide a revoked_by field when revoking a key.");
        }
        const now = this.#config.now();
        const at = revocationTime(now, input.revoke_in);
        const already = records.filter((record) => !isActive(record, now));
        if (already.length > 0) throw new ApiKeyError("invalid_data", alreadyRevokedMessage(already));
        // A scheduled revocation may be brought forward, never pushed back: a second call
        // cannot bring a key back to life.
        const changed = new Set(
          records.filter((record) => record.revoked_at === null || at < record.revoked_at).map((record) => record.id),
        );
        const patch = { revoked_at: at, revoked_by: input.revoked_by, updated_at: now };
        await store.update([...changed], patch);
        const revoked = records.map((record) => (changed.has(record.id) ? { ...record, ...patch } : record));
        await this.#changes.audit(store, ctx, records.map((record, i) => ({ action: "revoked", key_id: record.id, changes: changesBetween(record, revoked[i]) })));
        return { revoked, changed };
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
    await this.#changes.committed(revoked, events, ctx, probe && { id: probe.id, updatedAt: probe.updated_at });
    const dtos = revoked.map((record) => toDTO(record));
    return typeof idOrSelector === "string" ? dtos[0]! : dtos;
  }

  /** Deletes revoked keys for good, with their links. Unknown ids are skipped. */
  async deleteApiKeys(ids: string | string[], ctx?: Context): Promise<void> {
    const list = [...new Set(validateList(Array.isArray(ids) ? ids : [ids], "ids", validateId))];
    if (list.length === 0) return;
    const deleted = await this.#changes.run(
      ctx,
      async (store) => {
        const { records } = await this.#changes.lockManageable(store, ctx, { ids: list });
        const now = this.#config.now();
        // An expired key counts as revoked at its expiry.
        const live = records.filter((record) => endedBy(record, now) === undefined);
        if (live.length > 0) {
          const names = live.map((record) => record.id).join(", ");
          throw new ApiKeyError("not_allowed", `Cannot delete api keys that are not revoked - ${names}`);
        }
        await store.delete(records.map((record) => record.id));
        await this.#changes.audit(store, ctx, records.map((record) => ({ action: "deleted", key_id: record.id, changes: changesBetween(record, undefined) })));
        return records;
      },
      true,
    );
    await this.#changes.committed(
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
    return this.#verifier.verify(token, checkVerifyOptions(options));
  }

  /**
   * The key for a valid secret token, or `false`: `verifyApiKey(token, { type: "secret" })`
   * reduced to the key. A store failure is an `unavailable` error, not a `false`.
   */
  authenticate(token: string): Promise<ApiKeyDTO | false> {
    // Not an async function: a warm answer resolves in one hop, not in two.
    try {
      const answer = this.#verifier.verify(token, SECRET_ONLY);
      return answer instanceof Promise ? answer.then(keyOf) : Promise.resolve(keyOf(answer));
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
  }

  /** The key and sales channel ids for a valid publishable token, or `false`; as `authenticate`. */
  async authenticatePublishable(token: string): Promise<PublishableKeyMatch | false> {
    const result = await this.#verifier.verify(token, PUBLISHABLE_ONLY);
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
    const changed = await this.#changes.run(
      ctx,
      async (store) => {
        const { records } = await this.#changes.lockManageable(store, ctx, { ids: list });
        const targets = records.filter((record) => (record.deleted_at === null) === deleted);
        const now = this.#config.now();
        const patch = { deleted_at: deleted ? now : null, updated_at: now };
        await store.update(targets.map((record) => record.id), patch);
        const changed = targets.map((record) => ({ ...record, ...patch }));
        const action = deleted ? "soft_deleted" : "restored";
        await this.#changes.audit(store, ctx, targets.map((record, i) => ({ action, key_id: record.id, changes: changesBetween(record, changed[i]) })));
        return changed;
      },
      true,
    );
    const events = changed.map((record): EventBatch =>
      deleted ? { name: "api_key.soft_deleted", payload: { id: record.id, deleted_at: record.deleted_at! } } : { name: "api_key.restored", payload: { id: record.id } },
    );
    await this.#changes.committed(changed, events, ctx, changed[0] && { id: changed[0].id, updatedAt: changed[0].updated_at });
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
    const { old, successor, token } = await this.#changes.run(
      ctx,
      async (store) => {
        const {
          records: [old],
        } = await this.#changes.lockManageable(store, ctx, { idOrSelector: id });
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
        const at = revocationTime(now, input.revoke_in);
        await store.update([old!.id], { revoked_at: at, revoked_by: input.revoked_by, updated_at: now });
        const { record, token } = newKey(old!, { now, tagKey, pepper: this.#config.pepper, segment: this.#config.tokenPrefix });
        await store.insert([record]);
        await store.copyLinks(old!.id, record.id);
        const rolled = { ...old!, revoked_at: at, revoked_by: input.revoked_by, updated_at: now };
        await this.#changes.audit(store, ctx, [
          { action: "rolled", key_id: old!.id, changes: { ...changesBetween(old, rolled), successor_id: { before: null, after: record.id } } },
          { action: "created", key_id: record.id, changes: changesBetween(undefined, record) },
        ]);
        return { old: rolled, successor: record, token };
      },
      true,
    );
    const event: EventBatch = {
      name: "api_key.rolled",
      payload: { id: old.id, successor_id: successor.id, revoked_by: input.revoked_by, revoked_at: old.revoked_at },
    };
    await this.#changes.committed([old], [event], ctx, { id: old.id, updatedAt: old.updated_at });
    return toDTO(successor, token);
  }

  /** Adds and removes links from a publishable key to resources (sales channels by default). */
  async updateLinks(id: string, data: UpdateLinksDTO, ctx?: Context): Promise<string[]> {
    validateId(id);
    const change = validateLinks(data);
    const { record, linked } = await this.#changes.run(
      ctx,
      async (store) => {
        const {
          records: [record],
        } = await this.#changes.lockManageable(store, ctx, { idOrSelector: id });
        if (record!.type !== "publishable") {
          throw new ApiKeyError(
            "invalid_data",
            `${linkLabel(change.resource_type)} can only be associated with publishable API keys`,
          );
        }
        const before = await store.linkedIds(id, change.resource_type);
        await store.removeLinks(id, change.resource_type, change.remove);
        await store.addLinks(id, change.resource_type, change.add);
        const now = this.#config.now();
        await store.update([id], { updated_at: now });
        const linked = await store.linkedIds(id, change.resource_type);
        const moved = JSON.stringify(before) !== JSON.stringify(linked);
        const changes = moved ? { [`links.${change.resource_type}`]: { before, after: linked } } : {};
        await this.#changes.audit(store, ctx, [{ action: "links_changed", key_id: id, changes }]);
        return { record: { ...record!, updated_at: now }, linked };
      },
      true,
    );
    const event: EventBatch = { name: "api_key.updated", payload: { id: record.id, changed: ["links"] } };
    await this.#changes.committed([record], [event], ctx, { id: record.id, updatedAt: record.updated_at });
    return linked;
  }

  /** The resource ids (sales channels by default) a key is linked to. */
  async listLinks(id: string, resourceType = "sales_channel", ctx?: Context): Promise<string[]> {
    validateId(id);
    return this.#changes.run(ctx, async (store) => {
      const [record] = await store.find(byId(id), ALL_ROWS);
      if (!record) throw new ApiKeyError("not_found", `ApiKey with id "${id}" not found`);
      return store.linkedIds(id, resourceType);
    });
  }

  /**
   * Verification counts by bucket (`granularity`: `"hour"`, the default, or `"day"`, in UTC) and
   * key, every code present, oldest first: of one key (`key_id`), of one owner's keys
   * (`owner_id`), or of every key with tokens of no key under `key_id: null`. Buckets from `from`
   * (default: 30 days before `to`) to `to` (default: now). Counts not yet written (within
   * `lastUsedFlushInterval`) are not in them; `close()` writes them.
   */
  async getUsage(filters?: UsageFilters, ctx?: Context): Promise<UsageRow[]> {
    if (!this.#capabilities.usage) {
      throw new ApiKeyError("not_allowed", "This store keeps no verification counts (it has no recordUsage, findUsage and deleteUsageBefore)");
    }
    const { query, granularity } = normalizeUsageQuery(filters, this.#config.now());
    return usageRows(await this.#changes.run(ctx, (store) => store.findUsage!(query)), granularity);
  }

  /**
   * Audit events matching `filters` (`key_id`, `actor_id`, `action`: a value or a list; `at`: an
   * instant or `{ $gt, $gte, $lt, $lte }`), oldest first unless `config.order` is `{ at: "DESC" }`.
   */
  async listAuditEvents(filters?: AuditEventFilters, config?: AuditEventConfig, ctx?: Context): Promise<AuditEvent[]> {
    const query = this.#auditQuery(filters, config);
    return this.#changes.run(ctx, (store) => store.findAuditEvents!(query));
  }

  /** As `listAuditEvents`, with how many events match in all (ignoring `skip` and `take`). */
  async listAndCountAuditEvents(filters?: AuditEventFilters, config?: AuditEventConfig, ctx?: Context): Promise<[AuditEvent[], number]> {
    const query = this.#auditQuery(filters, config);
    return this.#changes.run(ctx, async (store) => [await store.findAuditEvents!(query), await store.countAuditEvents!(query.where)]);
  }

  #auditQuery(filters: unknown, config: unknown): AuditQuery {
    if (!this.#capabilities.auditLog) {
      throw new ApiKeyError("not_allowed", "This store keeps no audit log (it has no insertAuditEvents, findAuditEvents and countAuditEvents)");
    }
    return normalizeAuditQuery(filters, config);
  }

  /**
   * Copies the keys of a Medusa database (a Knex instance, a connection string, or any
   * MedusaKeySource) with their ids, fields and live sales-channel links, batch by batch; keys
   * already here are left as they are. Their tokens keep working (see lib/imported-keys.ts).
   */
  async importMedusaKeys(source: unknown, options: MedusaImportOptions = {}, ctx?: Context): Promise<MedusaImportReport> {
    const opened = await this.#openMedusaSource(source);
    let report: MedusaImportReport;
    try {
      report = await importMedusaKeys(opened, {
        existingIds: async (ids) => {
          const condition: Condition = { kind: "in", field: "id", values: ids, negated: false };
          const found = await this.#changes.run(ctx, (store) => store.find(condition, { ...ALL_ROWS, select: ["id"], withDeleted: true }));
          return new Set(found.map((record) => record.id));
        },
        write: async (records, links) => {
          await this.#changes.run(
            ctx,
            async (store) => {
              await store.insert(records);
              const byKey = new Map<string, string[]>();
              for (const { publishable_key_id: id, sales_channel_id: channel } of links) {
                const channels = byKey.get(id);
                if (channels) channels.push(channel);
                else byKey.set(id, [channel]);
              }
              for (const [id, channels] of byKey) await store.addLinks(id, "sales_channel", channels);
              const details = { ...ctx?.auditDetails, source: "medusa" };
              await this.#changes.audit(store, { ...ctx, auditDetails: details }, records.map((record) => ({ action: "imported", key_id: record.id, changes: changesBetween(undefined, record) })));
            },
            true,
          );
          // Publishable tokens looked up before the import may be remembered as unknown.
          await this.#changes.committed(records.filter((record) => record.type === "publishable"), [], ctx, undefined);
        },
      }, this.#config.now(), options);
    } finally {
      await opened.close();
    }
    if (!report.dry_run && report.imported > 0) {
      this.#firstUse.forgetFailures();
      await this.#tokens.recheckImported();
    }
    return report;
  }

  async #openMedusaSource(source: unknown): Promise<MedusaKeySource> {
    const candidate = source as Partial<MedusaKeySource> | null;
    if (typeof candidate?.keys === "function" && typeof candidate.salesChannels === "function" && typeof candidate.count === "function") {
      return candidate as MedusaKeySource;
    }
    if (!this.#config.openMedusaSource) throw new ApiKeyError("not_allowed", "This service cannot open a Medusa database: pass a MedusaKeySource");
    return this.#config.openMedusaSource(source);
  }

  /** How many imported Medusa keys could still authenticate, and how many secret ones still await their first use. */
  async importedKeysStatus(ctx?: Context): Promise<ImportedKeysStatus> {
    const left = await this.#changes.run(ctx, (store) => importedKeysLeft(store, this.#config.now()));
    if (!left) throw new ApiKeyError("not_allowed", "This store cannot count imported keys (it has no importedKeys)");
    return { imported: left.live, awaiting_first_use: left.awaiting };
  }

  /**
   * Writes pending last_used_at values, then releases what `initialize()` opened (never an
   * app-owned Knex). Safe to call twice.
   */
  close(): Promise<void> {
    this.#closing ??= this.#tokens
      .close()
      .then(() => this.#limits.close())
      .then(() => this.#lastUsed.close())
      .then(() => this.#usage?.close())
      .then(() => this.#cache.close())
      .then(this.#onClose);
    return this.#closing;
  }
}

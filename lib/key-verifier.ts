// KeyVerifier: the hot path every authentication takes. The token's format and checksum, then
// the in-process tier, then the tag, then the cache tiers and the store; then the key's state,
// scopes and usage limits, and its last use recorded for a later batched write.
import { ApiKeyError } from "./errors";
import { isPlainObject } from "./filters";
import { type AllowList, allows, compileAllowList } from "./ip-allow-list";
import { endedBy } from "./key-status";
import { IMPORTED_TOKEN_FORMAT, type ImportedFirstUse } from "./imported-keys";
import type { CacheEntry, FoundEntry, KeyLookupCache } from "./key-lookup-cache";
import type { LastUsedRecorder } from "./last-used";
import type { Metrics } from "./metrics";
import type { UsageRecorder } from "./usage-analytics";
import { type KeyRecipe, keyRecipe, keyWithRemaining, readOnlyKey } from "./read-only";
import type { ReplicaReadOptions } from "./replica-reads";
import { missingScopes } from "./scopes";
import type { ApiKeyRecord, ApiKeyStore, PublishableRecord } from "./store";
import type { TokenGate } from "./token-gate";
import { type ApiKeyType, hashToken, parseToken, sameSecret, tokenFormat } from "./tokens";
import type { ApiKeyDTO, VerifyResult } from "./types";
import type { UsageLimits } from "./usage-limits";
import { validateRequiredScopes } from "./validate-input";

/** Verification options once checked; `checkVerifyOptions` makes them. */
export interface CheckedVerifyOptions {
  readonly type?: ApiKeyType;
  readonly scopes: readonly string[];
  readonly cost: number;
  readonly ip?: string;
}

/**
 * The client's address, for keys with an IP allow-list: the address, or a function that reads it
 * only when such a key asks (reading `req.ip` behind `trust proxy` has a cost of its own).
 */
export type ClientAddress = string | (() => string | undefined) | undefined;

/**
 * The verification the middleware depends on. It answers at once when it can (a fresh entry in
 * the memory tier and no use to count outside this process: the result itself, in the same
 * tick) and otherwise with a promise of it, so that a warm request calls `next()` in the tick
 * it arrived. It never throws for any token; a store failure rejects with a typed error.
 */
export interface KeyVerifier {
  /** `ip`, when given, stands for `options.ip`. */
  verify(token: string, options: CheckedVerifyOptions, ip?: ClientAddress): VerifyResult | Promise<VerifyResult>;
}

/** The default units a valid verification consumes. */
const DEFAULT_COST = 1;

/** Checks verification options as `verifyApiKey` does, throwing an `invalid_data` error for bad ones. */
export function checkVerifyOptions(options: unknown): CheckedVerifyOptions {
  if (options === undefined) return { scopes: [], cost: DEFAULT_COST };
  if (!isPlainObject(options)) throw new ApiKeyError("invalid_data", "Expected an object for the verification options");
  const { type, scopes, cost, ip, ...rest } = options;
  const unknown = Object.keys(rest).filter((key) => rest[key] !== undefined);
  if (unknown.length > 0) throw new ApiKeyError("invalid_data", `Unrecognized verification options: ${unknown.map((key) => `'${key}'`).join(", ")}`);
  if (type !== undefined && type !== "secret" && type !== "publishable") {
    throw new ApiKeyError("invalid_data", "Expected: 'publishable, secret' for option 'type'");
  }
  if (cost !== undefined && (typeof cost !== "number" || !Number.isSafeInteger(cost) || cost < 0)) {
    throw new ApiKeyError("invalid_data", "Expected a non-negative whole number for option 'cost'");
  }
  if (ip !== undefined && (typeof ip !== "string" || ip.length > 64)) throw new ApiKeyError("invalid_data", "Expected an IP address for option 'ip'");
  return { type, scopes: scopes === undefined ? [] : validateRequiredScopes(scopes), cost: cost ?? DEFAULT_COST, ...(ip === undefined ? {} : { ip }) };
}

/** The DTO for a record: secret keys show `token: ""` unless the plaintext is being handed out once. */
export function toDTO(record: ApiKeyRecord, plaintext?: string): ApiKeyDTO {
  return { ...record, token: plaintext ?? (record.type === "secret" ? "" : record.token) };
}

const NOT_FOUND: VerifyResult = Object.freeze({ valid: false, code: "not_found" });

export interface CachedKeyVerifierParts {
  cache: KeyLookupCache;
  tokens: TokenGate;
  /** Checks Medusa secret tokens that no stored hash matches against imported keys awaiting their first use. */
  firstUse: ImportedFirstUse;
  usage: UsageLimits;
  lastUsed: LastUsedRecorder;
  /** Counts every answer, when verification analytics are on. */
  analytics?: UsageRecorder;
  /** Hears every answer, and each one the memory tier gave at once, when metrics are on. */
  metrics?: Metrics;
  pepper: string | Buffer | undefined;
  /** Policy time: what expiry and revocation are judged by. */
  now: () => Date;
  /** Runs store work at the store error boundary (see ChangeUnit.run). */
  read<T>(work: (store: ApiKeyStore) => Promise<T>): Promise<T>;
  /** Runs a lookup that missed every cache, which a read replica may serve (see ChangeUnit.read). */
  lookUp<T>(work: (store: ApiKeyStore) => Promise<T>, options: ReplicaReadOptions<T>): Promise<T>;
}

const FOUND = (entry: CacheEntry): boolean => entry.found;

/** The verifier over the cache tiers and the store. */
export class CachedKeyVerifier implements KeyVerifier {
  readonly #parts: CachedKeyVerifierParts;
  /** Read-only copies of cached keys, by the cached key they copy; they go when it goes. */
  readonly #readOnlyKeys = new WeakMap<ApiKeyDTO, ApiKeyDTO>();
  /** Recipes for per-use copies of cached keys with a quota, by the cached key. */
  readonly #recipes = new WeakMap<ApiKeyDTO, KeyRecipe>();
  /** Cached keys' allow-lists, parsed once per entry, so that checking one costs no parse. */
  readonly #allowLists = new WeakMap<ApiKeyDTO, AllowList>();

  constructor(parts: CachedKeyVerifierParts) {
    this.#parts = parts;
  }

  verify(token: string, options: CheckedVerifyOptions, ip: ClientAddress = options.ip): VerifyResult | Promise<VerifyResult> {
    const { analytics, metrics } = this.#parts;
    // One reading of the clock per verification: a warm one is judged and counted by it.
    const at = this.#parts.now();
    const answer = this.#verify(token, options, ip, at);
    if (!analytics && !metrics) return answer;
    // A store failure (a rejection) is no answer, and is not counted.
    if (answer instanceof Promise) return answer.then((result) => this.#counted(result, at));
    return this.#counted(answer, at);
  }

  #counted(result: VerifyResult, at: Date): VerifyResult {
    this.#parts.analytics?.count(result, at);
    this.#parts.metrics?.verified(result.api_key?.type ?? "none", result.code);
    return result;
  }

  #verify(token: string, options: CheckedVerifyOptions, ip: ClientAddress, at: Date): VerifyResult | Promise<VerifyResult> {
    const { type, scopes, cost } = options;
    const { cache, tokens, pepper } = this.#parts;
    // The public format and checksum first: no hash is paid for a typo.
    const parsed = parseToken(token);
    if (!parsed || (type !== undefined && parsed !== type)) return { ...NOT_FOUND };
    const hash = hashToken(token, pepper);
    // A fresh in-process entry for this very token was made after the token passed the gate
    // below (nothing else writes the memory tier), so a hit needs no second tag check; reading
    // it costs no I/O and writes nothing, so a forged token gains nothing from it.
    const cached = cache.peek(hash, at);
    if (cached) {
      this.#parts.metrics?.answered("memory");
      return this.#answer(cached, parsed, scopes, cost, at, ip);
    }
    // Tag and the format-1 rule before the Redis tier, the negative tier or the store.
    const accepted = tokens.accept(token);
    if (accepted instanceof Promise) return accepted.then((ok) => (ok ? this.#lookUpAndAnswer(token, parsed, hash, scopes, cost, ip) : { ...NOT_FOUND }));
    return accepted ? this.#lookUpAndAnswer(token, parsed, hash, scopes, cost, ip) : { ...NOT_FOUND };
  }

  #lookUpAndAnswer(token: string, parsed: ApiKeyType, hash: string, scopes: readonly string[], cost: number, ip: ClientAddress): Promise<VerifyResult> {
    // Judged when the answer arrives, by the clock then.
    return this.#lookup(token, parsed, hash).then((entry) => this.#answer(entry, parsed, scopes, cost, this.#parts.now(), ip));
  }

  /** Finds a token's key through the cache tiers; the store is asked only on a miss. */
  #lookup(token: string, type: ApiKeyType, hash: string): Promise<CacheEntry> {
    return this.#parts.cache.lookup(hash, async (latest) => {
      const entry = await this.#find(token, type, hash, latest);
      if (entry.found || type !== "secret" || tokenFormat(token) !== IMPORTED_TOKEN_FORMAT || !this.#parts.tokens.awaitingFirstUse()) return entry;
      const record = await this.#parts.firstUse.verify(token, hash);
      return record ? { found: true, api_key: toDTO(record), sales_channel_ids: [] } : entry;
    });
  }

  /** The store's answer for a token: one indexed lookup, by hash or (publishable) by the token itself. */
  #find(token: string, type: ApiKeyType, hash: string, latest: boolean): Promise<CacheEntry> {
    return this.#parts.lookUp(async (store): Promise<CacheEntry> => {
        if (type === "secret") {
          const record = await store.findByToken(hash, "secret");
          return record && sameSecret(record.token, hash) ? { found: true, api_key: toDTO(record), sales_channel_ids: [] } : { found: false };
        }
        const found = store.findPublishable ? await store.findPublishable(token) : await publishableInTwoSteps(store, token);
        if (!found) return { found: false };
        const { sales_channel_ids, ...record } = found;
        return { found: true, api_key: toDTO(record), sales_channel_ids };
      }, { found: FOUND, latest });
  }

  /**
   * The verdict on a looked-up key: at once, unless its use must be counted outside this
   * process (a quota, a rate limit whose local lease cannot pay).
   */
  #answer(entry: CacheEntry, parsed: ApiKeyType, scopes: readonly string[], cost: number, now: Date, ip: ClientAddress): VerifyResult | Promise<VerifyResult> {
    if (!entry.found || entry.api_key.type !== parsed || entry.api_key.deleted_at !== null) return { ...NOT_FOUND };
    // Decided on the entry itself, which no caller ever holds: they get the read-only copy.
    const ended = endedBy(entry.api_key, now);
    if (ended) return { valid: false, code: ended, api_key: this.#readOnly(entry) };
    // Before scopes: a request from elsewhere learns nothing of what the key may do.
    if (entry.api_key.allowed_ips.length > 0 && !allows(this.#allowList(entry), typeof ip === "function" ? ip() : ip)) {
      return { valid: false, code: "ip_not_allowed", api_key: this.#readOnly(entry) };
    }
    // Most routes require no scope: no arrays and no Set made for them.
    if (scopes.length > 0) {
      const missing = missingScopes(entry.api_key.scopes, scopes);
      if (missing.length > 0) return { valid: false, code: "forbidden", api_key: this.#readOnly(entry), missing_scopes: missing };
    }
    if (cost === 0) return this.#valid(entry, parsed, now, {});
    const local = this.#parts.usage.consumeLocal(entry.api_key, cost, now);
    if (local) {
      if (local.remaining === undefined) return this.#valid(entry, parsed, now, local.rate_limit ? { rate_limit: local.rate_limit } : {});
      // Paid from a quota lease: the count this instance knows, as the store's answer would be.
      const api_key = keyWithRemaining(this.#recipe(entry), local.remaining);
      return this.#valid(entry, parsed, now, { ...(local.rate_limit ? { rate_limit: local.rate_limit } : {}), remaining: local.remaining }, api_key);
    }
    return this.#consume(entry, cost).then(({ refused, ...counts }) => {
      let api_key = this.#readOnly(entry);
      // The cached key's quota is as last read; the store's answer is the truth.
      if (counts.remaining !== undefined) api_key = Object.freeze({ ...api_key, remaining: counts.remaining });
      if (refused) return { valid: false, code: refused, api_key, ...counts };
      return this.#valid(entry, parsed, now, counts, api_key);
    });
  }

  #valid(entry: FoundEntry, parsed: ApiKeyType, now: Date, counts: Pick<VerifyResult, "rate_limit" | "remaining">, api_key = this.#readOnly(entry)): VerifyResult {
    this.#parts.lastUsed.record(api_key.id, now);
    const result: VerifyResult = { valid: true, code: "valid", api_key, ...counts };
    if (parsed === "publishable") result.sales_channel_ids = [...entry.sales_channel_ids];
    return result;
  }

  #allowList(entry: FoundEntry): AllowList {
    return oncePerEntry(this.#allowLists, entry, () => compileAllowList(entry.api_key.allowed_ips));
  }

  /** How to copy an entry's key with a count of its own, read once per cached entry. */
  #recipe(entry: FoundEntry): KeyRecipe {
    return oncePerEntry(this.#recipes, entry, () => keyRecipe(this.#readOnly(entry)));
  }

  /** The read-only copy of an entry's key, made once per cached entry. */
  #readOnly(entry: FoundEntry): ApiKeyDTO {
    return oncePerEntry(this.#readOnlyKeys, entry, () => readOnlyKey(entry.api_key));
  }

  /**
   * Where a valid verification pays `cost` from the key's rate limits (rate-limiter-flexible,
   * shared through Redis) and then its `remaining` quota (one atomic write in the store), so
   * that the quota is exact across instances. Answers the counts for the response headers, and
   * with `refused` the code to answer instead; a refused use pays nothing.
   */
  async #consume(entry: FoundEntry, cost: number): Promise<Pick<VerifyResult, "rate_limit" | "remaining"> & { refused?: "rate_limited" | "usage_exceeded" }> {
    const decision = await this.#parts.read(() => this.#parts.usage.consume(entry.api_key, cost));
    const counts: Pick<VerifyResult, "rate_limit" | "remaining"> = {};
    if (decision.rate_limit) counts.rate_limit = decision.rate_limit;
    if (decision.remaining !== undefined) counts.remaining = decision.remaining;
    return decision.admitted ? counts : { ...counts, refused: decision.code };
  }
}

/** What `make` makes for a cached entry, made once: kept by the entry's key, and gone with it. */
function oncePerEntry<T>(made: WeakMap<ApiKeyDTO, T>, entry: FoundEntry, make: () => T): T {
  let value = made.get(entry.api_key);
  if (value === undefined) {
    value = make();
    made.set(entry.api_key, value);
  }
  return value;
}

/** For stores without `findPublishable`: the key, then its sales channels. */
async function publishableInTwoSteps(store: ApiKeyStore, token: string): Promise<PublishableRecord | undefined> {
  const record = await store.findByToken(token, "publishable");
  return record && { ...record, sales_channel_ids: await store.linkedIds(record.id, "sales_channel") };
}

// What a verification checks before any cache or store: the token's format, checksum and tag,
// and whether format-1 (untagged) tokens can still name a live key. The rules are read from the
// store once (the tag key comes from the deployment secret or the pepper) and then kept in
// memory, so that deciding costs no I/O.
//
// "Format-1 keys remain" only ever goes from true to false: this service issues format 1 only
// when it has no tag key (and then never refuses format 1). So it is checked again while true:
// after this service revokes, deletes or rolls a key, and every LEGACY_RECHECK_INTERVAL so that
// other instances' changes reach this one. Until then a format-1 token takes the full path,
// which cannot accept a token that names no live key: the lag costs I/O, never a false accept.
//
// Medusa's tokens (format 3) are accepted while imported keys remain, and imported secret keys
// that await their first use are checked against Medusa's hashes (lib/imported-keys.ts). Unlike
// format 1, both answers can also turn true again (an import, from this process or from the CLI),
// so they are asked again every LEGACY_RECHECK_INTERVAL whatever they were: one query a minute
// per instance, never one per token.
//
// Until the rules can be read (the database is down, or the secret table is missing), a
// well-formed token takes that same full path, as before tags existed, and the read is tried
// again at most once per RULES_RETRY_MS; issuing a key needs the tag key and fails meanwhile.
import { KEY_PURPOSES, deriveKey, readDeploymentSecret } from "./deployment-secret";
import type { Logger } from "./logger";
import type { ApiKeyStore } from "./store";
import { type TokenRules, meetsRules } from "./tokens";

/** How often an instance asks whether format-1 keys (while it accepts them) and imported keys are left, in milliseconds. */
export const LEGACY_RECHECK_INTERVAL = 60_000;

/** How long after a failed read of the rules verifications go on without them before one tries again, in milliseconds. */
const RULES_RETRY_MS = 1_000;

/**
 * The rules for one store: the tag key under the pepper when one is set, else under the
 * deployment secret; none when the store keeps no secret (tokens are then issued in format 1).
 * Without `hasLegacyTokens`, format-1 keys are assumed to remain.
 */
export async function loadTokenRules(store: ApiKeyStore, pepper: string | Buffer | undefined, now: Date): Promise<TokenRules> {
  const root = pepper ?? (store.loadSecret ? await readDeploymentSecret(store) : undefined);
  const tagKey = root === undefined ? undefined : deriveKey(root, KEY_PURPOSES.tokenTag);
  return { tagKey, legacyAccepted: tagKey === undefined || (await legacyKeysRemain(store, now)), ...importedRules(await importedKeysLeft(store, now)) };
}

/** How many imported keys could still authenticate, and how many of them await their first use. */
export interface ImportedKeysLeft {
  live: number;
  awaiting: number;
}

/** What the store says of imported keys; undefined when it cannot say. */
export async function importedKeysLeft(store: ApiKeyStore, now: Date): Promise<ImportedKeysLeft | undefined> {
  return store.importedKeys ? store.importedKeys(now) : undefined;
}

/** The rules for Medusa's tokens; a store that cannot say is assumed to hold imported keys of both kinds. */
function importedRules(left: ImportedKeysLeft | undefined): Pick<TokenRules, "importedAccepted" | "importedAwaiting"> {
  return { importedAccepted: left === undefined || left.live > 0, importedAwaiting: left === undefined || left.awaiting > 0 };
}

/** Whether a format-1 key could still authenticate; true when the store cannot say. */
export async function legacyKeysRemain(store: ApiKeyStore, now: Date): Promise<boolean> {
  return store.hasLegacyTokens ? store.hasLegacyTokens(now) : true;
}

export interface TokenGateOptions {
  /** The rules, when they were read already (by `initialize()`). */
  rules?: TokenRules;
  /** Reads the rules from the store (errors already typed). */
  load(): Promise<TokenRules>;
  /** Asks the store again whether format-1 keys remain. */
  legacyRemain(): Promise<boolean>;
  /** Asks the store again how many imported keys remain; undefined when it cannot say. */
  importedLeft(): Promise<ImportedKeysLeft | undefined>;
  logger: Logger;
  now(): Date;
}

export class TokenGate {
  readonly #options: TokenGateOptions;
  #rules: TokenRules | undefined;
  #loading: Promise<TokenRules> | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** When verifications may try to read the rules again after a failure. */
  #retryAt = 0;
  #closed = false;

  constructor(options: TokenGateOptions) {
    this.#options = options;
    if (options.rules) this.#adopt(options.rules);
  }

  #adopt(rules: TokenRules): void {
    this.#rules = rules;
    this.#startRechecks();
  }

  /** The rules, read once; a failed read is tried again on the next call. */
  rules(): Promise<TokenRules> {
    if (this.#rules) return Promise.resolve(this.#rules);
    this.#loading ??= this.#options.load().then(
      (rules) => {
        this.#loading = undefined;
        if (!this.#closed) this.#adopt(rules);
        return rules;
      },
      (error: unknown) => {
        this.#loading = undefined;
        throw error;
      },
    );
    return this.#loading;
  }

  /**
   * Whether a token `parseToken` accepted is worth looking up: false when it cannot be one of
   * this deployment's keys. Synchronous once the rules are read. Before that, the token waits
   * for a read of them, or, when that failed lately, is looked up on its checksum alone.
   */
  accept(token: string): boolean | Promise<boolean> {
    if (this.#rules) return meetsRules(token, this.#rules);
    if (this.#options.now().getTime() < this.#retryAt) return true;
    return this.rules().then(
      (rules) => meetsRules(token, rules),
      () => {
        this.#retryAt = this.#options.now().getTime() + RULES_RETRY_MS;
        return true;
      },
    );
  }

  /** Whether a Medusa secret token that no key's hash matches may be one awaiting its first use. */
  awaitingFirstUse(): boolean {
    return this.#rules?.importedAwaiting ?? true;
  }

  /** The key new tokens are tagged under; undefined when there is none (format 1 is issued). */
  async tagKey(): Promise<Buffer | undefined> {
    return (await this.rules()).tagKey;
  }

  /** Asks again whether format-1 and imported keys remain, where that can have changed; failures are logged, the old answers kept. */
  async recheck(): Promise<void> {
    await this.#recheckLegacy();
    await this.recheckImported();
  }

  async #recheckLegacy(): Promise<void> {
    const rules = this.#rules;
    if (!rules?.legacyAccepted || rules.tagKey === undefined) return;
    try {
      const remain = await this.#options.legacyRemain();
      if (!remain && !this.#closed && this.#rules) this.#rules = { ...this.#rules, legacyAccepted: false };
    } catch (error) {
      this.#options.logger.warn("express-api-keys: could not check whether keys with format-1 tokens remain; they are still accepted", error);
    }
  }

  /** Asks again how many imported keys remain: after an import, a first use, and every interval. */
  async recheckImported(): Promise<void> {
    if (!this.#rules) return;
    try {
      const left = await this.#options.importedLeft();
      if (left !== undefined && !this.#closed && this.#rules) this.#rules = { ...this.#rules, ...importedRules(left) };
    } catch (error) {
      this.#options.logger.warn("express-api-keys: could not check whether imported keys remain; the last answer stands", error);
    }
  }

  #startRechecks(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.recheck(), LEGACY_RECHECK_INTERVAL);
    this.#timer.unref();
  }

  #stopRechecks(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Stops the rechecks; resolves once a read in flight has ended, so the store can be closed under it. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#stopRechecks();
    await this.#loading?.catch(() => {});
  }
}

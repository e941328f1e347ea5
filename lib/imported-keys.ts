// Keys imported from Medusa (lib/medusa-import.ts) keep their tokens: `pk_` / `sk_` and 64 hex
// characters, format 3. A publishable one is stored as it is, like ours. A secret one arrives as
// Medusa stored it, `scrypt(token, salt, 64)`, which cannot be looked up by the token's hash; we
// keep it as IMPORTED_HASH_PREFIX + salt + `$` + hash until the key's first use, which finds it
// among the keys with the same `redacted` text, checks it with scrypt, and replaces it with this
// package's hash in one transaction, so that every later use is one indexed lookup.
//
// scrypt costs tens of milliseconds and 16 MiB a call by design, so a flood of forged
// Medusa-shaped tokens must not be able to buy it freely: at most FIRST_USE_CONCURRENCY run at
// once (on libuv's threads, off the event loop), at most FIRST_USE_PER_SECOND start in any
// second (beyond that a first use is `unavailable`, to be tried again), and a token that matched
// nothing is remembered for FAILURE_MEMORY_MS, so asking again costs no query and no scrypt.
import { scrypt, timingSafeEqual } from "node:crypto";
import { ApiKeyError } from "./errors";
import type { Condition, NormalizedFindConfig } from "./filters";
import { endedBy } from "./key-status";
import type { Logger } from "./logger";
import type { ApiKeyRecord, ApiKeyStore } from "./store";
import { redactToken } from "./tokens";

/** What an imported secret key's stored token starts with until its first use. */
export const IMPORTED_HASH_PREFIX = "medusa-scrypt$";

/** The format of imported keys' tokens (see lib/tokens.ts). */
export const IMPORTED_TOKEN_FORMAT = 3;

/** scrypt checks running at once, at most. */
export const FIRST_USE_CONCURRENCY = 2;
/** scrypt checks started in any one second, at most, in each process. */
export const FIRST_USE_PER_SECOND = 10;
/** How long a Medusa-shaped token that matched no imported key is refused without a query. */
export const FAILURE_MEMORY_MS = 10 * 60_000;
/** How many such tokens are remembered at most (the oldest are forgotten first). */
const FAILURES_REMEMBERED = 10_000;
/** How many keys sharing one `redacted` text are tried, at most (24 bits of it tell them apart). */
const MAX_CANDIDATES = 8;

const HEX_SALT = /^[0-9a-f]{32}$/;
const HEX_HASH = /^[0-9a-f]{128}$/;

/** The stored form of a Medusa secret key awaiting its first use. */
export function importedHashValue(salt: string, hash: string): string {
  return `${IMPORTED_HASH_PREFIX}${salt}$${hash}`;
}

/** Whether a row's salt and token are what Medusa writes for a secret key. */
export function isMedusaSecretHash(salt: string, hash: string): boolean {
  return HEX_SALT.test(salt) && HEX_HASH.test(hash);
}

function splitImportedHash(stored: string): { salt: string; hash: string } | undefined {
  if (!stored.startsWith(IMPORTED_HASH_PREFIX)) return undefined;
  const [salt = "", hash = ""] = stored.slice(IMPORTED_HASH_PREFIX.length).split("$");
  return isMedusaSecretHash(salt, hash) ? { salt, hash } : undefined;
}

/** Medusa's check: scrypt of the token under the salt as its hex string, Node's defaults (N 16384, r 8, p 1), 64 bytes. */
function scryptMatches(token: string, salt: string, hash: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    scrypt(token, salt, 64, (error, derived) => (error ? reject(error) : resolve(timingSafeEqual(derived, Buffer.from(hash, "hex")))));
  });
}

const CANDIDATE_CONFIG: NormalizedFindConfig = { order: [["id", "asc"]], withDeleted: false, take: MAX_CANDIDATES };
const WITH_DELETED: NormalizedFindConfig = { order: [["id", "asc"]], withDeleted: true };

function candidatesFor(redacted: string): Condition {
  return {
    kind: "and",
    items: [
      { kind: "compare", field: "redacted", op: "=", value: redacted },
      { kind: "compare", field: "type", op: "=", value: "secret" },
    ],
  };
}

export interface ImportedFirstUseParts {
  /** Runs store work at the store error boundary, on the primary. */
  read<T>(work: (store: ApiKeyStore) => Promise<T>): Promise<T>;
  /** Policy time: what revocation is judged by. */
  now(): Date;
  /** A steady clock in milliseconds, for the budget and the memory of failures. */
  counter(): number;
  /** Told after a first use, so that the gate learns when none is left to await. */
  afterFirstUse(): void;
  logger: Logger;
}

export class ImportedFirstUse {
  readonly #parts: ImportedFirstUseParts;
  /** Tokens (by hash) that matched no imported key, with when to forget them. */
  readonly #failures = new Map<string, number>();
  #running = 0;
  readonly #waiting: (() => void)[] = [];
  #second = 0;
  #startedThisSecond = 0;

  constructor(parts: ImportedFirstUseParts) {
    this.#parts = parts;
  }

  /**
   * The imported key awaiting its first use that `token` is the token of, now re-hashed to
   * `hash`; undefined when none is. Throws `unavailable` when this second's budget is spent.
   */
  async verify(token: string, hash: string): Promise<ApiKeyRecord | undefined> {
    if (this.#failedRecently(hash)) return undefined;
    const now = this.#parts.now();
    const rows = await this.#parts.read((store) => store.find(candidatesFor(redactToken(token)), CANDIDATE_CONFIG));
    for (const row of rows) {
      const stored = row.token_format === IMPORTED_TOKEN_FORMAT ? splitImportedHash(row.token) : undefined;
      if (!stored || endedBy(row, now)) continue;
      this.#spend();
      if (await this.#limited(() => scryptMatches(token, stored.salt, stored.hash))) return this.#rehash(row, hash);
    }
    this.#remember(hash);
    return undefined;
  }

  /** Forgets the tokens that matched nothing: an import may have brought their keys. */
  forgetFailures(): void {
    this.#failures.clear();
  }

  /** Replaces Medusa's hash with ours, unless another first use did already; answers the key as stored now. */
  async #rehash(candidate: ApiKeyRecord, hash: string): Promise<ApiKeyRecord | undefined> {
    const row = await this.#parts.read((store) =>
      store.transaction(async (tx) => {
        const [locked] = await tx.find({ kind: "compare", field: "id", op: "=", value: candidate.id }, WITH_DELETED, { forUpdate: true });
        if (!locked || (locked.token !== candidate.token && locked.token !== hash)) return undefined;
        if (locked.token !== hash) await tx.update([locked.id], { token: hash });
        return { ...locked, token: hash };
      }),
    );
    this.#parts.afterFirstUse();
    return row;
  }

  #failedRecently(hash: string): boolean {
    const until = this.#failures.get(hash);
    if (until === undefined) return false;
    if (until > this.#parts.counter()) return true;
    this.#failures.delete(hash);
    return false;
  }

  #remember(hash: string): void {
    if (this.#failures.size >= FAILURES_REMEMBERED) this.#failures.delete(this.#failures.keys().next().value!);
    this.#failures.set(hash, this.#parts.counter() + FAILURE_MEMORY_MS);
  }

  /** Counts one scrypt check against this second's budget, or refuses it. */
  #spend(): void {
    const second = Math.floor(this.#parts.counter() / 1000);
    if (second !== this.#second) {
      this.#second = second;
      this.#startedThisSecond = 0;
    }
    if (this.#startedThisSecond >= FIRST_USE_PER_SECOND) {
      // Once a second at most: a flood must not flood the log too.
      if (this.#startedThisSecond++ === FIRST_USE_PER_SECOND) this.#parts.logger.warn("express-api-keys: the budget for first uses of imported keys is spent for this second; refusing with 503");
      throw new ApiKeyError("unavailable", "Too many first uses of imported keys at once; try again in a second");
    }
    this.#startedThisSecond++;
  }

  async #limited<T>(work: () => Promise<T>): Promise<T> {
    while (this.#running >= FIRST_USE_CONCURRENCY) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    this.#running++;
    try {
      return await work();
    } finally {
      this.#running--;
      this.#waiting.shift()?.();
    }
  }
}

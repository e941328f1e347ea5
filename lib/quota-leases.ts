// Usage quotas without a database write on most uses. As rate limits lease uses from Redis
// (lib/rate-limit-leases.ts), an instance takes a lease of units from a key's `remaining` in the
// database with the same atomic conditional write one use takes (1 % of what is left, at most
// MAX_LEASE; one unit while under 100 are left), then spends it in memory. Units are taken from
// the database before they are spent, so however many instances lease, no more uses are admitted
// than the quota holds. The error is only the other way: units leased by one instance and not
// spent while another is refused, at most (instances - 1) x lease per key, given back when the
// service closes (a crash loses them).
//
// A lease is spent only while the key is as it was when the lease was taken (the same
// `updated_at`: an edit of `remaining` makes the instance lease again once it hears of it, and
// the units it held are lost, never added to the new value) and within the refill interval it
// was taken in (a refill starts the count afresh; the old interval's units go with it).
import type { Logger } from "./logger";
import { type QuotaConsumption, type QuotaRefill, refillIntervalStart } from "./quota";
import type { ApiKeyStore } from "./store";

/** The share of what is left one lease takes. */
const LEASE_SHARE = 0.01;
/** The most units one lease takes, so that what an instance holds unspent stays small. */
export const MAX_LEASE = 1000;
/** Leases kept at once; past this the oldest are forgotten (their units stay taken, unspent). */
const MAX_LEASES = 100_000;

/** Units of one key's quota taken from the store and held by this instance. */
export interface Lease {
  units: number;
  /** What the database had left once this lease was taken: `remaining` is this plus `units`. */
  left: number;
  /** The key's `updated_at` when the lease was taken. */
  version: number;
  /** When the refill interval the lease was taken in began; 0 for a quota without refill. */
  interval: number;
  /** When the lease was taken, for giving its units back. */
  takenAt: Date;
}

/** What a lease needs of a key: its quota as last read, its refill rule, and when it last changed. */
export interface QuotaKey {
  id: string;
  remaining?: number | null;
  refill?: QuotaRefill | null;
  updated_at?: Date;
}

/** What a use of a quota decided; `remaining` is what this instance knows is left. */
export type QuotaDecision = QuotaConsumption & { remaining: number };

export function leaseSize(remaining: number, cost: number): number {
  return Math.max(cost, Math.min(MAX_LEASE, Math.floor(remaining * LEASE_SHARE)));
}

export class QuotaLeases {
  readonly #leases = new Map<string, Lease>();
  /** Leases being taken, by key id. */
  readonly #taking = new Map<string, Promise<"leased" | "leased-quietly" | QuotaConsumption>>();
  readonly #store: ApiKeyStore;
  readonly #logger: Logger;

  constructor(store: ApiKeyStore, logger: Logger) {
    this.#store = store;
    this.#logger = logger;
  }

  /** The lease of this key that can pay `cost` now, with no I/O; undefined when there is none. Nothing is spent. */
  payable(key: QuotaKey, cost: number, now: Date): Lease | undefined {
    const lease = this.#leases.get(key.id);
    if (!lease || lease.units < cost) return undefined;
    if (lease.version !== (key.updated_at?.getTime() ?? 0) || lease.interval !== intervalOf(key, now)) return undefined;
    return lease;
  }

  /** Spends `cost` from a lease `payable` gave, answering what is left. */
  spend(lease: Lease, cost: number): QuotaDecision {
    lease.units -= cost;
    return { admitted: true, remaining: lease.left + lease.units, refilled: false };
  }

  /**
   * Pays `cost` from a lease, taking a new one from the store when the lease held cannot pay
   * (one at a time per key: uses that arrive meanwhile wait for it); near the end of a quota,
   * where a whole lease is refused, exactly `cost`.
   */
  async consume(key: QuotaKey, cost: number, now: Date): Promise<QuotaDecision | QuotaConsumption> {
    let refilled = false;
    for (;;) {
      const lease = this.payable(key, cost, now);
      if (lease) return { ...this.spend(lease, cost), refilled };
      const taking = this.#taking.get(key.id);
      if (taking) {
        await taking;
        continue;
      }
      const leasing = this.#lease(key, cost, now);
      this.#taking.set(key.id, leasing);
      let outcome: Awaited<typeof leasing>;
      try {
        outcome = await leasing;
      } finally {
        this.#taking.delete(key.id);
      }
      if (outcome === "leased") refilled = true;
      else if (outcome !== "leased-quietly") return outcome;
    }
  }

  /**
   * Takes a lease for the key from the store: "leased" when the write also refilled the quota,
   * "leased-quietly" otherwise; when no lease fits, the answer of a use of exactly `cost`.
   */
  async #lease(key: QuotaKey, cost: number, now: Date): Promise<"leased" | "leased-quietly" | QuotaConsumption> {
    const version = key.updated_at?.getTime() ?? 0;
    const held = this.#leases.get(key.id);
    const known = held && held.version === version ? held.left : (key.remaining ?? 0);
    const size = leaseSize(known, cost);
    const refill = key.refill ?? undefined;
    let taken = await this.#store.consumeQuota!(key.id, size, now, refill);
    if (taken.admitted && taken.remaining !== null) {
      this.#remember(key.id, { units: size, left: taken.remaining, version, interval: intervalOf(key, now), takenAt: now });
      return taken.refilled ? "leased" : "leased-quietly";
    }
    if (taken.admitted || taken.remaining === null || size === cost) return taken;
    // Less is left than a lease: this use takes exactly its cost, and later leases are sized by what is left.
    const refilledFirst = taken.refilled;
    taken = await this.#store.consumeQuota!(key.id, cost, now, refill);
    if (taken.remaining !== null) this.#remember(key.id, { units: 0, left: taken.remaining, version, interval: intervalOf(key, now), takenAt: now });
    return { ...taken, refilled: taken.refilled || refilledFirst };
  }

  #remember(id: string, lease: Lease): void {
    this.#leases.delete(id);
    if (this.#leases.size >= MAX_LEASES) this.#leases.delete(this.#leases.keys().next().value!);
    this.#leases.set(id, lease);
  }

  /** Gives every unspent unit back to its key, unless the key changed or was refilled since; failures are logged. */
  async close(): Promise<void> {
    const leases = [...this.#leases].filter(([, lease]) => lease.units > 0);
    this.#leases.clear();
    if (!this.#store.returnQuota) return;
    for (const [id, lease] of leases) {
      try {
        await this.#store.returnQuota(id, lease.units, lease.takenAt, new Date(lease.version));
      } catch (error) {
        this.#logger.warn(`express-api-keys: could not give ${lease.units} leased uses back to the quota of key ${id}`, error);
      }
    }
  }
}

function intervalOf(key: QuotaKey, now: Date): number {
  return key.refill ? refillIntervalStart(now, key.refill.interval).getTime() : 0;
}

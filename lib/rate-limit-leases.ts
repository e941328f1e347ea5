// Rate limits without a Redis round trip on most requests. An instance takes a small lease of
// uses from the shared counter at once (1% of a window's limit, at least the request's cost)
// and spends it locally until the lease runs out or the window ends. Leased uses are counted in
// Redis when they are taken, so the instances together never admit more than the limit: the
// only error is the other way, uses leased by one instance and left unspent while another is
// refused, at most (instances - 1) x lease per window. A limit under 200, or a window under 10
// seconds, gets leases of one use: exactly the shared counter, a request at a time.
import type { RateLimitState } from "./types";
import { type RateLimitCounter, type RateLimitDecision, type RateLimitWindow, distinctWindows, windowId } from "./usage-limits";

/** The share of a window's limit one lease takes. */
const LEASE_SHARE = 0.01;
/**
 * Windows shorter than this get no leases: a lease ends up to a second before its window (the
 * counter reports whole seconds), which would waste most of a short window's leases.
 */
const MIN_LEASED_DURATION_S = 10;
/** Leases kept at once; past this the oldest are forgotten (their uses stay counted, unspent). */
const MAX_LEASES = 100_000;

interface Lease {
  /** Uses taken from the shared counter and not spent yet. */
  units: number;
  /** When the window the uses were taken from ends (epoch ms). */
  until: number;
  /** What the shared counter had left when the lease was taken, for the headers. */
  shared: number;
}

/** What a use took from one window: units of its lease, and the lease itself when the use had to take one. */
interface Spent {
  lease: Lease;
  taken?: { units: number; refund(units: number): Promise<void> };
}

function leaseSize(window: RateLimitWindow, cost: number): number {
  if (window.duration < MIN_LEASED_DURATION_S) return cost;
  return Math.max(cost, Math.floor(window.limit * LEASE_SHARE));
}

/** Leases are kept per key and window, as the shared counter counts. */
function leaseName(id: string, window: RateLimitWindow): string {
  return `${id}\n${windowId(window)}`;
}

export class LeasedRateLimits implements RateLimitCounter {
  readonly #shared: RateLimitCounter;
  readonly #leases = new Map<string, Lease>();
  /** Leases being taken, by key and window. */
  readonly #taking = new Map<string, Promise<void>>();
  readonly #now: () => number;

  /** `now`: counter time, in epoch ms, as the shared counter's windows run. */
  constructor(shared: RateLimitCounter, now: () => number) {
    this.#shared = shared;
    this.#now = now;
  }

  /**
   * Spends `cost` from leases already held, with no I/O, when every window's lease covers it;
   * otherwise spends nothing and answers undefined, and `consume` decides.
   */
  consumeLocal(id: string, rules: readonly RateLimitWindow[], cost: number): RateLimitState | undefined {
    const now = this.#now();
    const windows = distinctWindows(rules);
    // Checked for every window before any is spent, so that a partial answer spends nothing.
    const leases: Lease[] = [];
    for (const window of windows) {
      const lease = this.#valid(leaseName(id, window), now);
      if (!lease || lease.units < cost) return undefined;
      leases.push(lease);
    }
    for (const lease of leases) lease.units -= cost;
    const tightest = this.#tightest(leases);
    return this.#state(windows[tightest]!, leases[tightest]!, now);
  }

  async consume(id: string, windows: readonly RateLimitWindow[], cost: number): Promise<RateLimitDecision> {
    const spent: ({ window: RateLimitWindow } & Spent)[] = [];
    for (const window of distinctWindows(windows)) {
      const taken = await this.#spend(id, window, cost);
      if (!("lease" in taken)) {
        await this.#giveBack(spent, cost);
        return taken;
      }
      spent.push({ window, ...taken });
    }
    const tightest = spent[this.#tightest(spent.map((entry) => entry.lease))]!;
    return {
      admitted: true,
      rate_limit: this.#state(tightest.window, tightest.lease, this.#now()),
      // A use the quota refuses takes nothing either.
      refund: () => this.#giveBack(spent, cost),
    };
  }

  /**
   * Undoes what a refused use took from the windows before the one that refused: the units it
   * spent go back to their leases, and the leases taken for it go back to the shared counter
   * (as much of them as no other use has spent meanwhile), so that a refused use takes nothing
   * from any window, on any instance.
   */
  async #giveBack(spent: Spent[], cost: number): Promise<void> {
    for (const entry of spent) {
      entry.lease.units += cost;
      if (!entry.taken) continue;
      const units = Math.min(entry.lease.units, entry.taken.units);
      entry.lease.units -= units;
      await entry.taken.refund(units);
    }
  }

  /** Which of the leases has the fewest uses left (the first of those): the window to report. */
  #tightest(leases: Lease[]): number {
    let tightest = 0;
    for (let i = 1; i < leases.length; i++) if (this.#left(leases[i]!) < this.#left(leases[tightest]!)) tightest = i;
    return tightest;
  }

  /**
   * Takes `cost` from the window's lease, taking a new lease first when it cannot pay. One
   * lease is taken at a time per key and window: concurrent uses wait for it rather than each
   * taking its own, which would leave most of them unspent.
   */
  async #spend(id: string, window: RateLimitWindow, cost: number): Promise<Spent | RateLimitDecision> {
    const name = leaseName(id, window);
    for (;;) {
      const now = this.#now();
      const lease = this.#valid(name, now);
      if (lease && lease.units >= cost) {
        // Spent at once, with no await before it, so concurrent uses never spend one unit twice.
        lease.units -= cost;
        return { lease };
      }
      const pending = this.#taking.get(name);
      if (pending) {
        await pending;
        continue;
      }
      const taking = this.#takeLease(id, window, cost);
      this.#taking.set(name, taking.then(() => undefined, () => undefined));
      let decision;
      try {
        decision = await taking;
      } finally {
        this.#taking.delete(name);
      }
      if (!decision.admitted) return decision;
      // `reset` is rounded up to whole seconds: the lease ends a second early rather than
      // spill into the next window, where its uses were never counted.
      const until = now + (decision.rate_limit.reset - 1) * 1000;
      const kept = this.#keep(name, { units: decision.units, until, shared: decision.rate_limit.remaining }, now);
      kept.units -= cost;
      return { lease: kept, taken: { units: decision.units, refund: (units) => decision.refund(units) } };
    }
  }

  #valid(name: string, now: number): Lease | undefined {
    const lease = this.#leases.get(name);
    return lease && lease.until > now ? lease : undefined;
  }

  /** A lease of `leaseSize` uses, or of just `cost` when the counter has less left than a lease. */
  async #takeLease(id: string, window: RateLimitWindow, cost: number) {
    const size = leaseSize(window, cost);
    let decision = await this.#shared.consume(id, [window], size);
    let units = size;
    if (!decision.admitted && size > cost) {
      decision = await this.#shared.consume(id, [window], cost);
      units = cost;
    }
    return decision.admitted ? { ...decision, units } : decision;
  }

  /** Keeps a new lease; one still valid for the same window (taken concurrently) absorbs it. */
  #keep(name: string, fresh: Lease, now: number): Lease {
    const current = this.#valid(name, now);
    if (current) {
      current.units += fresh.units;
      current.shared = Math.min(current.shared, fresh.shared);
      return current;
    }
    this.#leases.delete(name);
    this.#leases.set(name, fresh);
    if (this.#leases.size > MAX_LEASES) this.#leases.delete(this.#leases.keys().next().value!);
    return fresh;
  }

  #left(lease: Lease): number {
    return lease.shared + lease.units;
  }

  #state(window: RateLimitWindow, lease: Lease, now: number): RateLimitState {
    return { name: window.name, limit: window.limit, remaining: this.#left(lease), reset: Math.max(0, Math.ceil((lease.until - now) / 1000)) };
  }
}

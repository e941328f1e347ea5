// Fixed rate-limit windows counted in this process's memory: every window of every key when
// there is no Redis, and the fallback while Redis cannot be reached. rate-limiter-flexible's
// memory store times each window with a setTimeout, which Node cannot arm past 2^31 - 1 ms
// (about 24.8 days): a 30-day window fired at once and forgot its count. Here a window ends by
// comparing instants, so any length works; and one map holds the windows of every key, each
// entry living until its own window ends, so no key's windows can push another key's count out.
// Memory is bounded by the windows in use: ended ones are dropped when met and by a sweep.

/** What one use did to one window. */
export interface WindowCount {
  /** Uses counted in the window, this one included when it was admitted. */
  consumed: number;
  /** Whether the use fit within the limit (a refused use is not counted). */
  admitted: boolean;
  /** Milliseconds until the window ends. */
  msBeforeNext: number;
}

interface Window {
  consumed: number;
  endsAt: number;
}

/** How often ended windows are swept out, in milliseconds. */
const SWEEP_INTERVAL_MS = 60_000;

export class MemoryWindows {
  readonly #windows = new Map<string, Window>();
  readonly #now: () => number;
  #lastSweep: number;

  /** `now`: counter time, in epoch milliseconds, as Redis TTLs run. */
  constructor(now: () => number) {
    this.#now = now;
    this.#lastSweep = now();
  }

  /** Counts `cost` uses in the window `name` of `durationMs`, if they fit within `limit`; a refused use counts nothing. */
  consume(name: string, cost: number, limit: number, durationMs: number): WindowCount {
    const now = this.#now();
    this.#sweep(now);
    let window = this.#windows.get(name);
    if (!window || window.endsAt <= now) {
      window = { consumed: 0, endsAt: now + durationMs };
      this.#windows.set(name, window);
    }
    const admitted = window.consumed + cost <= limit;
    if (admitted) window.consumed += cost;
    return { consumed: admitted ? window.consumed : window.consumed + cost, admitted, msBeforeNext: window.endsAt - now };
  }

  /** Gives back `units` to the window `name`, if it has not ended; never below zero. */
  refund(name: string, units: number): void {
    const window = this.#windows.get(name);
    if (window && window.endsAt > this.#now()) window.consumed = Math.max(0, window.consumed - units);
  }

  /** How many windows are held (for tests of the bound). */
  get size(): number {
    return this.#windows.size;
  }

  #sweep(now: number): void {
    if (now - this.#lastSweep < SWEEP_INTERVAL_MS) return;
    this.#lastSweep = now;
    for (const [name, window] of this.#windows) if (window.endsAt <= now) this.#windows.delete(name);
  }
}

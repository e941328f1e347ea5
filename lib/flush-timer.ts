// When background writes coalesced in memory go out: one timer at a time, set by the first write
// after a flush, with jitter so that instances started together do not all flush together.
export class FlushTimer {
  readonly #intervalMs: number;
  readonly #flush: () => Promise<void>;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(intervalMs: number, flush: () => Promise<void>) {
    this.#intervalMs = intervalMs;
    this.#flush = flush;
  }

  /** Sets the timer unless it is set already (or stopped); it never keeps the process alive. */
  schedule(): void {
    if (this.#timer || this.#stopped) return;
    const delay = this.#intervalMs * (0.9 + Math.random() * 0.2);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#flush();
    }, delay);
    this.#timer.unref();
  }

  /** No more timers: the owner makes its last flush itself. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

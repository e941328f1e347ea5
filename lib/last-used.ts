// Records when keys were last used without a database write on the request path: uses are
// coalesced in memory and written in one statement per flush, so each key is written at most
// once per interval however busy it is.
import { FlushTimer } from "./flush-timer";
import type { Logger } from "./logger";
import type { ApiKeyStore } from "./store";

/** Keys written per statement, well under PostgreSQL's limit of 65,535 bind parameters. */
const BATCH = 1000;
/** Uses kept while the database is unreachable; beyond this the oldest are dropped. */
const MAX_PENDING = 100_000;

export class LastUsedRecorder {
  readonly #pending = new Map<string, Date>();
  readonly #store: Pick<ApiKeyStore, "recordLastUsed">;
  readonly #logger: Logger;
  readonly #timer: FlushTimer;
  #flushing: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(store: Pick<ApiKeyStore, "recordLastUsed">, intervalMs: number, logger: Logger) {
    this.#store = store;
    this.#timer = new FlushTimer(intervalMs, () => this.flush());
    this.#logger = logger;
  }

  /** Keys whose last use waits for the next flush. */
  get pending(): number {
    return this.#pending.size;
  }

  /** Notes a use; the write happens at the next flush. */
  record(id: string, at: Date): void {
    if (this.#closed) return;
    this.#keepLatest(id, at);
    if (this.#pending.size > MAX_PENDING) this.#pending.delete(this.#pending.keys().next().value!);
    this.#timer.schedule();
  }

  /** Keeps the later of `at` and the use already pending for `id`. */
  #keepLatest(id: string, at: Date): void {
    const known = this.#pending.get(id);
    // getTime(), not `<` on the dates: comparing Date objects converts both through
    // Symbol.toPrimitive, which costs more here than the rest of recording a use.
    if (known === undefined || known.getTime() < at.getTime()) this.#pending.set(id, at);
  }

  /** Writes every pending use now. Failures are logged and the uses kept for the next flush. */
  flush(): Promise<void> {
    this.#flushing = this.#flushing.then(() => this.#write());
    return this.#flushing;
  }

  async #write(): Promise<void> {
    if (this.#pending.size === 0) return;
    const uses = [...this.#pending];
    this.#pending.clear();
    for (let i = 0; i < uses.length; i += BATCH) {
      const batch = uses.slice(i, i + BATCH);
      try {
        await this.#store.recordLastUsed(batch);
      } catch (error) {
        for (const [id, at] of batch) this.#keepLatest(id, at);
        this.#logger.warn(`express-api-keys: could not record last_used_at for ${batch.length} keys; will retry`, error);
        this.#timer.schedule();
      }
    }
  }

  /** Stops the timer and writes what is pending. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#timer.stop();
    await this.flush();
  }
}

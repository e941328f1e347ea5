// Logs a run of failures once when it starts and once when it ends, never once per failure:
// a flood of bad input must not turn into a flood of log lines.
import type { Logger } from "../../lib/logger";

export interface FailureRunMessages {
  /** Logged at the first failure of a run. */
  start: string;
  /** Logged at the first success once no failure has been seen for the quiet period. */
  end: string;
}

export class FailureRun {
  readonly #logger: Logger;
  readonly #now: () => Date;
  readonly #quietMs: number;
  readonly #messages: FailureRunMessages;
  #failing = false;
  #lastFailure = 0;
  #count = 0;

  /** `quietMs`: how long failures must stop before the run counts as over (0: at the next success). */
  constructor(logger: Logger, now: () => Date, quietMs: number, messages: FailureRunMessages) {
    this.#logger = logger;
    this.#now = now;
    this.#quietMs = quietMs;
    this.#messages = messages;
  }

  failed(...details: unknown[]): void {
    this.#lastFailure = this.#now().getTime();
    this.#count++;
    if (this.#failing) return;
    this.#failing = true;
    this.#logger.warn(this.#messages.start, ...details);
  }

  succeeded(): void {
    if (!this.#failing || this.#now().getTime() - this.#lastFailure < this.#quietMs) return;
    this.#logger.warn(`${this.#messages.end} (after ${this.#count} ${this.#count === 1 ? "failure" : "failures"})`);
    this.#failing = false;
    this.#count = 0;
  }
}

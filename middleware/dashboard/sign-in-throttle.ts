// Sign-in throttles: at most so many sign-ins per key, or per client address, in a window,
// counted by rate-limiter-flexible in the memory of this process, where the sessions live too.
// Windows run on real time, not the service's clock: they pace requests, not keys.
import { RateLimiterMemory, RateLimiterRes } from "rate-limiter-flexible";

/** At most `limit` sign-ins in a window of `duration` seconds. */
export interface SignInLimit {
  limit: number;
  duration: number;
}

export class SignInThrottle {
  readonly #limiter: RateLimiterMemory;

  constructor({ limit, duration }: SignInLimit) {
    this.#limiter = new RateLimiterMemory({ points: limit, duration });
  }

  /** Counts one sign-in for `id`: 0 when it is within the limit, else the whole seconds to wait. */
  async take(id: string): Promise<number> {
    try {
      await this.#limiter.consume(id);
      return 0;
    } catch (refused) {
      if (refused instanceof RateLimiterRes) return Math.max(1, Math.ceil(refused.msBeforeNext / 1000));
      throw refused;
    }
  }
}

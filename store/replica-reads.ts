// Sends the reads a read replica may serve (lib/replica-reads.ts) to the replica once it has
// caught up (replica-freshness.ts), and to the primary otherwise. A replica that fails, or does
// not answer within the timeout, costs the read that found out its timeout and no more: it is
// then left alone for RETRY_MS, after which one read at a time tries it again while the others
// go to the primary. One warning is logged when the replica starts failing and one when it is back.
import { performance } from "node:perf_hooks";
import { redactError } from "../lib/errors";
import type { Logger } from "../lib/logger";
import type { ReplicaReadKind, ReplicaReadOptions, ReplicaReads } from "../lib/replica-reads";
import type { ApiKeyStore } from "../lib/store";
import { FailureRun } from "./cache/failure-run";
import type { ReplicaFreshness } from "./replica-freshness";

/** After a failure, how long the replica is left alone. */
const RETRY_MS = 1_000;

export class ReplicaReadRouter implements ReplicaReads {
  readonly #replica: ApiKeyStore;
  readonly #freshness: ReplicaFreshness;
  readonly #timeout: number;
  readonly #failures: FailureRun;
  /** While the replica is failing: when it may be tried again (0 while it is not). */
  #retryAt = 0;
  /** A read is trying the failing replica again. */
  #trying = false;

  /** `replica`: a store on the replica; only its reads are ever called. `timeout`: in milliseconds. */
  constructor(replica: ApiKeyStore, freshness: ReplicaFreshness, timeout: number, logger: Logger) {
    this.#replica = replica;
    this.#freshness = freshness;
    this.#timeout = timeout;
    this.#failures = new FailureRun(logger, () => new Date(), 0, {
      start: `express-api-keys: the read replica failed or did not answer within ${timeout} ms; reading from \`database\` and trying the replica again every second`,
      end: "express-api-keys: the read replica answers again",
    });
  }

  async read<T>(kind: ReplicaReadKind, primary: ApiKeyStore, work: (store: ApiKeyStore) => Promise<T>, options: ReplicaReadOptions<T>): Promise<T> {
    if (!options.latest && this.#mayTry()) {
      const answer = await this.#fromReplica(kind, work);
      if (answer && options.found(answer.value)) return answer.value;
    }
    return work(primary);
  }

  #mayTry(): boolean {
    if (this.#retryAt === 0) return true;
    if (this.#trying || performance.now() < this.#retryAt) return false;
    this.#trying = true;
    return true;
  }

  /** The replica's answer, or undefined when it is behind, fails or is too slow. */
  async #fromReplica<T>(kind: ReplicaReadKind, work: (store: ApiKeyStore) => Promise<T>): Promise<{ value: T } | undefined> {
    const caughtUp = this.#freshness.caughtUp(kind);
    if (caughtUp === false) {
      // Nothing was asked of the replica, so this says nothing of its health.
      this.#trying = false;
      return undefined;
    }
    const attempt = (async () => ((await caughtUp) ? { value: await work(this.#replica) } : undefined))();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the read replica did not answer within ${this.#timeout} ms`)), this.#timeout);
    });
    try {
      const answer = await Promise.race([attempt, timeout]);
      this.#retryAt = 0;
      this.#trying = false;
      this.#failures.succeeded();
      return answer;
    } catch (error) {
      // An abandoned attempt that fails later is handled by the race, which still listens to it.
      this.#retryAt = performance.now() + RETRY_MS;
      this.#trying = false;
      this.#failures.failed(redactError(error));
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }
}

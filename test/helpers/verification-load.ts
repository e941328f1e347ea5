// Steady traffic for tests that change Redis under a running app: HTTP requests through
// apiKeyAuth from several workers, each answer judged against what the token must get, and
// the propagation bound every instance must meet after a change.
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import type { ApiKeyService } from "../../lib/service";
import { createApp } from "./create-app";

/** How soon a change made on one instance must be seen by every other. */
export const BOUND_MS = 100;

const basic = (token: string) => `Basic ${Buffer.from(`${token}:`).toString("base64")}`;

/** Polls `check` until it holds, failing past BOUND_MS; returns the time it took. */
export async function withinBound(check: () => Promise<boolean>, label: string): Promise<number> {
  const start = performance.now();
  while (!(await check())) {
    if (performance.now() - start > BOUND_MS) assert.fail(`${label}: not seen within ${BOUND_MS} ms`);
    await sleep(1);
  }
  return performance.now() - start;
}

/** A plain node:http server with apiKeyAuth on `/admin`, listening on a free port. */
export function listen(service: ApiKeyService): Promise<http.Server> {
  const server = createApp("http", { service });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

/**
 * Requests from several workers, each a random token to a random instance, each answer judged:
 * a valid token must get 200, a refused one 401, a key revoked during the run 401 once its
 * revocation has had BOUND_MS to reach every instance; nothing may get a 5xx.
 */
export class Load {
  readonly #ports: number[];
  readonly #tokens = new Map<string, "valid" | "refused">();
  /** Token -> when its revocation was started and when it returned. */
  readonly #revocations = new Map<string, { started: number; done?: number }>();
  #stopped = false;
  requests = 0;
  slow = 0;
  readonly failures: string[] = [];

  constructor(servers: http.Server[]) {
    this.#ports = servers.map((server) => (server.address() as AddressInfo).port);
  }

  expect(token: string, answer: "valid" | "refused"): void {
    this.#tokens.set(token, answer);
  }

  revoking(token: string): void {
    this.#revocations.set(token, { started: performance.now() });
  }

  revoked(token: string): void {
    this.#revocations.get(token)!.done = performance.now();
  }

  async run(workers: number): Promise<void> {
    await Promise.all(Array.from({ length: workers }, () => this.#work()));
  }

  stop(): void {
    this.#stopped = true;
  }

  async #work(): Promise<void> {
    const tokens = [...this.#tokens.keys()];
    while (!this.#stopped) {
      const token = tokens[Math.floor(Math.random() * tokens.length)]!;
      const port = this.#ports[Math.floor(Math.random() * this.#ports.length)]!;
      const started = performance.now();
      let status: number;
      try {
        const response = await fetch(`http://127.0.0.1:${port}/admin`, { headers: { Authorization: basic(token) } });
        await response.arrayBuffer();
        status = response.status;
      } catch (error) {
        this.failures.push(`request failed: ${String(error)}`);
        continue;
      }
      this.requests++;
      if (performance.now() - started > 250) this.slow++;
      this.#judge(token, status, started, performance.now());
    }
  }

  #judge(token: string, status: number, started: number, ended: number): void {
    const label = `${this.#tokens.get(token)} token answered ${status}`;
    if (status >= 500) return void this.failures.push(label);
    const revocation = this.#revocations.get(token);
    const expected = revocation ? this.#doomedAnswer(revocation, started, ended) : this.#tokens.get(token) === "valid" ? 200 : 401;
    if (expected !== "either" && status !== expected) this.failures.push(revocation ? `revoked during the run, ${label}` : label);
  }

  /** Answered before its revocation began: valid; asked once it has had BOUND_MS to reach every instance: refused; else either. */
  #doomedAnswer(revocation: { started: number; done?: number }, started: number, ended: number): 200 | 401 | "either" {
    if (ended < revocation.started) return 200;
    if (revocation.done !== undefined && started > revocation.done + BOUND_MS) return 401;
    return "either";
  }
}

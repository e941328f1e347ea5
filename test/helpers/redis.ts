// Redis for tests: the shared server, gated like PostgreSQL (fail under CI, skip loudly
// elsewhere), with a prefix per test so that cleaning up touches nobody else's keys; and
// private servers on their own ports for tests that stop Redis.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import net from "node:net";
import { Redis } from "ioredis";
import { skipOrFail } from "./services";

export const REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

export async function connectRedis(context: Mocha.Context): Promise<Redis | undefined> {
  const client = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  try {
    await client.connect();
    await client.ping();
    return client;
  } catch (error) {
    client.disconnect();
    return skipOrFail(context, "Redis", REDIS_URL, error);
  }
}

export function testPrefix(): string {
  return `test:${randomBytes(6).toString("hex")}:`;
}

/** Deletes the keys under one prefix (a SCAN, never FLUSHDB: the server is shared). */
export async function deletePrefix(client: Redis, prefix: string): Promise<void> {
  let cursor = "0";
  do {
    const [next, keys] = await client.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 500);
    cursor = next;
    if (keys.length > 0) await client.del(...keys);
  } while (cursor !== "0");
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** A redis-server of the test's own on `port`, which the test may kill and start again. */
export class PrivateRedis {
  #process: ChildProcess | undefined;
  constructor(readonly port: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** `args`: more settings, such as `--cluster-enabled yes`; a config file first makes `--port` and the rest override it. */
  async start(args: string[] = [], config?: string): Promise<void> {
    const settings = ["--port", String(this.port), "--bind", "127.0.0.1", ...(config ? [] : ["--save", "", "--appendonly", "no"]), ...args];
    const child = spawn("redis-server", config ? [config, ...settings] : settings, { stdio: "ignore" });
    this.#process = child;
    const probe = new Redis(this.url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    probe.on("error", () => {}); // refused until the server is up; the loop below retries
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          await probe.connect();
          await probe.ping();
          return;
        } catch (error) {
          if (attempt > 100 || child.exitCode !== null) throw error;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
    } finally {
      probe.disconnect();
    }
  }

  async stop(): Promise<void> {
    const child = this.#process;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
  }
}

/** An ioredis client as `initialize()` opens one from a URL: no offline queue, quick reconnects. */
export function serviceClient(url: string): Redis {
  const client = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy: (attempt) => Math.min(attempt * 50, 200) });
  client.on("error", () => {});
  return client;
}

/** Waits, polling every 25 ms for up to 10 s, until `condition` holds; fails naming `what` otherwise. */
export async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 25));
  assert.ok(condition(), `timed out waiting for ${what}`);
}

/**
 * Hooks for a suite that watches the shared Redis: a raw client for the whole suite, and a
 * fresh key prefix for each test, whose keys are deleted after it.
 */
export function redisPerTest(): { readonly client: Redis; readonly prefix: string } {
  let client: Redis | undefined;
  let prefix = "";
  before(async function () {
    client = await connectRedis(this);
  });
  after(() => client?.disconnect());
  beforeEach(() => {
    prefix = testPrefix();
  });
  afterEach(async () => {
    if (client) await deletePrefix(client, prefix);
  });
  return {
    get client() {
      return client!;
    },
    get prefix() {
      return prefix;
    },
  };
}

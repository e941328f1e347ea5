// In-process micro-benchmark of the warm path, no HTTP: median nanoseconds per call of
// `authenticate`, of the middleware on a plain req/res, with a secret, a publishable and a
// rate-limited key, next to a floor measured in the same run: the checksum check, one SHA-256
// and one Map lookup, which any warm verification must pay. Beside them, the two paths that pay
// an HMAC-SHA-256: a forged token (refused by its tag) and a warm key under a pepper. Last, the
// warm `authenticate` loop once more under V8's sampling profiler: where its time goes. Run with
// `node --import tsx bench/micro.ts`; needs Redis for the rate-limited case (BENCH_REDIS).
// Prints a table on stderr and one JSON line (MicroResult) on stdout, which `npm run bench` reads.
import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { Session } from "node:inspector/promises";
import { Redis } from "ioredis";
import { apiKeyAuth, initialize } from "../index";
import { generateToken, hashToken, parseToken } from "../lib/tokens";
import { selfTimes } from "./profile";

const REDIS = process.env.BENCH_REDIS ?? "redis://127.0.0.1:6379";
/** Calls per sample, and samples per case: the median of the samples is reported. */
const CALLS = Number(process.env.MICRO_CALLS ?? 20_000);
const SAMPLES = Number(process.env.MICRO_SAMPLES ?? 15);

export interface MicroResult {
  /** Interleaved samples per case, and calls per sample. */
  runs: number;
  calls: number;
  floor_ns: number;
  authenticate_ns: number;
  /** The middleware with a secret key, on a plain req/res. */
  middleware_ns: number;
  /** The same, on a service with verification analytics off (`usageAnalytics: false`). */
  middleware_no_analytics_ns: number;
  publishable_ns: number;
  rate_limited_ns: number;
  /** `authenticate` of a checksum-valid token whose tag is wrong: refused before any cache. */
  forged_ns: number;
  /** A warm `authenticate` on a service with a pepper (its tokens hashed by HMAC-SHA-256). */
  peppered_ns: number;
  /** A warm `authenticate` sampled by the profiler: the functions with most self time, in ns per call. */
  authenticate_profile: { name: string; ns: number }[];
}

/** How long the profiled loop runs, and how often the profiler samples it (microseconds). */
const PROFILE_MS = 3000;
const SAMPLING_US = 50;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/**
 * Median ns per call of each case. The cases run interleaved, a sample of each per round, so
 * that drift on a busy machine hits every case alike and the ratios to the floor stay fair.
 */
async function measure(cases: (() => unknown)[]): Promise<number[]> {
  for (const run of cases) for (let i = 0; i < 3; i++) await run(); // warm-up: JIT and caches
  const samples: number[][] = cases.map(() => []);
  for (let round = 0; round < SAMPLES; round++) {
    for (const [i, run] of cases.entries()) {
      const start = process.hrtime.bigint();
      await run();
      samples[i]!.push(Number(process.hrtime.bigint() - start) / CALLS);
    }
  }
  return samples.map(median);
}

/** A request as node:http hands it to middleware, with just the header the route reads. */
function request(headers: Record<string, string>): IncomingMessage {
  return { headers } as unknown as IncomingMessage;
}

const response = { setHeader() {}, statusCode: 200 } as unknown as ServerResponse;

/** Runs the middleware CALLS times, one call at a time, each answering before the next starts. */
function middlewareLoop(middleware: ReturnType<typeof apiKeyAuth>, headers: Record<string, string>): () => Promise<void> {
  return async () => {
    let answered = false;
    let wake: (() => void) | undefined;
    let failure: unknown;
    const next = (error?: unknown) => {
      failure = error;
      answered = true;
      wake?.();
    };
    for (let i = 0; i < CALLS; i++) {
      answered = false;
      // A fresh request each time, as HTTP would hand it over.
      middleware(request(headers), response, next);
      // Waits only when the middleware answers later (a miss, or the async path).
      if (!answered) await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
      if (failure !== undefined) throw failure instanceof Error ? failure : new Error(JSON.stringify(failure));
    }
  };
}

/**
 * Where the time of `run` (which makes `calls` calls) goes: V8's sampling profiler over it for
 * PROFILE_MS, and the self time of each function, in nanoseconds per call, the largest first.
 */
async function profile(run: () => Promise<void>, calls: number): Promise<{ name: string; ns: number }[]> {
  const session = new Session();
  session.connect();
  try {
    await session.post("Profiler.enable");
    await session.post("Profiler.setSamplingInterval", { interval: SAMPLING_US });
    await session.post("Profiler.start");
    let made = 0;
    for (const until = performance.now() + PROFILE_MS; performance.now() < until; made += calls) await run();
    const { profile: sampled } = await session.post("Profiler.stop");
    const { functions } = selfTimes(sampled);
    return [...functions]
      .map(([name, { time }]) => ({ name, ns: (time * 1000) / made }))
      .sort((a, b) => b.ns - a.ns)
      .slice(0, 8);
  } finally {
    session.disconnect();
  }
}

/** Deletes what the run left in Redis (cache entries, rate-limit counters): its own prefix only, never FLUSHDB. */
async function deletePrefix(prefix: string): Promise<void> {
  const redis = new Redis(REDIS);
  try {
    for await (const keys of redis.scanStream({ match: `${prefix}*`, count: 500 }) as AsyncIterable<string[]>) {
      if (keys.length > 0) await redis.del(...keys);
    }
  } finally {
    redis.disconnect();
  }
}

async function main(): Promise<void> {
  const prefix = `bench:micro:${randomBytes(4).toString("hex")}:`;
  const service = await initialize({ database: "pglite://memory", redis: REDIS, cache: { redisPrefix: prefix } });
  // A service that counts nothing, for what verification analytics cost on the warm path.
  const uncounted = await initialize({ database: "pglite://memory", redis: false, usageAnalytics: false });
  const peppered = await initialize({ database: "pglite://memory", redis: false, pepper: randomBytes(32).toString("hex") });
  try {
    const secret = await service.createApiKeys({ title: "micro secret", type: "secret", created_by: "bench" });
    const publishable = await service.createApiKeys({ title: "micro publishable", type: "publishable", created_by: "bench" });
    await service.updateLinks(publishable.id, { add: ["sc_1", "sc_2", "sc_3", "sc_4", "sc_5"] });
    const limited = await service.createApiKeys({
      title: "micro rate-limited",
      type: "secret",
      created_by: "bench",
      rate_limits: [{ name: "bench", limit: 1_000_000_000, duration: 60 }],
    });

    const uncountedSecret = await uncounted.createApiKeys({ title: "micro secret", type: "secret", created_by: "bench" });
    const pepperedSecret = await peppered.createApiKeys({ title: "micro secret", type: "secret", created_by: "bench" });
    // Tagged under a key of its own, not the deployment's: well formed, with a valid checksum.
    const forged = generateToken("secret", randomBytes(32));

    const basic = (token: string) => ({ authorization: `Basic ${Buffer.from(`${token}:`).toString("base64")}` });
    if ((await service.authenticate(forged)) !== false) throw new Error("a forged token authenticated");
    if (!(await peppered.authenticate(pepperedSecret.token))) throw new Error("the peppered key did not authenticate");
    const map = new Map([[hashToken(secret.token), secret]]);
    let sink = 0;
    const authenticateLoop = async () => {
      for (let i = 0; i < CALLS; i++) if (await service.authenticate(secret.token)) sink++;
    };
    const medians = await measure([
      () => {
        for (let i = 0; i < CALLS; i++) if (parseToken(secret.token) && map.get(hashToken(secret.token))) sink++;
      },
      authenticateLoop,
      middlewareLoop(apiKeyAuth({ service }), basic(secret.token)),
      middlewareLoop(apiKeyAuth({ type: "publishable", service }), { "x-publishable-api-key": publishable.token }),
      middlewareLoop(apiKeyAuth({ service }), basic(limited.token)),
      middlewareLoop(apiKeyAuth({ service: uncounted }), basic(uncountedSecret.token)),
      async () => {
        for (let i = 0; i < CALLS; i++) if ((await service.authenticate(forged)) === false) sink++;
      },
      async () => {
        for (let i = 0; i < CALLS; i++) if (await peppered.authenticate(pepperedSecret.token)) sink++;
      },
    ]);
    if (sink === 0) throw new Error("nothing authenticated");
    const authenticateProfile = await profile(authenticateLoop, CALLS);
    const [floor, authenticate, secretMiddleware, publishableMiddleware, limitedMiddleware, uncountedMiddleware, forgedRefused, pepperedAuthenticate] = medians as [
      number,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
    ];

    const rows: [string, number][] = [
      ["floor: checksum + SHA-256 + Map lookup", floor],
      ["authenticate(token), warm", authenticate],
      ["apiKeyAuth secret, warm, plain req/res", secretMiddleware],
      ["apiKeyAuth publishable, warm, 5 sales channels", publishableMiddleware],
      ["apiKeyAuth secret with a rate limit never reached", limitedMiddleware],
      ["apiKeyAuth secret, warm, usage analytics off", uncountedMiddleware],
      ["authenticate(forged token), refused by its tag", forgedRefused],
      ["authenticate(token), warm, with a pepper", pepperedAuthenticate],
    ];
    console.error(`median ns per call (${SAMPLES} interleaved samples of ${CALLS} calls), node ${process.version}`);
    for (const [label, ns] of rows) console.error(`${label.padEnd(52)} ${ns.toFixed(0).padStart(7)} ns  ${(ns / floor).toFixed(2)}x floor`);
    console.error("where a warm authenticate's time goes (self time, ns per call):");
    for (const { name, ns } of authenticateProfile) console.error(`  ${name.padEnd(60)} ${ns.toFixed(0).padStart(5)} ns`);
    const result: MicroResult = {
      runs: SAMPLES,
      calls: CALLS,
      floor_ns: floor,
      authenticate_ns: authenticate,
      middleware_ns: secretMiddleware,
      middleware_no_analytics_ns: uncountedMiddleware,
      publishable_ns: publishableMiddleware,
      rate_limited_ns: limitedMiddleware,
      forged_ns: forgedRefused,
      peppered_ns: pepperedAuthenticate,
      authenticate_profile: authenticateProfile,
    };
    console.log(JSON.stringify(result));
  } finally {
    await service.close();
    await uncounted.close();
    await peppered.close();
    await deletePrefix(prefix);
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});

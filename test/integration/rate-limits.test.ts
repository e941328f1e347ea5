// The rate limit engine (store/rate-limiters.ts) on a real Redis shared by two instances, as two
// app instances would have: exact per window, several windows, cost, refunds, and per-instance
// counting while Redis is down, logged once per outage. The suites of two instances run on one
// Redis and on a Redis Cluster of three masters.
import assert from "node:assert/strict";
import type { Cluster, Redis } from "ioredis";
import type { Logger } from "../../lib/logger";
import type { RateLimitWindow } from "../../lib/usage-limits";
import { LeasedRateLimits } from "../../lib/rate-limit-leases";
import { RateLimiters } from "../../store/rate-limiters";
import { PrivateRedis, freePort, serviceClient, testPrefix, until } from "../helpers/redis";
import { onEveryRedis } from "../helpers/redis-topologies";

/** A logger that keeps its lines. */
function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return { lines, warn: (message) => void lines.push(message), error: (message) => void lines.push(message) };
}

const admitted = async (results: Promise<{ admitted: boolean }>[]) => (await Promise.all(results)).filter((result) => result.admitted).length;

onEveryRedis("rate limits on a shared Redis, two instances", (redis) => {
  let shared: Redis | Cluster;
  let prefix: string;
  let clients: (Redis | Cluster)[];
  let engines: [RateLimiters, RateLimiters];
  // A generous timeout: a loaded test machine must not look like a Redis outage.
  const open = (client: Redis | Cluster, logger: Logger = recordingLogger()) => new RateLimiters({ redis: client, prefix, timeout: 5000, logger, now: Date.now });

  beforeEach(async () => {
    shared = redis().admin;
    prefix = testPrefix();
    clients = [await redis().client(), await redis().client()];
    engines = [open(clients[0]!), open(clients[1]!)];
  });
  afterEach(async () => {
    for (const client of clients) client.disconnect();
    await redis().deletePrefix(prefix);
  });
  const pick = (i: number) => engines[i % 2]!;

  it("30 concurrent uses against 10 per minute admit exactly 10 across both instances, counted under the prefix", async () => {
    const windows = [{ name: "minute", limit: 10, duration: 60 }];
    assert.equal(await admitted(Array.from({ length: 30 }, (_, i) => pick(i).consume("apk_a", windows, 1))), 10);
    assert.equal(await shared.get(`${prefix}rl:10:60:apk_a`), "10", "refused uses are given back");
    const refused = await engines[0].consume("apk_a", windows, 1);
    assert.equal(refused.admitted, false);
    assert.equal(refused.rate_limit.name, "minute");
    assert.equal(refused.rate_limit.remaining, 0);
    assert.ok(refused.rate_limit.reset >= 1 && refused.rate_limit.reset <= 60);
    // Another key has windows of its own.
    assert.equal((await engines[1].consume("apk_b", windows, 1)).admitted, true);
  });

  it("10 per second admits at most 10 per window across both instances, and 10 again in the next window", async function () {
    this.timeout(20_000);
    const windows = [{ name: "second", limit: 10, duration: 1 }];
    const times: number[] = [];
    const end = Date.now() + 2600;
    const worker = async (i: number) => {
      while (Date.now() < end) {
        if ((await pick(i).consume("apk_s", windows, 1)).admitted) times.push(Date.now());
      }
    };
    await Promise.all(Array.from({ length: 6 }, (_, i) => worker(i)));
    // Each window admits its 10 in a burst at its start, then refuses until the key expires a
    // second later: bursts are far apart, so a gap of 400 ms separates windows.
    const bursts: number[][] = [];
    for (const time of times.sort((a, b) => a - b)) {
      const last = bursts.at(-1);
      if (last && time - last.at(-1)! < 400) last.push(time);
      else bursts.push([time]);
    }
    assert.ok(bursts.length >= 2, `expected at least two windows, saw ${bursts.length}`);
    for (const burst of bursts) assert.ok(burst.length <= 10, `a window admitted ${burst.length}`);
    assert.equal(bursts[0]!.length, 10);
    assert.equal(bursts[1]!.length, 10);
  });

  it("several windows with a cost: all must admit, and the tightest one is reported", async () => {
    const windows: RateLimitWindow[] = [
      { name: "burst", limit: 5, duration: 60 },
      { name: "hour", limit: 8, duration: 3600 },
    ];
    const first = await engines[0].consume("apk_c", windows, 2);
    assert.deepEqual({ ...first.rate_limit, reset: 0 }, { name: "burst", limit: 5, remaining: 3, reset: 0 });
    assert.equal((await engines[1].consume("apk_c", windows, 2)).rate_limit.remaining, 1);
    const refused = await engines[0].consume("apk_c", windows, 2);
    assert.equal(refused.admitted, false);
    assert.deepEqual({ ...refused.rate_limit, reset: 0 }, { name: "burst", limit: 5, remaining: 1, reset: 0 });
    // Neither window kept the refused use.
    assert.equal(await shared.get(`${prefix}rl:5:60:apk_c`), "4");
    assert.equal(await shared.get(`${prefix}rl:8:3600:apk_c`), "4");
    assert.equal((await engines[1].consume("apk_c", windows, 1)).admitted, true);
  });

  it("a window that refuses gives back what the others took", async () => {
    const windows: RateLimitWindow[] = [
      { name: "minute", limit: 10, duration: 60 },
      { name: "day", limit: 2, duration: 86_400 },
    ];
    assert.equal(await admitted(Array.from({ length: 6 }, (_, i) => pick(i).consume("apk_r", windows, 1))), 2);
    assert.equal(await shared.get(`${prefix}rl:10:60:apk_r`), "2");
    assert.equal(await shared.get(`${prefix}rl:2:86400:apk_r`), "2");
    const refused = await engines[0].consume("apk_r", windows, 1);
    assert.equal(refused.admitted, false);
    assert.equal(refused.rate_limit.name, "day");
  });

  it("each instance learns from Redis how many instances count there: the divisor of its fair share in an outage", async () => {
    const beating = clients.map((client) => new RateLimiters({ redis: client, prefix, timeout: 5000, logger: recordingLogger(), now: Date.now, heartbeatInterval: 20 }));
    const tick = () => Promise.all(beating.map((engine) => engine.consume("apk_h", [{ name: "tick", limit: 1_000_000, duration: 60 }], 1)));
    for (let i = 0; i < 200 && !beating.every((engine) => engine.instances === 2); i++) {
      await tick();
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    assert.deepEqual(beating.map((engine) => engine.instances), [2, 2]);
    assert.equal(await shared.zcard(`${prefix}rl:instances`), 2);
  });

  it("a refund after the use gives the cost back to every window", async () => {
    const windows = [{ name: "minute", limit: 3, duration: 60 }];
    const decision = await engines[0].consume("apk_f", windows, 3);
    assert.ok(decision.admitted);
    await decision.refund();
    assert.equal(await shared.get(`${prefix}rl:3:60:apk_f`), "0");
    assert.equal((await engines[1].consume("apk_f", windows, 3)).admitted, true);
  });
});

describe("rate limits without Redis", () => {
  it("count per instance, in memory", async () => {
    const windows = [{ name: "minute", limit: 10, duration: 60 }];
    const engines = [new RateLimiters({ logger: recordingLogger(), now: Date.now }), new RateLimiters({ logger: recordingLogger(), now: Date.now })];
    for (const engine of engines) {
      assert.equal(await admitted(Array.from({ length: 15 }, () => engine.consume("apk_m", windows, 1))), 10);
    }
  });
});

describe("rate limits when Redis goes down and comes back", function () {
  this.timeout(60_000);
  let redis: PrivateRedis;
  let clients: Redis[] = [];
  beforeEach(async () => {
    redis = new PrivateRedis(await freePort());
    await redis.start();
  });
  afterEach(async () => {
    for (const client of clients) client.disconnect();
    clients = [];
    await redis.stop();
  });

  it("falls back to a fair share per instance, logs once per outage, and shares counts again after", async () => {
    const windows = [{ name: "minute", limit: 10, duration: 60 }];
    clients = [serviceClient(redis.url), serviceClient(redis.url)];
    await until(() => clients.every((client) => client.status === "ready"), "Redis");
    const loggers = [recordingLogger(), recordingLogger()];
    const engines = clients.map((client, i) => new RateLimiters({ redis: client, prefix: "p:", timeout: 5000, logger: loggers[i]!, now: Date.now, heartbeatInterval: 20 }));
    const use = (i: number) => engines[i]!.consume("apk_k", windows, 1);

    assert.equal(await admitted([use(0), use(1), use(0), use(1)]), 4);
    // Each has said in Redis that it is alive, and seen the other.
    const tick = () => Promise.all(engines.map((engine) => engine.consume("apk_tick", [{ name: "tick", limit: 1_000_000, duration: 60 }], 1)));
    for (let i = 0; i < 200 && !engines.every((engine) => engine.instances === 2); i++) {
      await tick();
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    assert.deepEqual(engines.map((engine) => engine.instances), [2, 2]);

    await redis.stop();
    await until(() => clients.every((client) => client.status !== "ready"), "the clients to notice");
    // Each instance now counts alone, at its share of the limit: 5 each, 10 together (it was 10 each).
    for (const i of [0, 1]) assert.equal(await admitted(Array.from({ length: 15 }, () => use(i))), 5);
    for (const logger of loggers) {
      assert.deepEqual(logger.lines, ["express-api-keys: Redis is unavailable; counting rate limits per instance, each at its share of the limit, until it is back"]);
    }

    await redis.start();
    await until(() => clients.every((client) => client.status === "ready"), "the clients to reconnect");
    // The restarted Redis is empty: a new shared window, 10 across both instances.
    assert.equal(await admitted(Array.from({ length: 30 }, (_, i) => use(i % 2))), 10);
    for (const logger of loggers) {
      assert.equal(logger.lines.length, 2);
      assert.match(logger.lines[1]!, /^express-api-keys: Redis is back; counting rate limits across instances again \(after 15 failures\)$/);
    }
  });
});

onEveryRedis("rate limit leases on a shared Redis, two instances", (redis) => {
  let shared: Redis | Cluster;
  let prefix: string;
  let clients: (Redis | Cluster)[];
  let leased: [LeasedRateLimits, LeasedRateLimits];

  beforeEach(async () => {
    shared = redis().admin;
    prefix = testPrefix();
    clients = [await redis().client(), await redis().client()];
    const open = (client: Redis | Cluster) => new LeasedRateLimits(new RateLimiters({ redis: client, prefix, timeout: 5000, logger: recordingLogger(), now: Date.now }), Date.now);
    leased = [open(clients[0]!), open(clients[1]!)];
  });
  afterEach(async () => {
    for (const client of clients) client.disconnect();
    await redis().deletePrefix(prefix);
  });

  it("takes uses from Redis a lease at a time: 1% of the limit, spent locally", async () => {
    const windows = [{ name: "minute", limit: 1000, duration: 60 }];
    for (let i = 0; i < 5; i++) assert.ok((await leased[0].consume("apk_l", windows, 1)).admitted);
    assert.equal(await shared.get(`${prefix}rl:1000:60:apk_l`), "10", "one lease of 10 uses, not five round trips");
    for (let i = 0; i < 6; i++) assert.ok((await leased[0].consume("apk_l", windows, 1)).admitted);
    assert.equal(await shared.get(`${prefix}rl:1000:60:apk_l`), "20", "a second lease once the first is spent");
  });

  it("never admits more than the limit across both instances, and at most one lease fewer", async function () {
    this.timeout(30_000);
    const windows = [{ name: "minute", limit: 1000, duration: 60 }];
    const results = await Promise.all(Array.from({ length: 1500 }, (_, i) => leased[i % 2]!.consume("apk_m", windows, 1)));
    const count = results.filter((result) => result.admitted).length;
    assert.ok(count <= 1000, `admitted ${count}, over the limit`);
    assert.ok(count >= 990, `admitted ${count}: more than one lease (10 uses) left unspent`);
  });

  it("is exact for small limits and short windows: leases of one use", async () => {
    const small = [{ name: "minute", limit: 10, duration: 60 }];
    assert.equal(await admitted(Array.from({ length: 30 }, (_, i) => leased[i % 2]!.consume("apk_s", small, 1))), 10);
    const short = [{ name: "short", limit: 300, duration: 2 }];
    assert.equal(await admitted(Array.from({ length: 400 }, (_, i) => leased[i % 2]!.consume("apk_t", short, 1))), 300);
  });

  it("consumeLocal spends from held leases only, and all windows or none", async () => {
    const wide = { name: "wide", limit: 1000, duration: 60 };
    const other = { name: "other", limit: 2000, duration: 60 };
    assert.equal(leased[0].consumeLocal("apk_c", [wide], 1), undefined, "no lease yet: nothing decided, nothing counted");
    assert.ok((await leased[0].consume("apk_c", [wide], 1)).admitted);
    for (let i = 0; i < 9; i++) assert.equal(leased[0].consumeLocal("apk_c", [wide], 1)?.remaining, 998 - i);
    assert.equal(leased[0].consumeLocal("apk_c", [wide], 1), undefined, "the lease of 10 is spent");
    assert.equal(await shared.get(`${prefix}rl:1000:60:apk_c`), "10", "no Redis call for the local uses");

    // A second window without a lease: the first window's lease is left as it was.
    assert.ok((await leased[0].consume("apk_d", [wide], 1)).admitted);
    assert.equal(leased[0].consumeLocal("apk_d", [wide, other], 1), undefined);
    const decided = await leased[0].consume("apk_d", [wide, other], 1);
    assert.ok(decided.admitted);
    assert.equal(decided.rate_limit.name, "wide", "the tightest window: 1000 - 10 + 8 left");
    assert.equal(decided.rate_limit.remaining, 998);
    assert.deepEqual(leased[0].consumeLocal("apk_d", [wide, other], 3), { name: "wide", limit: 1000, remaining: 995, reset: decided.rate_limit.reset });
  });

  it("two rules of one limit and duration share a lease: each use pays it once", async () => {
    const twins = [
      { name: "api", limit: 3, duration: 60 },
      { name: "burst", limit: 3, duration: 60 },
    ];
    assert.equal(await admitted(Array.from({ length: 5 }, () => leased[0].consume("apk_u", twins, 1))), 3);
    const wide = [
      { name: "a", limit: 1000, duration: 60 },
      { name: "b", limit: 1000, duration: 60 },
    ];
    assert.ok((await leased[0].consume("apk_v", wide, 1)).admitted);
    for (let i = 0; i < 9; i++) assert.equal(leased[0].consumeLocal("apk_v", wide, 1)?.remaining, 998 - i, `local use ${i + 1}`);
    assert.equal(leased[0].consumeLocal("apk_v", wide, 1), undefined, "the lease of 10 is spent");
    assert.equal(await shared.get(`${prefix}rl:1000:60:apk_v`), "10");
  });

  it("gives a refused use back: what the other windows took locally is returned", async () => {
    const windows = [
      { name: "wide", limit: 1000, duration: 60 },
      { name: "narrow", limit: 1, duration: 60 },
    ];
    assert.ok((await leased[0].consume("apk_r", windows, 1)).admitted);
    const refused = await leased[0].consume("apk_r", windows, 1);
    assert.equal(refused.admitted, false);
    assert.equal(refused.rate_limit.name, "narrow");
    const left = await leased[0].consume("apk_r", [windows[0]!], 1);
    assert.ok(left.admitted);
    assert.equal(left.rate_limit.remaining, 998, "the refused use took nothing from the wide window");
  });

  it("gives back to the shared counter what an earlier window took for a use a later window refused", async () => {
    const [one, two] = leased;
    const windows = [{ name: "a", limit: 2, duration: 60 }, { name: "b", limit: 1, duration: 1 }];
    assert.equal((await one.consume("apk_k", windows, 1)).admitted, true);
    assert.equal((await one.consume("apk_k", windows, 1)).admitted, false, "b refuses the second use");
    await new Promise((resolve) => setTimeout(resolve, 1100));
    // b's window has ended; a has had one use only, so another instance gets the second.
    assert.equal((await two.consume("apk_k", windows, 1)).admitted, true);
    assert.equal((await one.consume("apk_k", windows, 1)).admitted, false, "a is spent now");
  });
});

describe("rate limit windows in memory (no Redis, or Redis down)", () => {
  const THIRTY_DAYS = 30 * 86_400;
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  let warnings: Error[];
  const onWarning = (warning: Error) => warnings.push(warning);
  beforeEach(() => {
    warnings = [];
    process.on("warning", onWarning);
  });
  afterEach(() => {
    process.off("warning", onWarning);
  });

  /** Three uses a little apart (so that any timer armed by the first has fired) of a 2-use window. */
  async function threeUses(engine: RateLimiters, window: RateLimitWindow): Promise<boolean[]> {
    const results: boolean[] = [];
    for (let i = 0; i < 3; i++) {
      results.push((await engine.consume("apk_long", [window], 1)).admitted);
      await sleep(20);
    }
    return results;
  }

  it("counts a window longer than 2^31 ms exactly without Redis, with no TimeoutOverflowWarning", async () => {
    const engine = new RateLimiters({ logger: recordingLogger(), now: Date.now });
    assert.deepEqual(await threeUses(engine, { name: "month", limit: 2, duration: THIRTY_DAYS }), [true, true, false]);
    assert.deepEqual(await threeUses(engine, { name: "year", limit: 2, duration: 366 * 86_400 }), [true, true, false]);
    assert.deepEqual(warnings.map((warning) => warning.name), []);
  });

  it("counts a window longer than 2^31 ms exactly while Redis is down", async () => {
    // Nothing listens on a free port: every Redis call fails at once, as in an outage.
    const client = serviceClient(`redis://127.0.0.1:${await freePort()}`);
    try {
      const engine = new RateLimiters({ redis: client, prefix: testPrefix(), timeout: 200, logger: recordingLogger(), now: Date.now });
      assert.deepEqual(await threeUses(engine, { name: "month", limit: 2, duration: THIRTY_DAYS }), [true, true, false]);
      assert.deepEqual(warnings.map((warning) => warning.name), []);
    } finally {
      client.disconnect();
    }
  });

  it("never resets one key's count because other keys use many other windows", async () => {
    const engine = new RateLimiters({ logger: recordingLogger(), now: Date.now });
    const window = { name: "minute", limit: 3, duration: 60 };
    assert.equal(await admitted([engine.consume("apk_a", [window], 1), engine.consume("apk_a", [window], 1)]), 2);
    // 1,500 distinct windows of another key: more than any cache of limiters would keep.
    for (let limit = 1; limit <= 1500; limit++) await engine.consume("apk_b", [{ name: "w", limit, duration: 60 + limit }], 1);
    assert.equal(await admitted([engine.consume("apk_a", [window], 1), engine.consume("apk_a", [window], 1)]), 1, "apk_a's two earlier uses still count");
  });
});

// npm run bench: every HTTP case side by side in one run. Each case has its own server process,
// pinned to one core; wrk drives it from the other core over loopback. The cases run in
// interleaved rounds, and each ratio is taken against the bare route of its own round. The
// in-process micro-benchmark and the scale run follow. Writes BENCHMARKS.md and
// bench/results.json. Needs wrk, taskset, PostgreSQL and Redis (BENCH_DATABASE, BENCH_REDIS).
import { type ChildProcess, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import knexFactory from "knex";
import { initialize } from "../index";
import { generateToken } from "../lib/tokens";
import type { MicroResult } from "./micro";
import { type Machine, type Measured, report, type Scale } from "./report";
import type { TierCosts } from "./tier-costs";
import { PrivateCluster } from "../test/helpers/redis-topologies";
import { profileDirectory, stopProfiled } from "./profile";
import { startServer, stats } from "./servers";
import { CONNECTIONS, type Load, LOAD_CORE, requireTools, runWrk, SERVER_CORE, workspace, wrkVersion } from "./wrk";

const DATABASE = process.env.BENCH_DATABASE ?? "postgres://postgres@127.0.0.1:5432/test";
const REDIS = process.env.BENCH_REDIS ?? "redis://127.0.0.1:6379";
const DURATION_S = Number(process.env.BENCH_DURATION ?? 4);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
/** Distinct tokens per flood run: more than wrk sends in one, so no token repeats within a run. */
const FLOOD_TOKENS = 100_000;
const FLUSH_MS = 1000;
const root = path.resolve(__dirname, "..");

interface Case {
  id: string;
  label: string;
  server: string;
  load: Load;
}

const basic = (token: string) => `Basic ${Buffer.from(`${token}:`).toString("base64")}`;

/**
 * A token tagged under a key this deployment does not have: what an attacker who knows the
 * format can make, or another deployment's token. Its checksum is valid.
 */
function forgedToken(): string {
  return generateToken("secret", randomBytes(32));
}

/** A token in the current format whose last checksum character is wrong. */
function badChecksumToken(): string {
  const token = forgedToken();
  const last = token.at(-1)!;
  return token.slice(0, -1) + (last === "A" ? "B" : "A");
}

const floodOf = (make: () => string): Load => ({
  perRequest: { name: "Authorization", values: () => Array.from({ length: FLOOD_TOKENS }, () => basic(make())) },
});

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** One row from a case's rounds: medians and the ratio's range, sums for the counts. */
function summarise(rounds: Measured[]): Measured {
  const sum = (pick: (row: Measured) => number) => rounds.reduce((total, row) => total + pick(row), 0);
  const ratios = rounds.map((row) => row.ratio);
  return {
    ...rounds[0]!,
    rps: median(rounds.map((row) => row.rps)),
    p50_ms: median(rounds.map((row) => row.p50_ms)),
    p99_ms: median(rounds.map((row) => row.p99_ms)),
    ratio: median(ratios),
    ratio_min: Math.min(...ratios),
    ratio_max: Math.max(...ratios),
    cpu_us: median(rounds.map((row) => row.cpu_us)),
    bare_cpu_us: median(rounds.map((row) => row.bare_cpu_us)),
    cpu_ratio: median(rounds.map((row) => row.cpu_ratio)),
    cpu_ratio_min: Math.min(...rounds.map((row) => row.cpu_ratio)),
    cpu_ratio_max: Math.max(...rounds.map((row) => row.cpu_ratio)),
    requests: sum((row) => row.requests),
    non2xx: sum((row) => row.non2xx),
    errors: sum((row) => row.errors),
    queries: sum((row) => row.queries),
    updates: sum((row) => row.updates),
    lookups: sum((row) => row.lookups),
  };
}

function version(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: "utf8" }).trim().split("\n")[0]!;
  } catch {
    return "unknown";
  }
}

/** A bench script run as a child process that prints one JSON line. */
function runJson<T>(script: string, nodeArgs: string[] = [], pin?: string): T {
  const command = [process.execPath, ...nodeArgs, "--import", "tsx", script];
  const [file, ...args] = pin ? ["taskset", "-c", pin, ...command] : command;
  return JSON.parse(
    execFileSync(file!, args, {
      cwd: root,
      env: { ...process.env, BENCH_DATABASE: DATABASE },
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
    }),
  ) as T;
}

async function main(): Promise<void> {
  requireTools();
  const loadAverageBefore = os.loadavg()[0]!;
  const schema = `bench_${process.pid}`;
  const prefix = `bench:${randomBytes(4).toString("hex")}:`;
  const knex = knexFactory({ client: "pg", connection: DATABASE });
  const setup = await initialize({ database: knex, schema, redis: false });
  const secret = await setup.createApiKeys({ title: "bench secret", type: "secret", created_by: "bench" });
  const publishable = await setup.createApiKeys({ title: "bench store", type: "publishable", created_by: "bench" });
  await setup.updateLinks(publishable.id, { add: ["sc_1", "sc_2", "sc_3", "sc_4", "sc_5"] });
  // A limit no run reaches: what counting costs when it never refuses.
  const limited = await setup.createApiKeys({
    title: "bench rate-limited",
    type: "secret",
    created_by: "bench",
    rate_limits: [{ name: "bench", limit: 1_000_000_000, duration: 60 }],
  });
  // A quota no run spends: what counting it costs, through leases of units from the database.
  const metered = await setup.createApiKeys({ title: "bench quota", type: "secret", created_by: "bench", remaining: 1_000_000_000 });
  const scoped = await setup.createApiKeys({ title: "bench scoped", type: "secret", created_by: "bench", scopes: ["orders:read", "orders:write", "products:*"] });
  const fenced = await setup.createApiKeys({ title: "bench allow-list", type: "secret", created_by: "bench", allowed_ips: ["10.0.0.0/8", "127.0.0.1"] });
  await setup.close();

  const secretHeader = { header: ["Authorization", basic(secret.token)] } satisfies Load;
  const cases: Case[] = [
    { id: "bare", label: "1. bare Express route", server: "bare", load: {} },
    { id: "noop-middleware", label: "1b. a middleware that only calls next() (what Express charges for any)", server: "noop-middleware", load: {} },
    { id: "secret-memory", label: "2. secret key (Basic), warm in-process cache", server: "secret-memory", load: secretHeader },
    { id: "secret-memory-no-analytics", label: "2b. case 2 with verification analytics off", server: "secret-memory-no-analytics", load: secretHeader },
    { id: "publishable-memory", label: "3. publishable key, warm cache, 5 sales channels", server: "publishable-memory", load: { header: ["x-publishable-api-key", publishable.token] } },
    { id: "secret-redis", label: "4. secret key, in-process cache off, Redis on", server: "secret-redis", load: secretHeader },
    { id: "secret-nocache", label: "5. secret key, every cache off (a PostgreSQL lookup per request)", server: "secret-nocache", load: secretHeader },
    { id: "flood-bad-checksum", label: "6a. flood of distinct tokens with a bad checksum", server: "secret-memory", load: floodOf(badChecksumToken) },
    { id: "flood-unknown", label: "6b. flood of distinct forged tokens with valid checksums", server: "secret-memory", load: floodOf(forgedToken) },
    { id: "scrypt-reference", label: "7. the reference's way: salted scrypt per request", server: "scrypt-reference", load: secretHeader },
    { id: "last-used", label: "8. last_used_at writes (flush every 1 s)", server: "last-used", load: secretHeader },
    { id: "rate-limited", label: "9. secret key with a rate limit never reached, warm cache, Redis on", server: "rate-limited", load: { header: ["Authorization", basic(limited.token)] } },
    { id: "quota", label: "10. secret key with a usage quota never spent (leased from PostgreSQL)", server: "secret-memory", load: { header: ["Authorization", basic(metered.token)] } },
    { id: "scopes", label: "11. secret key with scopes, on a route that requires one", server: "secret-scoped", load: { header: ["Authorization", basic(scoped.token)] } },
    { id: "ip-allow-list", label: "12. secret key with an IP allow-list (2 entries)", server: "secret-memory", load: { header: ["Authorization", basic(fenced.token)] } },
    { id: "cluster", label: "13. secret key, warm cache, on a Redis Cluster of three masters", server: "secret-cluster", load: secretHeader },
  ];
  /** The cases with none of the package's code on their route: no share of theirs to profile. */
  const unprofiled = ["bare", "noop-middleware", "scrypt-reference"];
  // A cluster of the run's own (its servers unpinned, as PostgreSQL and Redis are), for case 13.
  process.stderr.write("starting a Redis Cluster of three masters ...\n");
  const cluster = await PrivateCluster.start(3, 0);
  const env = {
    BENCH_REDIS_CLUSTER: cluster.addresses,
    BENCH_DATABASE: DATABASE,
    BENCH_SCHEMA: schema,
    BENCH_REDIS: REDIS,
    BENCH_PREFIX: prefix,
    BENCH_SECRET: secret.token,
    BENCH_FLUSH_MS: String(FLUSH_MS),
  };

  const scratch = workspace();
  const servers = new Map<string, { child: ChildProcess; port: number }>();
  const samples = new Map<string, Measured[]>(cases.map((benchCase) => [benchCase.id, []]));
  try {
    for (const benchCase of cases) {
      const server = await startServer(benchCase.server, env);
      servers.set(benchCase.id, server);
      // Warm-up of both routes: JIT, connection pools, caches.
      await runWrk(scratch.dir, server.port, benchCase.load, 1);
      await runWrk(scratch.dir, server.port, {}, 1, "/__bare");
    }
    for (let round = 0; round < ROUNDS; round++) {
      process.stderr.write(`round ${round + 1} of ${ROUNDS}\n`);
      // Each round starts one case later, so no case always follows the same neighbour.
      const order = cases.map((_, i) => cases[(i + round) % cases.length]!);
      for (const benchCase of order) {
        const { port } = servers.get(benchCase.id)!;
        // The case and the bare route of its own server back to back, in alternating order,
        // so that drift within the round hits both alike.
        const measure = async (urlPath: string, load: Load) => {
          const before = await stats(port);
          const result = await runWrk(scratch.dir, port, load, DURATION_S, urlPath);
          const after = await stats(port);
          return { result, before, after, cpu_us: (after.cpu_us - before.cpu_us) / Math.max(1, result.requests) };
        };
        const bareFirst = round % 2 === 0;
        // A server that sat idle while the other cases ran serves its first second or so
        // markedly slower (measured: 20-30 % here), whichever route comes first: a discarded
        // second of load first, so that neither of the pair pays it.
        await runWrk(scratch.dir, port, bareFirst ? {} : benchCase.load, 1, bareFirst ? "/__bare" : "/");
        const bare = bareFirst ? await measure("/__bare", {}) : undefined;
        const run = await measure("/", benchCase.load);
        const reference = bare ?? (await measure("/__bare", {}));
        const { result } = run;
        samples.get(benchCase.id)!.push({
          id: benchCase.id,
          label: benchCase.label,
          ...result,
          ratio: result.rps / reference.result.rps,
          ratio_min: 0,
          ratio_max: 0,
          cpu_us: run.cpu_us,
          bare_cpu_us: reference.cpu_us,
          cpu_ratio: reference.cpu_us / run.cpu_us,
          cpu_ratio_min: 0,
          cpu_ratio_max: 0,
          queries: run.after.queries - run.before.queries,
          updates: run.after.updates - run.before.updates,
          lookups: run.after.lookups - run.before.lookups,
        });
        process.stderr.write(`  ${benchCase.label}: ${result.rps.toFixed(0)} req/s (its bare route ${reference.result.rps.toFixed(0)}), p99 ${result.p99_ms.toFixed(2)} ms\n`);
      }
    }
  } catch (error) {
    scratch.close();
    await cluster.stop();
    await knex.raw("drop schema if exists ?? cascade", [schema]);
    await knex.destroy();
    throw error;
  } finally {
    for (const { child } of servers.values()) child.kill();
  }
  const measured = cases.map((benchCase) => summarise(samples.get(benchCase.id)!));
  const loadAverageAfterHttp = os.loadavg()[0]!;

  // Each case once more, in a server of its own under --cpu-prof: where its CPU goes.
  for (const benchCase of cases.filter((candidate) => !unprofiled.includes(candidate.id))) {
    process.stderr.write(`profiling ${benchCase.label} ...\n`);
    const profile = profileDirectory();
    try {
      const server = await startServer(benchCase.server, env, SERVER_CORE, ["--cpu-prof", `--cpu-prof-dir=${profile.dir}`]);
      await runWrk(scratch.dir, server.port, benchCase.load, 1);
      await runWrk(scratch.dir, server.port, benchCase.load, DURATION_S);
      await stopProfiled(server.child);
      const share = profile.read();
      const row = measured.find((candidate) => candidate.id === benchCase.id)!;
      row.package_share = share.package_share;
      row.package_top = share.top;
    } finally {
      profile.close();
    }
  }
  scratch.close();
  await cluster.stop();
  await knex.raw("drop schema if exists ?? cascade", [schema]);
  await knex.destroy();

  process.stderr.write("micro-benchmark (warm authenticate in process, beside its floor) ...\n");
  const micro = runJson<MicroResult>("bench/micro.ts", [], SERVER_CORE);
  process.stderr.write("scale run (cold lookups with 1,000, 1,000,000 and 10,000,000 keys; memory after invalid floods and valid keys) ...\n");
  const scale = runJson<Scale>("bench/scale.ts", ["--expose-gc"]);
  process.stderr.write("tier costs (bytes per cached key in process and in Redis) ...\n");
  const costs = runJson<TierCosts>("bench/tier-costs.ts", ["--expose-gc"]);

  const machine: Machine = {
    date: new Date().toISOString(),
    cpu: `${os.cpus()[0]?.model ?? "unknown"} x ${os.cpus().length}`,
    cores: os.cpus().length,
    memory_gib: Math.round(os.totalmem() / 1024 ** 3),
    load_average: [loadAverageBefore, loadAverageAfterHttp],
    node: process.version,
    postgres: version("psql", ["--version"]),
    redis: version("redis-server", ["--version"]),
    wrk: wrkVersion(),
    load_core: LOAD_CORE,
    server_core: SERVER_CORE,
    connections: CONNECTIONS,
    duration_s: DURATION_S,
    rounds: ROUNDS,
  };
  writeFileSync(path.join(root, "bench/results.json"), `${JSON.stringify({ machine, cases: measured, micro, scale, costs }, null, 2)}\n`);
  writeFileSync(path.join(root, "BENCHMARKS.md"), report(machine, measured, micro, scale, costs));
  process.stderr.write("wrote BENCHMARKS.md and bench/results.json\n");
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});

// npm run bench:scale-out: 1, 2 and 4 app instances that share one PostgreSQL and a local Redis
// Cluster of three masters (started here on free ports, stopped after). For each count: the
// throughput of all instances together as a ratio to one instance, in interleaved rounds; and,
// under that load, how long a revocation made through another instance takes to be refused by
// every instance, as a client sees it. Prints a Markdown table; writes bench/scale-out.json.
//
// The instances are pinned to one core and wrk to the other, as in `npm run bench`: on a 2-core
// machine more instances cannot add CPU, so the ratio shows what sharing costs (the cluster's
// fan-out, more connections), not how far throughput grows with machines.
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import knexFactory from "knex";
import { initialize } from "../setup/initialize";
import { PrivateCluster } from "../test/helpers/redis-topologies";
import { startServer } from "./servers";
import { CONNECTIONS, type Load, requireTools, runWrk, workspace } from "./wrk";

const DATABASE = process.env.BENCH_DATABASE ?? "postgres://postgres@127.0.0.1:5432/test";
const DURATION_S = Number(process.env.BENCH_DURATION ?? 4);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const REVOCATIONS = Number(process.env.BENCH_REVOCATIONS ?? 20);
const COUNTS = [1, 2, 4];
/** Keys the load cycles through, so that their entries spread over the cluster's slots. */
const KEYS = 100;
const root = path.resolve(__dirname, "..");

const basic = (token: string) => `Basic ${Buffer.from(`${token}:`).toString("base64")}`;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** wrk on every one of `ports` at once, the connections split between them; the sum of their rates. */
async function loadAll(ports: number[], load: Load, seconds: number): Promise<{ rps: number; non2xx: number; errors: number }> {
  const connections = Math.ceil(CONNECTIONS / ports.length);
  const runs = await Promise.all(
    ports.map(async (port) => {
      const scratch = workspace();
      try {
        return await runWrk(scratch.dir, port, load, seconds, "/", connections);
      } finally {
        scratch.close();
      }
    }),
  );
  return runs.reduce((sum, run) => ({ rps: sum.rps + run.rps, non2xx: sum.non2xx + run.non2xx, errors: sum.errors + run.errors }), { rps: 0, non2xx: 0, errors: 0 });
}

async function status(port: number, token: string): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${port}/`, { headers: { authorization: basic(token) } });
  await response.arrayBuffer();
  return response.status;
}

async function main(): Promise<void> {
  requireTools();
  process.stderr.write("starting a Redis Cluster of three masters ...\n");
  const cluster = await PrivateCluster.start(3, 0);
  const schema = `bench_scale_out_${process.pid}`;
  const prefix = `bench:${randomBytes(4).toString("hex")}:`;
  const knex = knexFactory({ client: "pg", connection: DATABASE });
  const servers: Awaited<ReturnType<typeof startServer>>[] = [];
  try {
    // The writer stands for another instance (or the CLI): its revocations reach the others through the cluster.
    const writer = await initialize({ database: knex, schema, redis: { clusterNodes: cluster.addresses.split(",") }, cache: { redisPrefix: prefix } });
    const keys = await writer.createApiKeys(Array.from({ length: KEYS }, (_, i) => ({ title: `bench ${i}`, type: "secret" as const, created_by: "bench" })));
    const load: Load = { perRequest: { name: "Authorization", values: () => keys.map((key) => basic(key.token)) } };
    const env = { BENCH_DATABASE: DATABASE, BENCH_SCHEMA: schema, BENCH_PREFIX: prefix, BENCH_REDIS_CLUSTER: cluster.addresses };
    for (let i = 0; i < Math.max(...COUNTS); i++) servers.push(await startServer("secret-cluster", env));
    const ports = servers.map((server) => server.port);
    await loadAll(ports, load, 1); // warm-up: JIT, pools, every key cached on every instance

    const ratios = new Map<number, number[]>(COUNTS.map((count) => [count, []]));
    const rates = new Map<number, number[]>(COUNTS.map((count) => [count, []]));
    let failures = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const order = COUNTS.map((_, i) => COUNTS[(i + round) % COUNTS.length]!);
      const measured = new Map<number, number>();
      for (const count of order) {
        const result = await loadAll(ports.slice(0, count), load, DURATION_S);
        failures += result.non2xx + result.errors;
        measured.set(count, result.rps);
        rates.get(count)!.push(result.rps);
      }
      for (const count of COUNTS) ratios.get(count)!.push(measured.get(count)! / measured.get(1)!);
      process.stderr.write(`round ${round + 1} of ${ROUNDS}: ${COUNTS.map((count) => `${count}: ${measured.get(count)!.toFixed(0)} req/s`).join(", ")}\n`);
    }

    // Revocation to refusal, under load on the same instances.
    const revocation = new Map<number, number[]>();
    for (const count of COUNTS) {
      const targets = ports.slice(0, count);
      const delays: number[] = [];
      const background = loadAll(targets, load, Math.max(2, Math.ceil(REVOCATIONS / 4)));
      for (let i = 0; i < REVOCATIONS; i++) {
        const key = await writer.createApiKeys({ title: `revoked ${i}`, type: "secret", created_by: "bench" });
        for (const port of targets) if ((await status(port, key.token)) !== 200) throw new Error("a new key was refused");
        const start = performance.now();
        await writer.revoke(key.id, { revoked_by: "bench" });
        await Promise.all(
          targets.map(async (port) => {
            while ((await status(port, key.token)) === 200) {
              if (performance.now() - start > 10_000) throw new Error(`instance on ${port} still accepts a key revoked 10 s ago`);
            }
            delays.push(performance.now() - start);
          }),
        );
      }
      failures += (await background).errors;
      revocation.set(count, delays);
    }
    await writer.close();

    const rows = COUNTS.map((count) => ({
      instances: count,
      rps: median(rates.get(count)!),
      ratio: median(ratios.get(count)!),
      ratio_min: Math.min(...ratios.get(count)!),
      ratio_max: Math.max(...ratios.get(count)!),
      revocation_p50_ms: percentile(revocation.get(count)!, 50),
      revocation_p99_ms: percentile(revocation.get(count)!, 99),
      revocation_max_ms: Math.max(...revocation.get(count)!),
    }));
    const machine = { date: new Date().toISOString(), cpu: `${os.cpus()[0]?.model ?? "unknown"} x ${os.cpus().length}`, node: process.version, load_average: os.loadavg()[0], rounds: ROUNDS, duration_s: DURATION_S, revocations: REVOCATIONS, keys: KEYS };
    writeFileSync(path.join(root, "bench/scale-out.json"), `${JSON.stringify({ machine, rows, failures }, null, 2)}\n`);
    const table = [
      "| instances | req/s (all) | ratio to one [range] | revocation -> refusal p50 | p99 | max |",
      "|---|---|---|---|---|---|",
      ...rows.map((row) => `| ${row.instances} | ${row.rps.toFixed(0)} | ${row.ratio.toFixed(2)} [${row.ratio_min.toFixed(2)}-${row.ratio_max.toFixed(2)}] | ${row.revocation_p50_ms.toFixed(1)} ms | ${row.revocation_p99_ms.toFixed(1)} ms | ${row.revocation_max_ms.toFixed(1)} ms |`),
    ];
    console.log(`${table.join("\n")}\n\n${failures} failed requests (valid keys refused, errors); ${machine.cpu}, Node ${machine.node}, ${ROUNDS} rounds of ${DURATION_S} s, ${REVOCATIONS} revocations per count.`);
  } finally {
    for (const { child } of servers) child.kill();
    await knex.raw("drop schema if exists ?? cascade", [schema]).catch(() => undefined);
    await knex.destroy();
    await cluster.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});

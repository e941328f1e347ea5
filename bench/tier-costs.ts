// npm run bench:costs: what each cache tier costs per key and per verification, counted rather
// than timed, so the figures hold on any machine. On PostgreSQL and a redis-server of its own
// (started here on a free port, so that its command counters see nothing else):
//   - process heap per key held in the in-process tier;
//   - Redis bytes per cached key (MEMORY USAGE of its entry and its version) and Redis commands
//     per verification: on a Redis miss (then a fill), on a Redis hit, and per revocation;
//   - SQL statements per verification that misses every cache.
// Run with --expose-gc (the script does), so that the heap is read after a full collection.
// Prints a Markdown table on stderr, writes bench/tier-costs.json, and prints the same JSON as
// one line on stdout, which `npm run bench` reads.
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import knexFactory, { type Knex } from "knex";
import { Redis } from "ioredis";
import { initialize } from "../setup/initialize";
import { PrivateRedis, freePort } from "../test/helpers/redis";

const DATABASE = process.env.BENCH_DATABASE ?? "postgres://postgres@127.0.0.1:5432/test";
const KEYS = Number(process.env.BENCH_KEYS ?? 2000);
const root = path.resolve(__dirname, "..");

const gc = (globalThis as { gc?: () => void }).gc;

/** Redis calls over a pass, by command. */
interface CommandCounts {
  total: number;
  byCommand: Record<string, number>;
}

export interface TierCosts {
  machine: { date: string; cpu: string; node: string; keys: number };
  heap_bytes_per_key: number;
  redis_bytes_per_key: number;
  redis_names_per_key: number;
  redis_commands_per_miss: CommandCounts;
  redis_commands_per_hit: CommandCounts;
  redis_commands_per_revocation: CommandCounts;
  revocations: number;
  sql_per_uncached_verification: number;
  sql_per_redis_miss: number;
  sql_per_redis_hit: number;
}

function heapAfterCollection(): number {
  gc!();
  gc!();
  return process.memoryUsage().heapUsed;
}

/** Calls made to Redis since the counters were last reset, by command, and their total. */
async function commandsSince(admin: Redis): Promise<CommandCounts> {
  const info = await admin.info("commandstats");
  const byCommand: Record<string, number> = {};
  let total = 0;
  for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    if (/^(config|info)\b/.test(match[1]!)) continue; // the counting itself
    byCommand[match[1]!] = Number(match[2]);
    total += Number(match[2]);
  }
  await admin.config("RESETSTAT");
  return { total, byCommand };
}

function perKey(counts: CommandCounts, keys: number): string {
  const parts = Object.entries(counts.byCommand).map(([command, calls]) => `${command} ${+(calls / keys).toFixed(2)}`);
  return `${+(counts.total / keys).toFixed(2)} (${parts.join(", ")})`;
}

async function main(): Promise<void> {
  if (!gc) throw new Error("run with node --expose-gc");
  const redisServer = new PrivateRedis(await freePort());
  await redisServer.start();
  const admin = new Redis(redisServer.url);
  const schema = `bench_costs_${process.pid}`;
  const knex: Knex = knexFactory({ client: "pg", connection: DATABASE });
  let statements = 0;
  knex.on("query", () => statements++);
  try {
    const writer = await initialize({ database: knex, schema, cache: false, redis: false });
    const keys = [];
    for (let made = 0; made < KEYS; made += 500) {
      const batch = Array.from({ length: Math.min(500, KEYS - made) }, (_, i) => ({ title: `bench key ${made + i}`, type: "secret" as const, created_by: "bench", metadata: { team: "payments" } }));
      keys.push(...(await writer.createApiKeys(batch)));
    }

    // Every cache off: what one verification asks of the database.
    statements = 0;
    for (const key of keys) await writer.authenticate(key.token);
    const sqlPerMiss = statements / KEYS;

    // The in-process tier alone, large enough for every key and fresh for the whole run. The
    // last_used_at writes are flushed before the heap is read, so that only the tier is counted.
    const memoryOnly = await initialize({ database: knex, schema, redis: false, lastUsedFlushInterval: 20, cache: { ttl: 600_000, max: KEYS * 2 } });
    await memoryOnly.authenticate(keys[0]!.token); // the tier's own structures, before counting
    const settle = () => new Promise((resolve) => setTimeout(resolve, 200));
    await settle();
    const before = heapAfterCollection();
    for (const key of keys) await memoryOnly.authenticate(key.token);
    await settle();
    const heapPerKey = (heapAfterCollection() - before) / KEYS;
    await memoryOnly.close();

    // Redis alone (the in-process tier off), so that every verification reaches it.
    const prefix = `bench:${randomBytes(4).toString("hex")}:`;
    const redisOnly = await initialize({ database: knex, schema, redis: redisServer.url, cache: { memory: false, redisPrefix: prefix } });
    await redisOnly.authenticate(keys[0]!.token); // subscription, deployment secret
    await commandsSince(admin);
    statements = 0;
    for (const key of keys.slice(1)) await redisOnly.authenticate(key.token);
    const missCommands = await commandsSince(admin);
    const sqlPerRedisMiss = statements / (KEYS - 1);
    statements = 0;
    for (const key of keys) await redisOnly.authenticate(key.token);
    const hitCommands = await commandsSince(admin);
    const sqlPerRedisHit = statements / KEYS;
    const entryBytes: number[] = [];
    for await (const names of admin.scanStream({ match: `${prefix}*`, count: 1000 }) as AsyncIterable<string[]>) {
      for (const name of names) entryBytes.push(Number(await admin.memory("USAGE", name, "SAMPLES", "0")));
    }
    await commandsSince(admin);
    const REVOKED = 100;
    for (const key of keys.slice(0, REVOKED)) await redisOnly.revoke(key.id, { revoked_by: "bench" });
    const revokeCommands = await commandsSince(admin);
    await redisOnly.close();
    await writer.close();

    const redisBytesPerKey = entryBytes.reduce((sum, bytes) => sum + bytes, 0) / KEYS;
    const result: TierCosts = {
      machine: { date: new Date().toISOString(), cpu: `${os.cpus()[0]?.model.trim()} x ${os.cpus().length}`, node: process.version, keys: KEYS },
      heap_bytes_per_key: Math.round(heapPerKey),
      redis_bytes_per_key: Math.round(redisBytesPerKey),
      redis_names_per_key: entryBytes.length / KEYS,
      redis_commands_per_miss: missCommands,
      redis_commands_per_hit: hitCommands,
      redis_commands_per_revocation: revokeCommands,
      revocations: REVOKED,
      sql_per_uncached_verification: sqlPerMiss,
      sql_per_redis_miss: sqlPerRedisMiss,
      sql_per_redis_hit: sqlPerRedisHit,
    };
    writeFileSync(path.join(root, "bench", "tier-costs.json"), `${JSON.stringify(result, null, 2)}\n`);
    console.log(JSON.stringify(result));
    const rows = [
      ["process heap per key in the in-process tier", `${result.heap_bytes_per_key} bytes`],
      ["Redis memory per cached key (entry and version)", `${result.redis_bytes_per_key} bytes over ${result.redis_names_per_key} names`],
      ["Redis commands per verification, Redis miss then fill", perKey(missCommands, KEYS - 1)],
      ["Redis commands per verification, Redis hit", perKey(hitCommands, KEYS)],
      ["Redis commands per revocation of one key", perKey(revokeCommands, REVOKED)],
      ["SQL statements per verification, no cache", String(sqlPerMiss)],
      ["SQL statements per verification, Redis miss", String(+sqlPerRedisMiss.toFixed(2))],
      ["SQL statements per verification, Redis hit", String(+sqlPerRedisHit.toFixed(2))],
    ];
    process.stderr.write(`\n| cost (${KEYS} secret keys) | measured |\n|---|---|\n${rows.map(([what, value]) => `| ${what} | ${value} |`).join("\n")}\n`);
  } finally {
    await knex.raw("drop schema if exists ?? cascade", [schema]);
    await knex.destroy();
    admin.disconnect();
    await redisServer.stop();
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});

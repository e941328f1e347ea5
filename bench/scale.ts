// Scale run: cold authenticate latency with 1,000, 1,000,000 and 10,000,000 keys in the table
// (BENCH_LARGEST_KEYS sets the last; 0 leaves it out), process
// memory after a flood of distinct invalid tokens, and after every one of 1,000,000 distinct valid
// keys verified once (the in-process cache bounded by cache.max and cache.maxSize). Prints one
// JSON line.
// Run with --expose-gc so that memory is read after a full collection.
import { performance } from "node:perf_hooks";
import knexFactory, { type Knex } from "knex";
import { KnexApiKeyStore, initialize } from "../index";
import { loadTokenRules } from "../lib/token-gate";
import { generateToken, hashToken, redactToken } from "../lib/tokens";

const DATABASE = process.env.BENCH_DATABASE ?? "postgres://postgres@127.0.0.1:5432/test";
const REAL_KEYS = 1000;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** A table of `total` keys: `total - 1000` filler rows made by SQL, and 1000 real keys whose tokens we hold. */
async function coldLatency(knex: Knex, total: number): Promise<{ keys: number; p50_ms: number; p99_ms: number; setup_s: number }> {
  const schema = `bench_scale_${total}_${process.pid}`;
  const setup = performance.now();
  await knex.raw("drop schema if exists ?? cascade", [schema]);
  const writer = await initialize({ database: knex, schema, cache: false, redis: false });
  await knex.raw(
    `insert into ??.api_key (id, token, redacted, title, type, created_by)
     select 'apk_fill' || g, md5(g::text) || md5((g + 1)::text), 'sk_fil***' || (g % 1000), 'filler', 'secret', 'bench'
     from generate_series(1, ?) g`,
    [schema, total - REAL_KEYS],
  );
  const tokens: string[] = [];
  for (let i = 0; i < REAL_KEYS; i += 500) {
    const batch = Array.from({ length: 500 }, (_, j) => ({ title: `real ${i + j}`, type: "secret" as const, created_by: "bench" }));
    tokens.push(...(await writer.createApiKeys(batch)).map((key) => key.token));
  }
  await knex.raw("analyze ??.api_key", [schema]);
  const setupSeconds = (performance.now() - setup) / 1000;
  // No application cache: every call is one indexed query, as for a key seen for the first time.
  const reader = await initialize({ database: knex, schema, runMigrations: false, cache: false, redis: false });
  const latencies: number[] = [];
  for (const token of tokens) {
    const start = performance.now();
    if (!(await reader.authenticate(token))) throw new Error("a real key did not authenticate");
    latencies.push(performance.now() - start);
  }
  await Promise.all([reader.close(), writer.close()]);
  await knex.raw("drop schema ?? cascade", [schema]);
  latencies.sort((a, b) => a - b);
  return { keys: total, p50_ms: percentile(latencies, 50), p99_ms: percentile(latencies, 99), setup_s: setupSeconds };
}

function heapMiB(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().heapUsed / 1024 / 1024;
}

/** Memory before and after distinct invalid tokens: bad checksums (never stored) and unknown well-formed tokens (cached as misses, bounded by cache.max). */
async function invalidFlood(knex: Knex, badChecksum: number, unknownWellFormed: number) {
  const schema = `bench_flood_${process.pid}`;
  await knex.raw("drop schema if exists ?? cascade", [schema]);
  const service = await initialize({ database: knex, schema, redis: false });
  const before = heapMiB();
  const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  for (let i = 0; i < badChecksum; i++) {
    let token = "sk_";
    for (let j = 0; j < 50; j++) token += alphabet[(Math.random() * 62) | 0];
    await service.authenticate(token);
  }
  // Unknown tokens with a valid tag, as only a holder of the deployment's secret could make
  // (or a deleted key's): the ones that reach the store and are cached as misses.
  const { tagKey } = await loadTokenRules(new KnexApiKeyStore(knex, schema), undefined, new Date());
  const afterBadChecksum = heapMiB();
  const concurrency = 32;
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < unknownWellFormed) await service.authenticate(generateToken("secret", tagKey));
    }),
  );
  const afterUnknown = heapMiB();
  await service.close();
  await knex.raw("drop schema ?? cascade", [schema]);
  return {
    bad_checksum_tokens: badChecksum,
    unknown_well_formed_tokens: unknownWellFormed,
    heap_before_mib: before,
    heap_after_bad_checksum_mib: afterBadChecksum,
    heap_after_unknown_mib: afterUnknown,
  };
}

function rssMiB(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().rss / 1024 / 1024;
}

/**
 * `total` distinct valid keys, written straight to the table (their tokens tagged as the
 * deployment tags them, kept here), each verified once through a service with the default cache:
 * what the process holds after, against before.
 */
async function validKeysOnce(knex: Knex, total: number) {
  const schema = `bench_valid_${process.pid}`;
  await knex.raw("drop schema if exists ?? cascade", [schema]);
  const writer = await initialize({ database: knex, schema, cache: false, redis: false });
  await writer.close();
  const { tagKey } = await loadTokenRules(new KnexApiKeyStore(knex, schema), undefined, new Date());
  const tokens: string[] = [];
  const now = new Date();
  for (let i = 0; i < total; i += 5000) {
    const rows = [];
    for (let j = i; j < Math.min(total, i + 5000); j++) {
      const token = generateToken("secret", tagKey);
      tokens.push(token);
      rows.push({ id: `apk_valid${j}`, token: hashToken(token), redacted: redactToken(token), title: "valid", type: "secret", created_by: "bench", created_at: now, updated_at: now, token_format: 2 });
    }
    await knex.withSchema(schema).table("api_key").insert(rows);
  }
  const service = await initialize({ database: knex, schema, runMigrations: false, redis: false, usageAnalytics: false });
  const before = rssMiB();
  const heapBefore = heapMiB();
  let next = 0;
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (next < tokens.length) {
        const token = tokens[next++]!;
        if (!(await service.authenticate(token))) throw new Error("a valid key did not authenticate");
      }
    }),
  );
  tokens.length = 0;
  const result = { valid_keys: total, rss_before_mib: before, rss_after_mib: rssMiB(), heap_before_valid_mib: heapBefore, heap_after_valid_mib: heapMiB() };
  await service.close();
  await knex.raw("drop schema ?? cascade", [schema]);
  return result;
}

async function main(): Promise<void> {
  const knex = knexFactory({ client: "pg", connection: DATABASE, pool: { min: 1, max: 34 } });
  try {
    const small = await coldLatency(knex, 1000);
    process.stderr.write(`  cold lookups, 1,000 keys: p50 ${small.p50_ms.toFixed(3)} ms\n`);
    const large = await coldLatency(knex, 1_000_000);
    process.stderr.write(`  cold lookups, 1,000,000 keys: p50 ${large.p50_ms.toFixed(3)} ms (table built in ${large.setup_s.toFixed(0)} s)\n`);
    const largest = Number(process.env.BENCH_LARGEST_KEYS ?? 10_000_000);
    const cold = [small, large];
    if (largest > 0) {
      // About 5 GB of table and indexes at 10,000,000 keys, dropped at once.
      const huge = await coldLatency(knex, largest);
      process.stderr.write(`  cold lookups, ${largest.toLocaleString("en")} keys: p50 ${huge.p50_ms.toFixed(3)} ms (table built in ${huge.setup_s.toFixed(0)} s)\n`);
      cold.push(huge);
    }
    const flood = await invalidFlood(knex, 1_000_000, Number(process.env.BENCH_UNKNOWN ?? 100_000));
    process.stderr.write(`  memory: ${flood.heap_before_mib.toFixed(1)} -> ${flood.heap_after_unknown_mib.toFixed(1)} MiB heap\n`);
    const valid = await validKeysOnce(knex, Number(process.env.BENCH_VALID ?? 1_000_000));
    process.stderr.write(`  ${valid.valid_keys.toLocaleString("en")} valid keys verified once: RSS ${valid.rss_before_mib.toFixed(0)} -> ${valid.rss_after_mib.toFixed(0)} MiB\n`);
    const memory = { ...flood, ...valid };
    console.log(JSON.stringify({ cold, memory }));
  } finally {
    await knex.destroy();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});

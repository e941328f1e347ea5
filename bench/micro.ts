// Micro-benchmark: the warm path in process, with no HTTP, next to a floor measured in the same
// run. The floor is the least a warm check must do: the checksum, one SHA-256 and one Map lookup.
// Prints one JSON line of median nanoseconds per call.
import { createHash } from "node:crypto";
import { performance } from "node:perf_hooks";
import knexFactory from "knex";
import { apiKeyAuth, initialize } from "../index";
import { parseToken } from "../lib/tokens";

const DATABASE = process.env.BENCH_DATABASE ?? "postgres://postgres@127.0.0.1:5432/test";
const RUNS = 5;
const CALLS = 100_000;

export interface MicroResult {
  runs: number;
  calls: number;
  floor_ns: number;
  authenticate_ns: number;
  middleware_ns: number;
}

function median(values: number[]): number {
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
}

async function main(): Promise<void> {
  const knex = knexFactory({ client: "pg", connection: DATABASE, pool: { min: 1, max: 4 } });
  const schema = `bench_micro_${process.pid}`;
  try {
    const service = await initialize({ database: knex, schema, redis: false });
    const key = await service.createApiKeys({ title: "warm", type: "secret", created_by: "bench" });
    const token = key.token;
    const middleware = apiKeyAuth({ service });
    const header = `Basic ${Buffer.from(`${token}:`).toString("base64")}`;
    const map = new Map([[createHash("sha256").update(token).digest("hex"), key]]);
    await service.authenticate(token); // warm the cache
    let sink = 0; // keeps the floor's work observable, so the JIT cannot drop it
    const samples = { floor: [] as number[], authenticate: [] as number[], middleware: [] as number[] };
    for (let run = 0; run < RUNS; run++) {
      let start = performance.now();
      for (let i = 0; i < CALLS; i++) {
        if (parseToken(token) && map.get(createHash("sha256").update(token).digest("hex"))) sink++;
      }
      samples.floor.push(((performance.now() - start) * 1e6) / CALLS);
      start = performance.now();
      for (let i = 0; i < CALLS; i++) if (await service.authenticate(token)) sink++;
      samples.authenticate.push(((performance.now() - start) * 1e6) / CALLS);
      start = performance.now();
      for (let i = 0; i < CALLS; i++) {
        const req = { headers: { authorization: header } } as never;
        await new Promise<void>((resolve) => middleware(req, {} as never, () => resolve()));
      }
      samples.middleware.push(((performance.now() - start) * 1e6) / CALLS);
    }
    if (sink !== 2 * RUNS * CALLS) throw new Error("a warm check failed");
    await service.close();
    const result: MicroResult = {
      runs: RUNS,
      calls: CALLS,
      floor_ns: median(samples.floor),
      authenticate_ns: median(samples.authenticate),
      middleware_ns: median(samples.middleware),
    };
    console.log(JSON.stringify(result));
  } finally {
    await knex.raw("drop schema if exists ?? cascade", [schema]);
    await knex.destroy();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});

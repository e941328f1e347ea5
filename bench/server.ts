// Benchmark server: one Express route, protected the way BENCH_CASE says, and beside it the bare
// route (/__bare) that the case is compared with in the same process, so that no difference
// between two processes (their JIT, their heap) passes for the cost of the check. Runs pinned
// by the runner to a core the load generator does not use. Prints its port when ready;
// GET /__stats counts the database queries it has sent and the CPU time it has used.
import { randomBytes, scrypt, scryptSync } from "node:crypto";
import type { AddressInfo } from "node:net";
import express from "express";
import knexFactory from "knex";
import { type ApiKeysOptions, apiKeyAuth, initialize, readSecretCredential } from "../index";

const env = process.env;
const CASE = env.BENCH_CASE ?? "bare";

function ok(_req: unknown, res: express.Response): void {
  res.setHeader("Content-Type", "application/json");
  res.end('{"ok":true}');
}

async function main(): Promise<void> {
  const knex = knexFactory({ client: "pg", connection: env.BENCH_DATABASE, pool: { min: 2, max: 10 } });
  // Every query that reaches PostgreSQL is counted (floods must send none), and UPDATEs apart,
  // for the last_used_at case.
  let queries = 0;
  let updates = 0;
  // Lookups of a key by its token, apart from background work (flushes, the token rules' minute
  // recheck): the floods must send none.
  let lookups = 0;
  knex.on("query", (query: { sql: string }) => {
    queries++;
    if (/^update\b/i.test(query.sql)) updates++;
    if (/"token" = \?/.test(query.sql)) lookups++;
  });
  const service = (options: ApiKeysOptions = {}) =>
    initialize({ database: knex, schema: env.BENCH_SCHEMA, runMigrations: false, redis: false, ...options });

  const app = express();
  app.get("/__bare", ok);
  app.get("/__stats", (_req, res) => {
    const { user, system } = process.cpuUsage();
    res.json({ queries, updates, lookups, cpu_us: user + system });
  });
  switch (CASE) {
    case "bare":
      app.get("/", ok);
      break;
    case "noop-middleware":
      // What Express charges for any middleware in front of a route: a second handler, no work.
      app.get("/", (_req, _res, next) => next(), ok);
      break;
    case "secret-memory":
      app.get("/", apiKeyAuth({ service: await service() }), ok);
      break;
    case "secret-scoped":
      // A route that requires a scope the key holds among others.
      app.get("/", apiKeyAuth({ service: await service(), scopes: ["orders:read"] }), ok);
      break;
    case "secret-memory-no-analytics":
      app.get("/", apiKeyAuth({ service: await service({ usageAnalytics: false }) }), ok);
      break;
    case "publishable-memory":
      app.get("/", apiKeyAuth({ type: "publishable", service: await service() }), ok);
      break;
    case "secret-redis":
      app.get("/", apiKeyAuth({ service: await service({ redis: env.BENCH_REDIS, cache: { memory: false, redisPrefix: env.BENCH_PREFIX } }) }), ok);
      break;
    case "secret-cluster":
      // One of several instances sharing a Redis Cluster: warm in memory, invalidated through the cluster.
      app.get("/", apiKeyAuth({ service: await service({ redis: { clusterNodes: env.BENCH_REDIS_CLUSTER!.split(",") }, cache: { redisPrefix: env.BENCH_PREFIX } }) }), ok);
      break;
    case "secret-nocache":
      app.get("/", apiKeyAuth({ service: await service({ cache: false }) }), ok);
      break;
    case "rate-limited":
      // Counted in Redis on every request: one round trip for the window, the key itself warm in memory.
      app.get("/", apiKeyAuth({ service: await service({ redis: env.BENCH_REDIS, cache: { redisPrefix: env.BENCH_PREFIX } }) }), ok);
      break;
    case "last-used":
      app.get("/", apiKeyAuth({ service: await service({ lastUsedFlushInterval: Number(env.BENCH_FLUSH_MS) }) }), ok);
      break;
    case "scrypt-reference": {
      // What the reference's authenticate costs per active secret key: scrypt(token, salt) with
      // Node's defaults (N=16384, r=8, p=1), the salt used as its hex string, 64 bytes out.
      const secret = env.BENCH_SECRET ?? "";
      const salt = randomBytes(16).toString("hex");
      const expected = scryptSync(secret, salt, 64).toString("hex");
      app.get("/", (req, res, next) => {
        const credential = readSecretCredential(req.headers.authorization);
        if (credential.kind !== "token") return void res.status(401).end();
        scrypt(credential.token, salt, 64, (error, hash) => {
          if (error) return next(error);
          if (hash.toString("hex") !== expected) return void res.status(401).end();
          ok(req, res);
        });
      });
      break;
    }
    default:
      throw new Error(`unknown BENCH_CASE ${CASE}`);
  }
  // Under --cpu-prof the profile is written when the process exits: a stop signal must exit.
  process.once("SIGTERM", () => process.exit(0));
  const server = app.listen(0, "127.0.0.1", () => {
    console.log(`listening ${(server.address() as AddressInfo).port}`);
  });
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});

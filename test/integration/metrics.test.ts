// Prometheus metrics through prom-client: verifications by type and code, lookups by the tier
// that answered, store and Redis latency and health, pending writes; nothing loaded when off.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import path from "node:path";
import { Registry } from "prom-client";
import { forEachBackend } from "../helpers/backends";
import { REDIS_URL, connectRedis, deletePrefix, testPrefix } from "../helpers/redis";

const ROOT = path.resolve(__dirname, "../..");

/** A metric's value for exactly these labels (0 when it has none yet). */
async function value(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = (await registry.getMetricsAsJSON()).find((found) => found.name === name);
  assert.ok(metric, `${name} is registered`);
  const match = (metric.values as { labels: Record<string, string | number>; value: number; metricName?: string }[]).find(
    (entry) =>
      (entry.metricName === undefined || entry.metricName === name || entry.metricName === `${name}_count`) &&
      Object.keys(labels).length === Object.keys(entry.labels).filter((label) => label !== "le").length &&
      Object.entries(labels).every(([label, expected]) => entry.labels[label] === expected) &&
      !("le" in entry.labels),
  );
  return match?.value ?? 0;
}

forEachBackend(
  "metrics",
  (db) => {
    it("counts verifications by type and code, and lookups by the tier that answered, with store latency and health", async () => {
      const registry = new Registry();
      const service = await db.open({ metrics: { registry }, lastUsedFlushInterval: 3_600_000 });
      const key = await db.service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
      const unknown = await db.unissuedToken("secret", { service });
      for (let i = 0; i < 3; i++) assert.equal((await service.verifyApiKey(key.token)).code, "valid");
      assert.equal((await service.verifyApiKey(key.token, { scopes: ["orders:write"] })).code, "forbidden");
      for (let i = 0; i < 2; i++) assert.equal((await service.verifyApiKey(unknown)).code, "not_found");
      assert.equal((await service.verifyApiKey("sk_malformed")).code, "not_found");

      assert.equal(await value(registry, "api_key_verifications_total", { type: "secret", code: "valid" }), 3);
      assert.equal(await value(registry, "api_key_verifications_total", { type: "secret", code: "forbidden" }), 1);
      assert.equal(await value(registry, "api_key_verifications_total", { type: "none", code: "not_found" }), 3);
      // The key and the unknown token each reach the store once; every other answer comes from memory.
      // The malformed token is refused before any lookup.
      assert.equal(await value(registry, "api_key_lookups_total", { tier: "store" }), 2);
      assert.equal(await value(registry, "api_key_lookups_total", { tier: "memory" }), 4);
      assert.equal(await value(registry, "api_key_store_lookup_duration_seconds", { outcome: "ok" }), 2);
      assert.equal(await value(registry, "api_key_store_up"), 1);
      assert.equal(await value(registry, "api_key_pending_writes", { kind: "last_used" }), 1);
      assert.equal(await value(registry, "api_key_pending_writes", { kind: "usage" }), 2, "the key and the no-key row of this hour");
      await service.close();
      assert.equal(await value(registry, "api_key_pending_writes", { kind: "usage" }), 0, "a closed service reports nothing pending");
      assert.match(await registry.metrics(), /^# HELP api_key_verifications_total /m);
    });

    it("times Redis commands and says whether Redis answers, and shares metrics between services on one registry", async function () {
      const redis = await connectRedis(this);
      if (!redis) return;
      const prefix = testPrefix();
      const registry = new Registry();
      try {
        // The memory tier off, so that every lookup reaches Redis.
        // Real time: entries in Redis are judged against when this instance subscribed, which a frozen clock cannot tell apart.
        const options = { metrics: { registry, prefix: "shop_" }, redis: REDIS_URL, cache: { memory: false, redisPrefix: prefix }, now: () => new Date() };
        const [a, b] = [await db.open(options), await db.open(options)];
        const key = await db.service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
        // The first lookups read the store and fill Redis (once the signing key is read); then Redis answers.
        for (let i = 0; i < 20 && (await value(registry, "shop_api_key_lookups_total", { tier: "redis" })) === 0; i++) {
          await a.verifyApiKey(key.token);
        }
        const fromStore = await value(registry, "shop_api_key_lookups_total", { tier: "store" });
        assert.ok(fromStore >= 1);
        await b.verifyApiKey(key.token);
        assert.equal(await value(registry, "shop_api_key_lookups_total", { tier: "redis" }), 2, "one from each service, on the shared registry");
        assert.equal(await value(registry, "shop_api_key_lookups_total", { tier: "store" }), fromStore);
        assert.equal(await value(registry, "shop_api_key_verifications_total", { type: "secret", code: "valid" }), fromStore + 2);
        assert.ok((await value(registry, "shop_api_key_redis_command_duration_seconds", { outcome: "ok" })) >= 3, "reads and the fill");
        assert.equal(await value(registry, "shop_api_key_redis_up"), 1);
      } finally {
        await deletePrefix(redis, prefix);
        redis.disconnect();
      }
    });

    it("refuses a malformed metrics option", async () => {
      for (const metrics of ["yes", { registry: {} }, { prefix: "9bad" }, { extra: 1 }]) {
        await assert.rejects(db.open({ metrics } as never), (error: Error) => error instanceof TypeError && /metrics/.test(error.message));
      }
    });
  },
  ["postgres"],
);

describe("metrics in a process of its own", function () {
  this.timeout(30_000);

  it("the metrics example serves /metrics with the counts of its requests", () => {
    const output = execFileSync(process.execPath, ["--import", "tsx", "examples/metrics.ts"], { cwd: ROOT, encoding: "utf8" });
    assert.match(output, /^GET \/reports with the key: 200$/m);
    assert.match(output, /^api_key_verifications_total\{type="secret",code="valid"\} 1$/m);
  });

  it("loads no prom-client", () => {
    const script = `
      const { initialize } = require("./index.ts");
      initialize({ database: "pglite://memory" }).then(async (service) => {
        await service.verifyApiKey("sk_x");
        await service.close();
        process.stdout.write(JSON.stringify(Object.keys(require.cache).filter((file) => file.includes("prom-client"))));
      });
    `;
    const loaded = JSON.parse(execFileSync(process.execPath, ["--import", "tsx", "-e", script], { cwd: ROOT, encoding: "utf8", env: { ...process.env, DATABASE_URL: "" } })) as string[];
    assert.deepEqual(loaded, []);
  });
});

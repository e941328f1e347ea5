// The Redis tier on a private Redis Cluster of three masters with a replica each: entries,
// versions and invalidations work there as on one Redis, no command is refused for CROSSSLOT,
// the CLI reaches apps on it, and resharding a slot and failing a master over under steady
// traffic cost no false accept, no false reject and no 5xx. One cluster serves the whole suite.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { Cluster } from "ioredis";
import { hashToken } from "../../lib/tokens";
import { initialize } from "../../setup/initialize";
import type { ApiKeysOptions } from "../../setup/options";
import { redisNames } from "../../store/cache/redis-names";
import { forEachBackend } from "../helpers/backends";
import { testPrefix } from "../helpers/redis";
import { PrivateCluster, requireRedisTools, waitFor } from "../helpers/redis-topologies";
import { POSTGRES_URL } from "../helpers/services";
import { BOUND_MS, Load, listen, withinBound } from "../helpers/verification-load";

const execFileAsync = promisify(execFile);

forEachBackend(
  "Redis Cluster",
  (db) => {
    let cluster: PrivateCluster;
    let admin: Cluster;
    let prefix = "";
    const logged: string[] = [];
    const logger = {
      warn: (message: string, ...details: unknown[]) => logged.push([message, ...details.map(String)].join(": ")),
      error: (message: string, ...details: unknown[]) => logged.push([message, ...details.map(String)].join(": ")),
    };
    const names = () => redisNames(prefix, true);
    // The real clock: an entry counts only if written after the reader subscribed, by the clock.
    const open = (options: ApiKeysOptions = {}) =>
      db.open({ redis: { clusterNodes: cluster.addresses.split(",") }, now: () => new Date(), logger, ...options, cache: { redisPrefix: prefix, ...options.cache } });

    before(async function () {
      this.timeout(60_000);
      await requireRedisTools(this);
      cluster = await PrivateCluster.start(3, 1);
      admin = new Cluster(cluster.startupNodes);
      admin.on("error", () => {});
    });
    after(async () => {
      admin?.disconnect();
      await cluster?.stop();
    });
    beforeEach(() => {
      prefix = testPrefix();
      logged.length = 0;
    });
    afterEach(() => {
      assert.deepEqual(logged.filter((line) => /CROSSSLOT/.test(line)), [], "a command was refused for CROSSSLOT");
    });

    it("keeps a token's entry and version in one slot, spreads tokens over the masters, and serves entries from Redis", async () => {
      const [a, b] = [await open(), await open()];
      await sleep(2);
      const keys = await a.createApiKeys(Array.from({ length: 12 }, (_, i) => ({ title: `k${i}`, type: "secret" as const, created_by: "u" })));
      for (const key of keys) assert.ok(await a.authenticate(key.token));
      await a.revoke(keys[0]!.id, { revoked_by: "u" });
      assert.equal(await a.authenticate(keys[0]!.token), false);

      const slots = new Set<number>();
      for (const key of keys) {
        const cacheKey = hashToken(key.token);
        assert.equal(await admin.exists(names().entry(cacheKey)), 1, "the entry is in the cluster");
        const slot = Number(await admin.cluster("KEYSLOT", names().entry(cacheKey)));
        assert.equal(Number(await admin.cluster("KEYSLOT", names().version(cacheKey))), slot);
        slots.add((await cluster.ownerOf(slot)).port);
      }
      assert.equal(await admin.exists(names().version(hashToken(keys[0]!.token))), 1, "the revocation bumped the version");
      assert.ok(slots.size > 1, "tokens spread over more than one master");

      const { result, queries } = await db.countQueries(async () => Promise.all(keys.slice(1).map((key) => b.authenticate(key.token))));
      assert.ok(result.every((found, i) => found && found.id === keys[i + 1]!.id));
      assert.equal(queries.length, 0, "B found every entry in Redis");
      assert.equal(await b.authenticate(keys[0]!.token), false);
      assert.deepEqual(logged, [], "nothing went wrong with Redis");
    });

    it(`a revocation on one instance is refused by the other within ${BOUND_MS} ms, both ways, 20 times`, async () => {
      // The in-process tier keeps keys far longer than the test: only the invalidation can reach them.
      const [a, b] = [await open({ cache: { ttl: 600_000 } }), await open({ cache: { ttl: 600_000 } })];
      const delays: number[] = [];
      for (let rep = 0; rep < 20; rep++) {
        const [from, to] = rep % 2 === 0 ? [a, b] : [b, a];
        const key = await from.createApiKeys({ title: `k${rep}`, type: "secret", created_by: "u" });
        assert.ok((await from.authenticate(key.token)) && (await to.authenticate(key.token)), "both warm");
        await from.revoke(key.id, { revoked_by: "u" });
        assert.equal(await from.authenticate(key.token), false, "the revoking instance at once");
        delays.push(await withinBound(async () => (await to.authenticate(key.token)) === false, `revoke ${rep}`));
      }
      delays.sort((x, y) => x - y);
      console.log(`      revoke: median ${delays[10]!.toFixed(1)} ms, max ${delays.at(-1)!.toFixed(1)} ms`);
      assert.deepEqual(logged, []);
    });

    it(`a change to keys in many slots drops every entry and reaches every instance within ${BOUND_MS} ms`, async () => {
      const [a, b] = [await open({ cache: { ttl: 600_000 } }), await open({ cache: { ttl: 600_000 } })];
      await sleep(2);
      const keys = await a.createApiKeys(Array.from({ length: 40 }, (_, i) => ({ title: `k${i}`, type: "secret" as const, created_by: "u" })));
      for (const key of keys) assert.ok((await a.authenticate(key.token)) && (await b.authenticate(key.token)));
      await a.softDeleteApiKeys(keys.map((key) => key.id));
      await withinBound(async () => (await Promise.all(keys.map((key) => b.authenticate(key.token)))).every((found) => found === false), "soft delete");
      const left = await Promise.all(keys.map((key) => admin.exists(names().entry(hashToken(key.token)))));
      assert.deepEqual(left.filter(Boolean), [], "every entry is gone");
      assert.deepEqual(logged, []);
    });

    it("when a subscriber's connection drops, it subscribes again through a node of the cluster and clears what it held meanwhile", async () => {
      const [a, b] = [await open({ cache: { ttl: 600_000 } }), await open({ cache: { ttl: 600_000 } })];
      const channel = names().channel;
      assert.equal(await cluster.subscribers(channel), 2);
      const key = await a.createApiKeys({ title: "k", type: "secret", created_by: "u" });
      assert.ok(await b.authenticate(key.token));
      await cluster.dropSubscribers();
      await waitFor("both subscribers back", async () => (await cluster.subscribers(channel)) === 2);
      // B cleared its in-process tier when the subscription dropped, and no longer vouches for
      // what Redis held from before: the lookup goes to the database.
      const { result, queries } = await db.countQueries(() => b.authenticate(key.token));
      assert.ok(result);
      assert.equal(queries.length, 1);
      await a.revoke(key.id, { revoked_by: "u" });
      await withinBound(async () => (await b.authenticate(key.token)) === false, "revocation after the drop");
    });

    it("while the cluster does not answer, authenticates from the database, saying so once when it starts and once when it ends", async () => {
      const a = await open({ cache: { memory: false } });
      await sleep(2);
      const key = await a.createApiKeys({ title: "k", type: "secret", created_by: "u" });
      assert.ok(await a.authenticate(key.token));
      await cluster.pause(600);
      const started = performance.now();
      while (performance.now() - started < 500) assert.ok(await a.authenticate(key.token), "a valid key while Redis is silent");
      await sleep(200);
      // The pause is over: the next answer from Redis ends the run.
      assert.ok(await a.authenticate(key.token));
      assert.deepEqual(
        logged.map((line) => line.replace(/;.*/s, "")),
        ["express-api-keys: Redis is unavailable", "express-api-keys: Redis is back"],
      );
    });

    it("takes an app's own Cluster client, leaves it open on close(), and refuses a prefix that would split slots", async () => {
      const appCluster = new Cluster(cluster.startupNodes);
      try {
        const service = await initialize({ database: db.knex, schema: db.schema, redis: appCluster, cache: { redisPrefix: prefix }, logger });
        const key = await service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
        assert.ok(await service.authenticate(key.token));
        assert.equal(await appCluster.exists(names().entry(hashToken(key.token))), 1, "the app's client was used");
        await service.close();
        assert.equal(appCluster.status, "ready");
        await assert.rejects(
          initialize({ database: db.knex, schema: db.schema, redis: appCluster, cache: { redisPrefix: "apikey{" } }),
          (error: Error) => error instanceof TypeError && /cache\.redisPrefix/.test(error.message),
        );
        // A whole hash tag in the prefix puts every key in one slot: allowed.
        const pinned = await initialize({ database: db.knex, schema: db.schema, redis: appCluster, cache: { redisPrefix: `{${prefix}}` }, logger });
        assert.ok(await pinned.authenticate(key.token));
        await pinned.close();
      } finally {
        appCluster.disconnect();
      }
      assert.deepEqual(logged, []);
    });

    for (const via of ["--redis-cluster-nodes", "REDIS_CLUSTER_NODES"]) {
      it(`a revocation by the CLI reaches a running app within ${BOUND_MS} ms, given ${via}`, async function () {
        this.timeout(60_000);
        const app = await open({ cache: { ttl: 600_000 } });
        const key = await app.createApiKeys({ title: "cached", type: "secret", created_by: "u" });
        assert.ok(await app.authenticate(key.token));
        const env: NodeJS.ProcessEnv = { ...process.env, API_KEYS_REDIS_PREFIX: prefix };
        for (const name of ["DATABASE_URL", "REDIS_URL", "REDIS_SENTINELS", "REDIS_SENTINEL_NAME", "API_KEYS_PEPPER", "API_KEYS_SCHEMA"]) delete env[name];
        const args = ["--database", POSTGRES_URL, "--schema", db.schema!, "revoke", key.id];
        if (via.startsWith("--")) args.unshift(via, cluster.addresses);
        else env.REDIS_CLUSTER_NODES = cluster.addresses;
        const { stderr } = await execFileAsync(process.execPath, ["--import", "tsx", "cli/index.ts", ...args], {
          cwd: path.resolve(__dirname, "../.."),
          env,
          timeout: 60_000,
        });
        const exited = performance.now();
        assert.equal(stderr, "");
        while (await app.authenticate(key.token)) {
          if (performance.now() - exited > BOUND_MS) assert.fail(`the app still accepts the key ${BOUND_MS} ms after the CLI revoked it`);
          await sleep(1);
        }
      });
    }

    it("resharding slots and failing a master over under steady traffic: no false accept, no false reject, no 5xx", async function () {
      this.timeout(60_000);
      // A asks Redis whenever its short in-process tier lapses; B has none and asks on every request.
      const a = await open({ cache: { ttl: 50 } });
      const b = await open({ cache: { memory: false } });
      await sleep(2);
      const make = (title: string, count: number) =>
        a.createApiKeys(Array.from({ length: count }, (_, i) => ({ title: `${title}${i}`, type: "secret" as const, created_by: "u" })));
      const valid = [...(await make("valid", 6)), await a.createApiKeys({ title: "limited", type: "secret", created_by: "u", rate_limits: [{ name: "burst", limit: 1_000_000, duration: 60 }] })];
      const revoked = await make("revoked", 3);
      for (const key of revoked) await a.revoke(key.id, { revoked_by: "u" });
      const doomed = await make("doomed", 8);
      const unknown = await db.unissuedTokens("secret", 3, { service: a });

      const servers = await Promise.all([a, b].map(listen));
      const load = new Load(servers);
      for (const key of valid) load.expect(key.token, "valid");
      for (const key of [...revoked]) load.expect(key.token, "refused");
      for (const token of unknown) load.expect(token, "refused");
      for (const key of doomed) load.expect(key.token, "valid");
      const running = load.run(8);
      try {
        await sleep(200);
        // Revoke a doomed key now and then, on either instance, while the topology changes.
        const revoking = (async () => {
          for (const [i, key] of doomed.entries()) {
            load.revoking(key.token);
            await (i % 2 === 0 ? a : b).revoke(key.id, { revoked_by: "u" });
            load.revoked(key.token);
            await sleep(150);
          }
        })();

        const masters = await cluster.masters();
        const slots = new Set<number>();
        for (const key of [...valid, ...doomed]) slots.add(Number(await admin.cluster("KEYSLOT", names().entry(hashToken(key.token)))));
        for (const slot of slots) {
          const owner = await cluster.ownerOf(slot);
          const target = masters[(masters.findIndex((node) => node.id === owner.id) + 1) % masters.length]!;
          await cluster.moveSlot(slot, target.port, 20);
        }
        const [firstSlot] = slots;
        await cluster.failOver((await cluster.ownerOf(firstSlot!)).port);
        await revoking;
        await sleep(300);
      } finally {
        load.stop();
        await running;
        await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
      }
      console.log(`      ${load.requests} requests, ${load.slow} over 250 ms`);
      assert.deepEqual(load.failures, []);
      assert.ok(load.requests > 500, `${load.requests} requests`);
      for (const key of doomed) {
        assert.equal(await a.authenticate(key.token), false);
        assert.equal(await b.authenticate(key.token), false);
      }
    });
  },
  ["postgres"],
);

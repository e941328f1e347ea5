// The Redis tier on a private master and replica watched by three Sentinels: after SENTINEL
// FAILOVER every instance's subscription comes back on the new master and revocations reach
// every instance again, and no valid request fails meanwhile.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import type { ApiKeyService } from "../../lib/service";
import type { ApiKeysOptions } from "../../setup/options";
import { forEachBackend } from "../helpers/backends";
import { testPrefix } from "../helpers/redis";
import { PrivateSentinels, requireRedisTools, waitFor } from "../helpers/redis-topologies";
import { Load, listen, withinBound } from "../helpers/verification-load";

forEachBackend(
  "Redis through Sentinel",
  (db) => {
    let sentinels: PrivateSentinels;

    before(async function () {
      this.timeout(30_000);
      await requireRedisTools(this);
      sentinels = await PrivateSentinels.start();
    });
    after(async () => {
      await sentinels?.stop();
    });

    it("after SENTINEL FAILOVER, subscriptions come back and revocations reach every instance; no request fails meanwhile", async function () {
      this.timeout(60_000);
      const prefix = testPrefix();
      const logged: string[] = [];
      const logger = { warn: (message: string) => logged.push(message), error: (message: string) => logged.push(message) };
      const appClient = new Redis({ sentinels: sentinels.sentinelNodes, name: sentinels.name, failoverDetector: true });
      appClient.on("error", () => {});
      const open = (redis: ApiKeysOptions["redis"], ttl: number | false) =>
        db.open({ redis, logger, now: () => new Date(), cache: ttl === false ? { redisPrefix: prefix, memory: false } : { redisPrefix: prefix, ttl } });
      try {
        // A opens its own client from the Sentinels' addresses, B takes the app's; both keep keys
        // in memory far longer than the test, so only invalidations can reach them. C has no
        // in-process tier and asks Redis on every request, through the failover.
        const byAddress = { sentinels: sentinels.addresses.split(","), sentinelName: sentinels.name };
        const [a, b, c] = [await open(byAddress, 600_000), await open(appClient, 600_000), await open(byAddress, false)];
        await sleep(2);
        const channel = `${prefix}invalidate`;
        const first = await sentinels.masterPort();
        assert.equal(await sentinels.subscribers(first, channel), 3, "every instance subscribed on the master");
        await revokeAcross(a, b, "before the failover");

        const valid = await a.createApiKeys(Array.from({ length: 4 }, (_, i) => ({ title: `valid${i}`, type: "secret" as const, created_by: "u" })));
        const revoked = await a.createApiKeys({ title: "revoked", type: "secret", created_by: "u" });
        await a.revoke(revoked.id, { revoked_by: "u" });
        const servers = await Promise.all([a, b, c].map(listen));
        const load = new Load(servers);
        for (const key of valid) load.expect(key.token, "valid");
        load.expect(revoked.token, "refused");
        for (const token of await db.unissuedTokens("secret", 2, { service: a })) load.expect(token, "refused");
        const running = load.run(6);
        try {
          await sleep(200);
          const promoted = await sentinels.failOver();
          assert.notEqual(promoted, first);
          await waitFor("every instance to subscribe on the new master", async () => (await sentinels.subscribers(promoted, channel)) === 3);
          await revokeAcross(a, b, "after the failover");
          await revokeAcross(b, a, "after the failover");
          await sleep(200);
        } finally {
          load.stop();
          await running;
          await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
        }
        console.log(`      ${load.requests} requests through the failover`);
        assert.deepEqual(load.failures, []);
        assert.ok(load.requests > 200, `${load.requests} requests`);
        await a.close();
        await b.close();
        assert.equal(appClient.status, "ready", "the app's client stays open");
      } finally {
        appClient.disconnect();
      }
      assert.ok(!logged.some((line) => /not one of ours|could not apply/.test(line)), logged.join("\n"));
    });
  },
  ["postgres"],
);

/** A key revoked through `from` is refused by `to` within the bound, though `to` holds it in memory. */
async function revokeAcross(from: ApiKeyService, to: ApiKeyService, when: string): Promise<void> {
  const key = await from.createApiKeys({ title: "doomed", type: "secret", created_by: "u" });
  assert.ok((await from.authenticate(key.token)) && (await to.authenticate(key.token)), "both warm");
  await from.revoke(key.id, { revoked_by: "u" });
  await withinBound(async () => (await to.authenticate(key.token)) === false, `revocation ${when}`);
}

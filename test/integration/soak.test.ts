import assert from "node:assert/strict";
import type { Redis } from "ioredis";
import { runSoak } from "../../bench/soak";
import { forEachBackend } from "../helpers/backends";
import { REDIS_URL, connectRedis } from "../helpers/redis";

forEachBackend(
  "soak (10 s)",
  (db) => {
    let redis: Redis | undefined;
    before(async function () {
      redis = await connectRedis(this);
    });
    after(() => redis?.disconnect());

    it("two instances under mixed traffic and concurrent changes: no false accept, no false reject, no 5xx", async function () {
      this.timeout(60_000);
      const report = await runSoak({ seconds: 10, database: db.knex, redis: REDIS_URL });
      console.log(`      ${report.requests} requests, ${report.mutations} changes, memory ${report.memory_start_mib.toFixed(0)} -> ${report.memory_end_mib.toFixed(0)} MiB`);
      assert.ok(report.requests > 1000 && report.mutations > 50, JSON.stringify(report));
      assert.deepEqual(
        { false_accepts: report.false_accepts, false_rejects: report.false_rejects, server_errors: report.server_errors, problems: report.problems },
        { false_accepts: 0, false_rejects: 0, server_errors: 0, problems: [] },
      );
    });
  },
  ["postgres"],
);

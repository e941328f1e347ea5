import assert from "node:assert/strict";
import type { ApiKeyDTO } from "../../lib/types";
import { forEachBackend } from "../helpers/backends";
import { type CliResult, runCli } from "../helpers/run-cli";
import { POSTGRES_URL } from "../helpers/services";

forEachBackend(
  "CLI key policy",
  (db) => {
    /** Runs the CLI on this test's schema in PostgreSQL, with no other configuration from the environment. */
    function cli(...args: string[]): Promise<CliResult> {
      return runCli({ DATABASE_URL: POSTGRES_URL }, ["--schema", db.schema!, ...args]);
    }

    it("refuses malformed policy flags as usage errors (exit 2), naming the flag", async function () {
      this.timeout(60_000);
      const cases: [string[], RegExp][] = [
        [["create", "--title", "x", "--type", "secret", "--rate-limit", "per_minute=100"], /--rate-limit .*expected name:limit\/duration/],
        [["create", "--title", "x", "--type", "secret", "--expires-in", "60", "--expires-at", "2030-01-01"], /--expires-in .* cannot be used with option '--expires-at/],
        [["create", "--title", "x", "--type", "secret", "--metadata", "[1,2]"], /--metadata .*expected a JSON object/],
        [["update", "apk_1", "--clear-expiry", "--expires-at", "2030-01-01"], /--clear-expiry' cannot be used with option '--expires-at/],
        [["update", "apk_1"], /nothing to update/],
        [["create", "--title", "x", "--type", "secret", "--allowed-ip", "10.0.0.0/33"], /--allowed-ip .*expected an IP address or a CIDR range/],
        [["update", "apk_1", "--clear-allowed-ips", "--allowed-ip", "10.0.0.1"], /--clear-allowed-ips' cannot be used with option '--allowed-ip/],
      ];
      for (const [args, message] of cases) {
        const run = await cli(...args);
        assert.equal(run.code, 2, `${args.join(" ")}: ${run.stderr}`);
        assert.match(run.stderr, message);
        assert.equal(run.stdout, "");
      }
    });

    it("creates and updates keys with every policy flag, lists them by owner with STATUS, OWNER and SCOPES, soft-deletes and restores them", async function () {
      this.timeout(120_000);
      const created = await cli(
        "create", "--title", "Partner", "--type", "secret", "--json",
        "--expires-in", "1d", "--scope", "orders:read", "--scope", "orders:*", "--owner", "org_1",
        "--metadata", '{"plan":"pro"}', "--rate-limit", "per_minute:100/60", "--rate-limit", "daily:10000/1d",
        "--remaining", "1000", "--refill", "1000/month", "--allowed-ip", "10.0.0.0/8", "--allowed-ip", "2001:DB8::/32",
      );
      assert.equal(created.code, 0, created.stderr);
      const key = JSON.parse(created.stdout) as ApiKeyDTO & Record<string, unknown>;
      assert.deepEqual(
        [key.scopes, key.owner_id, key.metadata, key.rate_limits, key.remaining, key.refill],
        [["orders:read", "orders:*"], "org_1", { plan: "pro" }, [{ name: "per_minute", limit: 100, duration: 60 }, { name: "daily", limit: 10000, duration: 86400 }], 1000, { amount: 1000, interval: "month" }],
      );
      assert.deepEqual(key.allowed_ips, ["10.0.0.0/8", "2001:db8::/32"]);
      const cleared = await cli("update", key.id, "--clear-allowed-ips", "--json");
      assert.deepEqual((JSON.parse(cleared.stdout) as ApiKeyDTO).allowed_ips, []);
      const expiresIn = new Date(key.expires_at as unknown as string).getTime() - Date.now();
      assert.ok(expiresIn > 86_400_000 - 600_000 && expiresIn <= 86_400_000, `expires in a day: ${expiresIn}`);

      const other = await db.service.createApiKeys({ title: "Other \u001b[2J", type: "secret", created_by: "u" });
      const listed = await cli("list", "--owner", "org_1");
      assert.equal(listed.code, 0, listed.stderr);
      assert.match(listed.stdout, new RegExp(`^${key.id}\\s+secret\\s+\\S+\\s+Partner\\s+expires \\d{4}-\\S+\\s+org_1\\s+orders:read,orders:\\*\\s+never$`, "m"));
      assert.equal(listed.stdout.includes(other.id), false);

      const updated = await cli("update", key.id, "--title", "Partner B", "--clear-expiry", "--owner", "org \u001b[31m2", "--scope", "audit:read", "--json");
      assert.equal(updated.code, 0, updated.stderr);
      const after = JSON.parse(updated.stdout) as Record<string, unknown>;
      assert.deepEqual([after.title, after.expires_at, after.scopes, after.owner_id], ["Partner B", null, ["audit:read"], "org \u001b[31m2"]);
      const escaped = await cli("list");
      assert.match(escaped.stdout, new RegExp(`^${key.id}\\s.*\\sactive\\s+org \\\\x1b\\[31m2\\s+audit:read\\s+never$`, "m"), "the owner escaped");
      assert.equal(/\u001b/.test(escaped.stdout), false);

      const softDeleted = await cli("soft-delete", key.id, other.id);
      assert.deepEqual([softDeleted.code, softDeleted.stdout.trim()], [0, `Soft-deleted ${key.id}, ${other.id}`]);
      assert.equal(await db.service.authenticate(key.token), false);
      assert.match((await cli("list")).stdout, /^0 of 0 keys$/m, "soft-deleted keys are hidden");
      const withDeleted = await cli("list", "--deleted");
      assert.match(withDeleted.stdout, new RegExp(`^${key.id}\\s.*\\sdeleted\\s`, "m"));
      const restored = await cli("restore", key.id);
      assert.deepEqual([restored.code, restored.stdout.trim()], [0, `Restored ${key.id}`]);
      const uncached = await db.open({ cache: false, now: () => new Date() });
      assert.equal(((await uncached.authenticate(key.token)) as ApiKeyDTO).id, key.id);

      const expired = await db.service.createApiKeys({ title: "Brief", type: "secret", created_by: "u", expires_in: 1 } as never);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      assert.match((await cli("list")).stdout, new RegExp(`^${expired.id}\\s.*\\sexpired\\s`, "m"));
      const active = await cli("list", "--active", "--json");
      assert.deepEqual((JSON.parse(active.stdout) as { api_keys: { id: string }[] }).api_keys.map((k) => k.id), [key.id]);
    });
  },
  ["postgres"],
);

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { forEachBackend } from "../helpers/backends";
import { POSTGRES_URL } from "../helpers/services";

const execFileAsync = promisify(execFile);
const root = path.resolve(__dirname, "../..");

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

forEachBackend(
  "CLI",
  (db) => {
    async function cli(...args: string[]): Promise<Result> {
      const env: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: POSTGRES_URL };
      delete env.REDIS_URL;
      try {
        const { stdout, stderr } = await execFileAsync(process.execPath, ["--import", "tsx", "cli/index.ts", "--schema", db.schema!, ...args], {
          cwd: root,
          env,
          timeout: 60_000,
        });
        return { code: 0, stdout, stderr };
      } catch (error) {
        const failed = error as { code: number; stdout: string; stderr: string };
        return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
      }
    }

    it("creates, lists, rolls, revokes and deletes keys, with the exit codes a shell expects", async function () {
      this.timeout(120_000);
      const created = await cli("create", "--title", "Deploy bot", "--type", "secret", "--created-by", "ops", "--json");
      assert.equal(created.code, 0, created.stderr);
      const key = JSON.parse(created.stdout) as { id: string; token: string };
      assert.match(key.token, /^sk_/);
      assert.ok(await db.service.authenticate(key.token), "the printed token works");

      const listed = await cli("list");
      assert.equal(listed.code, 0, listed.stderr);
      assert.match(listed.stdout, /^ID\s+TYPE\s+KEY\s+TITLE\s+STATUS\s+LAST USED$/m);
      assert.match(listed.stdout, new RegExp(`^${key.id}\\s+secret\\s+sk_\\S{3}\\*\\*\\*\\S{3}\\s+Deploy bot\\s+active\\s+never$`, "m"));
      assert.equal(listed.stdout.includes(key.token), false, "list never shows a secret");

      const rolled = await cli("roll", key.id, "--in", "60", "--by", "ops");
      assert.equal(rolled.code, 0, rolled.stderr);
      const successor = /^token: (sk_\S+)$/m.exec(rolled.stdout)?.[1];
      assert.ok(successor && (await db.service.authenticate(successor)));
      const successorId = /into (apk_\S+)/.exec(rolled.stdout)?.[1];

      const json = JSON.parse((await cli("list", "--json", "--active")).stdout) as { api_keys: { id: string; revoked_at: string | null }[]; count: number };
      assert.deepEqual(json.api_keys.map((k) => k.id).sort(), [key.id, successorId].sort(), "the old key is active until its grace period ends");

      const revoked = await cli("revoke", successorId!);
      assert.equal(revoked.code, 0, revoked.stderr);
      assert.match(revoked.stdout, new RegExp(`^Revoked ${successorId}: stops working at \\d{4}-`));
      // This process cached the key before the CLI revoked it (without Redis, only a fresh read sees
      // it), and the CLI revoked it by the real clock, not by this test's frozen one.
      const uncached = await db.open({ cache: false, now: () => new Date() });
      assert.equal(await uncached.authenticate(successor!), false);

      const refused = await cli("delete", key.id);
      assert.equal(refused.code, 1);
      assert.equal(refused.stderr.trim(), `error: Cannot delete api keys that are not revoked - ${key.id}`);
      const deleted = await cli("delete", successorId!);
      assert.equal(deleted.code, 0, deleted.stderr);
      assert.equal((await db.service.listApiKeys({ id: successorId! })).length, 0);
    });

    it("links sales channels and runs migrations", async function () {
      this.timeout(60_000);
      const key = await db.service.createApiKeys({ title: "store", type: "publishable", created_by: "u" });
      const linked = await cli("link", key.id, "--add", "sc_1", "sc_2");
      assert.deepEqual([linked.code, linked.stdout.trim()], [0, `${key.id} sales channels: sc_1, sc_2`]);
      const migrated = await cli("migrate");
      assert.deepEqual([migrated.code, migrated.stdout.trim()], [0, "The key tables are up to date."]);
    });

    it("rejects bad arguments with exit code 2 and says what is wrong", async function () {
      this.timeout(60_000);
      const badType = await cli("create", "--title", "x", "--type", "admin");
      assert.equal(badType.code, 2);
      assert.match(badType.stderr, /argument 'admin' is invalid\. Allowed choices are secret, publishable/);
      const badDelay = await cli("revoke", "apk_x", "--in", "soon");
      assert.equal(badDelay.code, 2);
      assert.match(badDelay.stderr, /expected a number of seconds/);
      const unknown = await cli("frobnicate");
      assert.equal(unknown.code, 2);
      assert.match(unknown.stderr, /unknown command 'frobnicate'/);
      const missing = await cli("revoke", "apk_01ARZ3NDEKTSV4RRFFQ69G5FAV");
      assert.deepEqual([missing.code, missing.stderr.trim()], [1, 'error: ApiKey with id "apk_01ARZ3NDEKTSV4RRFFQ69G5FAV" not found']);
      for (const command of ["create", "list", "revoke", "roll", "delete", "link", "migrate"]) {
        const help = await cli(command, "--help");
        assert.equal(help.code, 0, command);
        assert.match(help.stdout, new RegExp(`^Usage: express-api-keys ${command}`), command);
      }
    });
  },
  ["postgres"],
);

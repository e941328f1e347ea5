import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import type { Redis } from "ioredis";
import { initialize } from "../../setup/initialize";
import { forEachBackend } from "../helpers/backends";
import { REDIS_URL, connectRedis, deletePrefix, testPrefix } from "../helpers/redis";
import { type CliResult, runCli } from "../helpers/run-cli";
import { POSTGRES_URL } from "../helpers/services";


/**
 * What a terminal would act on, or what changes how the text around it reads: C0 controls but
 * the newline, DEL, C1 controls (U+0080-U+009F, which some terminals take as ESC sequences),
 * bidi controls, line and paragraph separators; and U+FFFD, the trace of bytes that were not UTF-8.
 */
const UNSAFE_OUTPUT = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ufffd]/u;

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

describe("CLI on the embedded database", function () {
  this.timeout(120_000);
  let dir = "";
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "api-keys-cli-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("fails, naming them, for ids it did not change, instead of reporting them done", async function () {
    this.timeout(60_000);
    const database = "sqlite://memory";
    const missing = "apk_01M8T801KE16YYKWA7JDM23A5Z";
    for (const command of ["soft-delete", "restore", "delete"]) {
      const result = await runCli({}, ["--database", database, command, missing]);
      assert.equal(result.code, 1, `${command}: ${result.stdout}`);
      assert.equal(result.stdout, "", command);
      assert.match(result.stderr, new RegExp(`^error: No key with id ${missing}`), command);
    }
  });

  it("says in one line, with no stack trace, which database cannot be used and why: unreachable, a refused login, an unknown database", async function () {
    this.timeout(60_000);
    const cases: [string, string][] = [
      ["postgres://postgres@127.0.0.1:1/test", 'PostgreSQL at 127.0.0.1:1 (database "test"), cannot be used: connect ECONNREFUSED 127.0.0.1:1'],
      ["postgres://no_such_role@127.0.0.1:5432/test", 'PostgreSQL at 127.0.0.1:5432 (database "test"), cannot be used: role "no_such_role" does not exist'],
      ["postgres://postgres@127.0.0.1:5432/no_such_database", 'PostgreSQL at 127.0.0.1:5432 (database "no_such_database"), cannot be used: database "no_such_database" does not exist'],
      ["mysql://root:wrong@127.0.0.1:3306/test", "MySQL at 127.0.0.1:3306 (database \"test\"), cannot be used: Access denied for user 'root'@"],
    ];
    for (const [url, expected] of cases) {
      const result = await runCli({}, ["--database", url, "list"]);
      assert.equal(result.code, 1, url);
      assert.equal(result.stderr.split("\n").length, 2, `exactly one line: ${JSON.stringify(result.stderr)}`);
      assert.ok(result.stderr.startsWith(`error: The database, ${expected}`), result.stderr);
      assert.ok(!result.stderr.includes("wrong"), "never the password");
    }
  });

  it("answers a usage error in one line that points to --help, not with the whole help", async () => {
    for (const args of [["frobnicate"], ["create", "--type", "admin", "--title", "x"], ["create"]]) {
      const result = await runCli({}, ["--database", "sqlite://memory", ...args]);
      assert.equal(result.code, 2, args.join(" "));
      assert.equal(result.stderr.split("\n").length, 2, `exactly one line: ${JSON.stringify(result.stderr)}`);
      assert.match(result.stderr, /^error: .* \(--help shows usage\)\n$/);
    }
  });

  it("says in one line on stderr who holds a locked directory and what to do, and exits 1", async () => {
    const database = `pglite://${path.join(dir, "db")}`;
    const holder = await initialize({ database, cache: false });
    try {
      const run = await runCli({}, ["--database", database, "list"]);
      assert.equal(run.code, 1, run.stderr);
      assert.equal(run.stdout, "");
      assert.equal(run.stderr.split("\n").length, 2, `exactly one line: ${JSON.stringify(run.stderr)}`);
      assert.match(run.stderr, new RegExp(`^error: The embedded database in \\S*db is open in another process \\(pid ${process.pid}\\)\\. Stop that process first`));
    } finally {
      await holder.close();
    }
    const freed = await runCli({}, ["--database", database, "list"]);
    assert.equal(freed.code, 0, freed.stderr);
  });
});

forEachBackend(
  "CLI",
  (db) => {
    /** Runs the CLI on this test's schema in PostgreSQL. */
    function cliWith(extraEnv: NodeJS.ProcessEnv, ...args: string[]): Promise<CliResult> {
      return runCli({ DATABASE_URL: POSTGRES_URL, ...extraEnv }, ["--schema", db.schema!, ...args]);
    }

    function cli(...args: string[]): Promise<CliResult> {
      return cliWith({}, ...args);
    }

    it("creates, lists, rolls, revokes and deletes keys, with the exit codes a shell expects", async function () {
      this.timeout(120_000);
      const created = await cli("create", "--title", "Deploy bot", "--type", "secret", "--created-by", "ops", "--json");
      assert.equal(created.code, 0, created.stderr);
      const key = JSON.parse(created.stdout) as { id: string; token: string };
      assert.match(key.token, /^sk_[0-9A-Za-z]{50}$/, "a tagged (format 2) token");
      assert.ok(await db.service.authenticate(key.token), "the printed token works");

      const listed = await cli("list");
      assert.equal(listed.code, 0, listed.stderr);
      assert.match(listed.stdout, /^ID\s+TYPE\s+KEY\s+TITLE\s+STATUS\s+OWNER\s+SCOPES\s+LAST USED$/m);
      assert.match(listed.stdout, new RegExp(`^${key.id}\\s+secret\\s+sk_\\S{3}\\*\\*\\*\\S{3}\\s+Deploy bot\\s+active\\s+-\\s+-\\s+never$`, "m"));
      assert.equal(listed.stdout.includes(key.token), false, "list never shows a secret");

      const rolled = await cli("roll", key.id, "--in", "60", "--by", "ops");
      assert.equal(rolled.code, 0, rolled.stderr);
      const successor = /^token: (sk_[0-9A-Za-z]{50})$/m.exec(rolled.stdout)?.[1];
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
      assert.equal(await uncached.authenticate(successor), false);

      const refused = await cli("delete", key.id);
      assert.equal(refused.code, 1);
      assert.equal(refused.stderr.trim(), `error: Cannot delete api keys that are not revoked - ${key.id}`);
      const deleted = await cli("delete", successorId!);
      assert.equal(deleted.code, 0, deleted.stderr);
      assert.equal((await db.service.listApiKeys({ id: successorId! })).length, 0);
    });

    it("records who ran each change in the audit log, and shows the log newest first", async function () {
      this.timeout(60_000);
      const created = await cli("--actor", "alice", "create", "--title", "audited", "--type", "secret", "--json");
      assert.equal(created.code, 0, created.stderr);
      const key = JSON.parse(created.stdout) as { id: string; token: string };
      assert.equal((await cli("update", key.id, "--title", "renamed")).code, 0);
      const [made, renamed] = await db.service.listAuditEvents({ key_id: key.id });
      assert.equal(made!.actor_id, "alice");
      assert.match(renamed!.actor_id!, /^cli(:.+)?$/, "the user running the CLI when no --actor is given");

      const shown = await cli("audit", "--key", key.id);
      assert.equal(shown.code, 0, shown.stderr);
      const lines = shown.stdout.trim().split("\n");
      assert.match(lines[0]!, new RegExp(`^\\S+Z  updated  ${key.id}  by cli\\S*  title: "audited" -> "renamed"$`));
      assert.match(lines[1]!, new RegExp(`^\\S+Z  created  ${key.id}  by alice  .*title: null -> "audited"`));
      assert.equal(lines[2], "2 of 2 events");
      assert.equal(shown.stdout.includes(key.token), false);
      const json = JSON.parse((await cli("audit", "--limit", "1", "--json")).stdout) as { events: { action: string }[]; count: number };
      assert.deepEqual([json.events.map((event) => event.action), json.count], [["updated"], 2]);
    });

    it("shows a key's verifications per day, by code", async function () {
      this.timeout(60_000);
      const key = await db.service.createApiKeys({ title: "counted", type: "secret", created_by: "u" });
      const app = await db.open({ now: () => new Date() });
      for (let i = 0; i < 3; i++) await app.verifyApiKey(key.token);
      await app.verifyApiKey(key.token, { scopes: ["orders:write"] });
      await app.close();
      const shown = await cli("usage", key.id, "--days", "2");
      assert.equal(shown.code, 0, shown.stderr);
      const today = new Date().toISOString().slice(0, 10);
      assert.deepEqual(shown.stdout.trim().split("\n").map((line) => line.split(/\s+/)), [
        ["DAY", "VALID", "NOT_FOUND", "REVOKED", "EXPIRED", "FORBIDDEN", "IP_NOT_ALLOWED", "RATE_LIMITED", "USAGE_EXCEEDED"],
        [today, "3", "0", "0", "0", "1", "0", "0", "0"],
      ]);
      const json = JSON.parse((await cli("usage", key.id, "--json")).stdout) as { usage: { valid: number }[] };
      assert.deepEqual(json.usage.map((row) => row.valid), [3]);
      const none = await cli("usage", "apk_nothing");
      assert.match(none.stdout, /^No verifications of apk_nothing since \d{4}-\d{2}-\d{2}$/m);
    });

    it("links sales channels and runs migrations", async function () {
      this.timeout(60_000);
      const key = await db.service.createApiKeys({ title: "store", type: "publishable", created_by: "u" });
      const linked = await cli("link", key.id, "--add", "sc_1", "sc_2");
      assert.deepEqual([linked.code, linked.stdout.trim()], [0, `${key.id} sales channels: sc_1, sc_2`]);
      const migrated = await cli("migrate");
      assert.deepEqual([migrated.code, migrated.stdout.trim()], [0, "The key tables are up to date."]);
    });

    it("creates secret keys that authenticate in an app with the same pepper, given by API_KEYS_PEPPER or --pepper-file", async function () {
      this.timeout(120_000);
      const pepper = "a server-side secret shared by the app and the CLI";
      const dir = await mkdtemp(path.join(tmpdir(), "api-keys-pepper-"));
      try {
        // A file as editors and `echo` write it: its one trailing newline is not part of the pepper.
        const pepperFile = path.join(dir, "pepper");
        await writeFile(pepperFile, `${pepper}\n`, { mode: 0o600 });
        const runs = [
          await cliWith({ API_KEYS_PEPPER: pepper }, "create", "--title", "from env", "--type", "secret", "--json"),
          await cli("--pepper-file", pepperFile, "create", "--title", "from file", "--type", "secret", "--json"),
        ];
        const app = await db.open({ pepper });
        for (const run of runs) {
          assert.equal(run.code, 0, run.stderr);
          const { token, title } = JSON.parse(run.stdout) as { token: string; title: string };
          const found = await app.authenticate(token);
          assert.ok(found && found.title === title, `${title}: works in the app with the pepper`);
          assert.equal(await db.service.authenticate(token), false, `${title}: was hashed with the pepper, not without`);
        }
        const empty = path.join(dir, "empty");
        await writeFile(empty, "");
        const refused = await cli("--pepper-file", empty, "list");
        assert.equal(refused.code, 2);
        assert.match(refused.stderr, /--pepper-file.*is empty/);
        const missing = await cli("--pepper-file", path.join(dir, "nope"), "list");
        assert.equal(missing.code, 2);
        assert.match(missing.stderr, /--pepper-file.*cannot be read/);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });

    describe("with Redis", () => {
      let redis: Redis;
      before(async function () {
        redis = (await connectRedis(this))!;
      });
      after(() => redis?.disconnect());

      async function cachedKeys(prefix: string): Promise<string[]> {
        const found: string[] = [];
        let cursor = "0";
        do {
          const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}key:*`, "COUNT", 500);
          cursor = next;
          found.push(...keys);
        } while (cursor !== "0");
        return found;
      }

      for (const via of ["--redis and --redis-prefix", "REDIS_URL and API_KEYS_REDIS_PREFIX"]) {
        it(`a revocation by the CLI reaches a running app within 100 ms, given ${via}`, async function () {
          this.timeout(120_000);
          const prefix = testPrefix();
          try {
            // The app keeps keys in memory far longer than the test runs, so only the invalidation the
            // CLI sends through Redis can make it refuse the key in time. The CLI revokes by the real
            // clock, so the app reads it too.
            const app = await db.open({ redis: REDIS_URL, cache: { redisPrefix: prefix, ttl: 600_000 }, now: () => new Date() });
            const key = await app.createApiKeys({ title: "cached", type: "secret", created_by: "u" });
            assert.ok(await app.authenticate(key.token));
            assert.equal((await cachedKeys(prefix)).length, 1, "the key is cached in Redis under the app's prefix");

            const revoked = via.startsWith("--")
              ? await cli("--redis", REDIS_URL, "--redis-prefix", prefix, "revoke", key.id)
              : await cliWith({ REDIS_URL, API_KEYS_REDIS_PREFIX: prefix }, "revoke", key.id);
            const exited = performance.now();
            assert.equal(revoked.code, 0, revoked.stderr);
            assert.equal(revoked.stderr, "");
            while (await app.authenticate(key.token)) {
              if (performance.now() - exited > 100) assert.fail("the app still accepts the key 100 ms after the CLI revoked it");
              await sleep(1);
            }
          } finally {
            await deletePrefix(redis, prefix);
          }
        });
      }
    });

    it("a revocation by the CLI reaches a running app within 100 ms without Redis, over LISTEN/NOTIFY", async function () {
      this.timeout(120_000);
      // As above, the app keeps keys in memory far longer than the test runs; here the CLI's
      // NOTIFY on the database both share is what makes it refuse the key in time.
      const app = await db.open({ cache: { ttl: 600_000 }, now: () => new Date() });
      const key = await app.createApiKeys({ title: "cached", type: "secret", created_by: "u" });
      assert.ok(await app.authenticate(key.token));
      const revoked = await cli("revoke", key.id);
      const exited = performance.now();
      assert.equal(revoked.code, 0, revoked.stderr);
      assert.equal(revoked.stderr, "");
      while (await app.authenticate(key.token)) {
        if (performance.now() - exited > 100) assert.fail("the app still accepts the key 100 ms after the CLI revoked it");
        await sleep(1);
      }
    });

    it("escapes control characters, terminal escape sequences and bidi overrides in everything it prints", async function () {
      this.timeout(120_000);
      const hostile = "A\x1b]0;owned\x07B\x1b[2JC\x9b31mD\u202eE\u2028F\u2029G\x7fH\tI\nJ\u2066K";
      const escaped = "A\\x1b]0;owned\\x07B\\x1b[2JC\\x9b31mD\\u202eE\\u2028F\\u2029G\\x7fH\\tI\\nJ\\u2066K";
      const secret = await db.service.createApiKeys({ title: hostile, type: "secret", created_by: hostile });
      const publishable = await db.service.createApiKeys({ title: hostile, type: "publishable", created_by: "u" });
      await db.service.updateLinks(publishable.id, { add: [hostile] });

      const runs: [string, CliResult][] = [
        ["list", await cli("list")],
        ["list --json", await cli("list", "--json")],
        ["create", await cli("create", "--title", hostile, "--type", "secret")],
        ["create --json", await cli("create", "--title", hostile, "--type", "secret", "--json")],
        ["link", await cli("link", publishable.id)],
        ["revoke --json", await cli("revoke", secret.id, "--json")],
        ["an error message", await cli("revoke", `apk_${hostile}`)],
        ["a usage error", await cli(`frob${hostile}`)],
      ];
      for (const [label, run] of runs) {
        const output = run.stdout + run.stderr;
        assert.doesNotMatch(output, UNSAFE_OUTPUT, `${label}: ${JSON.stringify(output)}`);
      }
      const byLabel = new Map(runs);
      assert.equal(byLabel.get("list")!.code, 0);
      assert.match(byLabel.get("list")!.stdout, new RegExp(`^${secret.id}\\s.*\\s${escapeRegExp(escaped)}\\s+active\\s+-\\s+-\\s+never$`, "m"), "one table row, the title escaped");
      assert.match(byLabel.get("create")!.stdout, new RegExp(`^Created secret key apk_\\S+ "${escapeRegExp(escaped)}"$`, "m"));
      assert.equal(byLabel.get("link")!.stdout.trim(), `${publishable.id} sales channels: ${escaped}`);
      const errorLines = byLabel.get("an error message")!.stderr.trimEnd().split("\n");
      assert.equal(errorLines.length, 1, "one line, however many line breaks the input held");
      // JSON output is escaped within its strings: a JSON reader gets the stored text back unchanged.
      const listed = JSON.parse(byLabel.get("list --json")!.stdout) as { api_keys: { title: string; created_by: string }[] };
      assert.deepEqual(listed.api_keys.map((key) => key.title), [hostile, hostile]);
      assert.equal(listed.api_keys.find((key) => key.created_by !== "u")?.created_by, hostile);
      assert.equal((JSON.parse(byLabel.get("create --json")!.stdout) as { title: string }).title, hostile);
      assert.equal((JSON.parse(byLabel.get("revoke --json")!.stdout) as { title: string }).title, hostile);
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

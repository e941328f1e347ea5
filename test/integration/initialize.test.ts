import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn, spawnSync } from "node:child_process";
import { chmod, lstat, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { initialize } from "../../setup/initialize";
import { generateToken } from "../../lib/tokens";
import { rejectsWith } from "../helpers/assertions";
import { unreachableDatabase } from "../helpers/services";

const run = promisify(execFile);
const root = path.resolve(__dirname, "../..");

/** Runs `body` in a fresh Node process whose working directory and environment hold no configuration. */
async function runIsolated(cwd: string, body: string): Promise<string> {
  const file = path.join(root, `.tmp-initialize-${process.pid}.ts`);
  const source = `import { initialize } from "./index";
    process.chdir(${JSON.stringify(cwd)});
    (async () => { ${body} })().catch((error) => { console.error(error); process.exit(1); });`;
  await writeFile(file, source);
  try {
    const env = { ...process.env };
    delete env.DATABASE_URL;
    delete env.REDIS_URL;
    const { stdout } = await run(process.execPath, ["--import", "tsx", file], { cwd: root, env, timeout: 60_000 });
    return stdout.trim();
  } finally {
    await rm(file, { force: true });
  }
}

/** Every directory and file under `root` (itself included), with its permission bits; symbolic links are listed as such. */
async function modes(root: string): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  const visit = async (entry: string): Promise<void> => {
    const stat = await lstat(entry);
    const kind = stat.isDirectory() ? "dir" : stat.isFile() ? "file" : "other";
    found.set(path.relative(root, entry) || ".", `${kind} ${(stat.mode & 0o777).toString(8)}`);
    if (stat.isDirectory()) for (const name of await readdir(entry)) await visit(path.join(entry, name));
  };
  await visit(root);
  return found;
}

/** Paths under `root` whose permissions are not owner-only (0700 for directories, 0600 for files). */
async function notOwnerOnly(root: string): Promise<string[]> {
  return [...(await modes(root))].filter(([, mode]) => mode !== "dir 700" && mode !== "file 600").map(([name, mode]) => `${name} (${mode})`);
}

/** A contender process (test/helpers/lock-contender.ts) and the lines it prints, one at a time. */
class Contender {
  readonly #child: ChildProcess;
  readonly #lines: string[] = [];
  readonly #waiting: ((line: string) => void)[] = [];
  #output = "";

  constructor(directory: string, readDelayMs: number) {
    this.#child = spawn(process.execPath, ["--import", "tsx", "test/helpers/lock-contender.ts", directory], {
      cwd: root,
      env: { ...process.env, LOCK_CONTENDER_READ_DELAY_MS: String(readDelayMs) },
      stdio: ["pipe", "pipe", "pipe"],
    });
    createInterface({ input: this.#child.stdout! }).on("line", (line) => {
      const waiter = this.#waiting.shift();
      if (waiter) waiter(line);
      else this.#lines.push(line);
    });
    this.#child.stderr!.on("data", (chunk: Buffer) => (this.#output += chunk.toString()));
    this.#child.once("exit", (code) => {
      for (const waiter of this.#waiting.splice(0)) waiter(`exited with ${code}: ${this.#output}`);
    });
  }

  next(): Promise<string> {
    const line = this.#lines.shift();
    if (line !== undefined) return Promise.resolve(line);
    if (this.#child.exitCode !== null) return Promise.resolve(`exited with ${this.#child.exitCode}: ${this.#output}`);
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  send(line: string): void {
    this.#child.stdin!.write(`${line}\n`);
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.#child.once("exit", resolve));
    this.#child.stdin!.end();
    await exited;
  }
}

describe("initialize() with zero configuration", function () {
  this.timeout(120_000);
  let dir = "";
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "api-keys-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("uses an embedded database in ./.express-api-keys, and keys survive a restart", async () => {
    const token = await runIsolated(
      dir,
      `const service = await initialize();
       const key = await service.createApiKeys({ title: "first", type: "secret", created_by: "cli" });
       await service.close();
       console.log(key.token);`,
    );
    assert.match(token, /^sk_/);
    const found = await runIsolated(
      dir,
      `const service = await initialize();
       const key = await service.authenticate(${JSON.stringify(token)});
       await service.close();
       console.log(key ? key.title : "none");`,
    );
    assert.equal(found, "first");
    const { stdout } = await run("ls", ["-A", path.join(dir, ".express-api-keys")]);
    assert.match(stdout, /PG_VERSION/);
  });

  it("refuses a second process on the same embedded directory instead of losing its writes", async () => {
    const database = `pglite://${path.join(dir, "db")}`;
    const holder = await initialize({ database });
    try {
      const body = `const service = await initialize({ database: ${JSON.stringify(database)} }); await service.close(); console.log("opened");`;
      await assert.rejects(runIsolated(dir, body), (error: Error) => {
        assert.match(error.message, /The embedded database in .*db is open in another process \(pid \d+\)\. Stop that process first/);
        return true;
      });
      await holder.close();
      assert.equal(await runIsolated(dir, body), "opened", "the lock is released by close()");
      // A lock left by a process that is gone (a crash, say) is taken over.
      await writeFile(path.join(dir, "db.lock"), "999999");
      assert.equal(await runIsolated(dir, body), "opened");
    } finally {
      await holder.close();
    }
  });

  it("refuses a second open of the same embedded directory in one process, which would lose writes the same way", async () => {
    const database = `pglite://${path.join(dir, "db")}`;
    const first = await initialize({ database, cache: false });
    try {
      await rejectsWith(initialize({ database, cache: false }), "unavailable", /already open in this process \(pid \d+\)\. Close the other service first/);
      assert.ok(await first.createApiKeys({ title: "still works", type: "publishable", created_by: "u" }));
    } finally {
      await first.close();
    }
    const again = await initialize({ database, cache: false });
    await again.close();
  });

  it("keeps the embedded directory and every file in it, the lock too, to its owner, whatever the umask", async () => {
    const database = path.join(dir, "db");
    // A umask of 000 would leave everything created with the process's defaults open to all users.
    const body = `process.umask(0);
       const service = await initialize({ database: ${JSON.stringify(`pglite://${database}`)} });
       const lock = (await import("node:fs")).statSync(${JSON.stringify(`${database}.lock`)}).mode & 0o777;
       await service.createApiKeys({ title: "t", type: "secret", created_by: "u" });
       await service.close();
       console.log(lock.toString(8));`;
    assert.equal(await runIsolated(dir, body), "600", "the lock file");
    const created = await modes(database);
    assert.ok(created.size > 100, "PGlite wrote its files");
    assert.deepEqual(await notOwnerOnly(database), []);

    // A directory left open by an earlier version is closed up when it is next opened.
    await chmod(database, 0o755);
    await chmod(path.join(database, "PG_VERSION"), 0o644);
    await chmod(path.join(database, "base"), 0o777);
    assert.equal(await runIsolated(dir, body), "600");
    assert.deepEqual(await notOwnerOnly(database), []);
  });

  it("lets exactly one of several processes that start at once take over a stale lock", async function () {
    this.timeout(300_000);
    const CONTENDERS = 4;
    const ROUNDS = 5;
    const directory = path.join(dir, "db");
    // Every contender pauses 50 ms after each read of the lock file (see lock-contender.ts), so that
    // all of them find the same stale lock before any of them replaces it.
    const contenders = Array.from({ length: CONTENDERS }, () => new Contender(directory, 50));
    try {
      assert.deepEqual(await Promise.all(contenders.map((contender) => contender.next())), Array(CONTENDERS).fill("ready"));
      for (let round = 0; round < ROUNDS; round++) {
        // The pid of a process that has just exited: a lock a crash left behind.
        const gone = spawnSync(process.execPath, ["-e", ""]).pid;
        await writeFile(`${directory}.lock`, String(gone));
        for (const contender of contenders) contender.send("go");
        const results = await Promise.all(contenders.map((contender) => contender.next()));
        assert.equal(results.filter((result) => result === "won").length, 1, `round ${round}: ${results.join(" | ")}`);
        for (const result of results.filter((result) => result !== "won")) {
          assert.match(result, /^lost .*embedded database in .*db is open in another process \(pid \d+\)/, `round ${round}: ${result}`);
        }
        for (const contender of contenders) contender.send("release");
        assert.deepEqual(await Promise.all(contenders.map((contender) => contender.next())), Array(CONTENDERS).fill("released"));
      }
    } finally {
      await Promise.all(contenders.map((contender) => contender.stop()));
    }
  });

  it("fails closed with unavailable when the database cannot be reached", async () => {
    const knex = unreachableDatabase();
    const service = await initialize({ database: knex, runMigrations: false });
    try {
      await rejectsWith(service.authenticate(generateToken("secret")), "unavailable", "The API key store is unavailable");
      assert.equal(await service.authenticate("sk_not_even_well_formed"), false);
      await rejectsWith(service.listApiKeys(), "unavailable");
    } finally {
      await service.close();
      await knex.destroy();
    }
  });

  it("refuses unknown connection strings without echoing them", async () => {
    await assert.rejects(initialize({ database: "mssql://root:hunter2@db/x" }), (error: Error) => {
      assert.ok(error instanceof TypeError);
      assert.match(error.message, /postgres:\/\/, postgresql:\/\/, pglite:\/\/, mysql:\/\/, mariadb:\/\/ or sqlite:\/\/; got scheme mssql:/);
      assert.doesNotMatch(error.message, /hunter2/);
      return true;
    });
  });
});

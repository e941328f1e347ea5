import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { initialize } from "../../lib/initialize";
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
        assert.match(error.message, /the embedded database in .*db is open in another process \(pid \d+\)\. Stop that process first/);
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

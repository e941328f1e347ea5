import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { openDatabase } from "../../store/connect";

const root = path.resolve(__dirname, "../..");
const execFileAsync = promisify(execFile);

function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env.REDIS_URL;
  return env;
}

/** Collects a child's output until `done` matches it, or fails after the timeout. */
function waitForOutput(child: ChildProcess, done: RegExp, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let output = "";
    const timer = setTimeout(() => reject(new Error(`no match for ${done} within ${timeoutMs} ms:\n${output}`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (done.test(output)) {
        clearTimeout(timer);
        resolve(output);
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before ${done} appeared:\n${output}`));
    });
  });
}

describe("examples", function () {
  this.timeout(120_000);
  let dir = "";
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "api-keys-example-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("npm start runs the storefront + admin app, and the keys it prints work", async () => {
    // `npm start`, on a fresh embedded database of this test's own, on a free port.
    const child = spawn("npm", ["start", "--silent"], {
      cwd: root,
      env: cleanEnv({ PORT: "0", DATABASE_URL: `pglite://${path.join(dir, "db")}` }),
      detached: true,
    });
    try {
      const output = await waitForOutput(child, /-u 'sk_\S+:' -H 'content-type/, 90_000);
      const base = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(output)?.[1];
      const secret = /secret key \(admin, shown only now\): (sk_\S+)/.exec(output)?.[1];
      const publishable = /publishable key \(storefront, sales channels sc_app, sc_web\): (pk_\S+)/.exec(output)?.[1];
      assert.ok(base && secret && publishable, output);
      const dashboard = /Dashboard: (http:\S+)/.exec(output)?.[1];
      assert.equal(dashboard, `${base}/admin/keys/`);
      assert.match(await (await fetch(dashboard)).text(), /<title>API keys<\/title>/);
      const signIn = await fetch(`${dashboard}session`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ secret_key: secret }) });
      assert.equal(signIn.status, 200);

      const products = await fetch(`${base}/store/products`, { headers: { "x-publishable-api-key": publishable } });
      assert.equal(products.status, 200);
      assert.deepEqual(((await products.json()) as { products: { id: string }[] }).products.map((p) => p.id), ["prod_tee", "prod_mug"]);
      const outside = await fetch(`${base}/store/products?sales_channel_id=sc_pos`, { headers: { "x-publishable-api-key": publishable } });
      assert.deepEqual([outside.status, await outside.json()], [400, { type: "invalid_data", message: "Requested sales channel is not part of the publishable key" }]);

      const basic = `Basic ${Buffer.from(`${secret}:`).toString("base64")}`;
      const list = await fetch(`${base}/admin/api-keys`, { headers: { authorization: basic } });
      assert.equal(list.status, 200);
      assert.equal(((await list.json()) as { count: number }).count, 2);
      const created = await fetch(`${base}/admin/api-keys`, {
        method: "POST",
        headers: { authorization: basic, "content-type": "application/json" },
        body: JSON.stringify({ title: "Mobile app", type: "publishable" }),
      });
      assert.equal(created.status, 200);
      assert.equal((await fetch(`${base}/admin/whoami`)).status, 401);

      const home = await fetch(`${base}/`, { redirect: "manual" });
      assert.deepEqual([home.status, home.headers.get("location")], [302, "/admin/keys/"]);

      // The walk-through runs beside the app, on a database of its own, whatever DATABASE_URL says.
      const quickstart = await execFileAsync(process.execPath, ["--import", "tsx", "examples/quickstart.ts"], { cwd: root, env: cleanEnv({ DATABASE_URL: `pglite://${path.join(dir, "db")}` }), timeout: 60_000 });
      assert.match(quickstart.stdout, /authenticate\(mistyped token\) -> false/);
      assert.equal(((await (await fetch(`${base}/admin/api-keys`, { headers: { authorization: basic } })).json()) as { count: number }).count, 3, "no key of the walk-through in the app's database");
    } finally {
      process.kill(-child.pid!, "SIGTERM");
    }
    // SIGTERM closes the app as Ctrl+C does: the embedded database is released, and a second
    // start finds the keys and says how to make another admin key.
    const again = spawn("npm", ["start", "--silent"], {
      cwd: root,
      env: cleanEnv({ PORT: "0", DATABASE_URL: `pglite://${path.join(dir, "db")}` }),
      detached: true,
    });
    try {
      const output = await waitForOutput(again, /express-api-keys --database \S+ create --type secret/, 90_000);
      assert.match(output, /stop this app/);
      assert.ok(output.includes(`npx express-api-keys --database 'pglite://${path.join(dir, "db")}' create --type secret --title "Admin"`), output);
    } finally {
      process.kill(-again.pid!, "SIGTERM");
    }
  });

  it("on a database server, says how to make another admin key with the CLI on that database, while the app runs", async function () {
    const schema = `example_${Date.now().toString(36)}`;
    const env = cleanEnv({ PORT: "0", DATABASE_URL: "mysql://root@127.0.0.1:3306/test", API_KEYS_SCHEMA: schema });
    try {
      for (const expected of [/-u 'sk_\S+:' -H 'content-type/, /npx express-api-keys --database \S+ --schema \S+ create/]) {
        const child = spawn("npm", ["start", "--silent"], { cwd: root, env, detached: true });
        try {
          const output = await waitForOutput(child, expected, 90_000);
          if (expected.source.startsWith("npx")) {
            assert.ok(output.includes(`npx express-api-keys --database 'mysql://root@127.0.0.1:3306/test' --schema '${schema}' create --type secret --title "Admin"`), output);
            assert.doesNotMatch(output, /stop this app/);
          }
        } finally {
          process.kill(-child.pid!, "SIGTERM");
        }
      }
    } finally {
      const { knex } = await openDatabase("mysql://root@127.0.0.1:3306/test");
      await knex.raw("drop database if exists ??", [schema]);
      await knex.destroy();
    }
  });

  for (const example of ["quickstart", "route-handler"]) {
    it(`the ${example} example runs to completion, twice, and leaves no database behind`, async () => {
      const appDatabase = path.join(dir, "app-db");
      for (let run = 0; run < 2; run++) {
        const { stdout } = await execFileAsync(process.execPath, ["--import", "tsx", `examples/${example}.ts`], {
          cwd: root,
          env: cleanEnv({ DATABASE_URL: `pglite://${appDatabase}` }),
          timeout: 60_000,
        });
        assert.match(stdout, example === "quickstart" ? /authenticate\(mistyped token\) -> false/ : /with the key: 200/);
      }
      assert.deepEqual(await readdir(dir), [], "the app's database was not written");
    });
  }
});

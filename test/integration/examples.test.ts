import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";

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
    } finally {
      process.kill(-child.pid!, "SIGTERM");
    }
  });

  for (const example of ["quickstart", "route-handler"]) {
    it(`the ${example} example runs to completion`, async () => {
      const { stdout } = await execFileAsync(process.execPath, ["--import", "tsx", `examples/${example}.ts`], {
        cwd: root,
        env: cleanEnv({ DATABASE_URL: "pglite://memory" }),
        timeout: 60_000,
      });
      assert.match(stdout, example === "quickstart" ? /authenticate\(mistyped token\) -> false/ : /with the key: 200/);
    });
  }
});

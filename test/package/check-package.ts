// The packed package as users get it: `npm pack`, install the tarball into a scratch project,
// then require it, import it, compile a strict TypeScript consumer against its types and run
// its bin. Also checks that the tarball holds no tests, sources or secrets.
// Run with `npm run test:package` (CI runs it after `npm test`).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

const root = path.resolve(__dirname, "../..");
const scratch = mkdtempSync(path.join(tmpdir(), "express-api-keys-package-"));

function run(command: string, args: string[], cwd = scratch): string {
  return execFileSync(command, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 300_000 });
}

function step(name: string, work: () => void): void {
  process.stdout.write(`- ${name} ... `);
  work();
  process.stdout.write("ok\n");
}

let passed = 0;
const check = (name: string, work: () => void) => {
  step(name, work);
  passed++;
};

try {
  let tarball = "";
  check("packs only the built package: no tests, sources, examples or secrets", () => {
    const [packed] = JSON.parse(run("npm", ["pack", "--json", "--pack-destination", scratch], root)) as { filename: string; files: { path: string }[] }[];
    tarball = path.join(scratch, packed!.filename);
    const files = packed!.files.map((file) => file.path);
    assert.ok(files.includes("dist/index.js") && files.includes("dist/index.d.ts") && files.includes("dist/cli/index.js"), "the build is in");
    const stray = files.filter(
      (file) => !(file.startsWith("dist/") || ["package.json", "README.md", "LICENSE", "CHANGELOG.md", "SECURITY.md"].includes(file)),
    );
    assert.deepEqual(stray, [], "only dist/ and the docs");
    const sources = files.filter((file) => /\.ts$/.test(file) && !file.endsWith(".d.ts"));
    assert.deepEqual(sources, [], "no TypeScript sources");
    const secretish = files.filter((file) => /(^|\/)(\.env|.*\.pem|.*\.key|\.npmrc)$|test\//.test(file));
    assert.deepEqual(secretish, [], "no tests, keys or env files");
  });

  check("installs into an empty project", () => {
    writeFileSync(path.join(scratch, "package.json"), JSON.stringify({ name: "consumer", private: true, version: "1.0.0" }));
    // ioredis 6.1's declarations import redis-errors, whose types it does not depend on: a
    // consumer that checks library declarations (skipLibCheck: false, as below) installs them.
    run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", tarball, "express@5", "@types/node@20", "@types/express@5", "@types/redis-errors"]);
  });

  check("require() works, and a key authenticates on the embedded database", () => {
    const script = `
      const assert = require("node:assert/strict");
      const { initialize, apiKeyAuth, ApiKeyError } = require("express-api-keys");
      const { apiKeyStoreConformance } = require("express-api-keys/testing");
      const middleware = require("express-api-keys/middleware");
      assert.equal(middleware.apiKeyAuth, apiKeyAuth, "the middleware entry exports the same middleware");
      assert.equal(typeof apiKeyAuth, "function");
      assert.equal(typeof apiKeyStoreConformance, "function");
      assert.equal(new ApiKeyError("not_found", "x").status, 404);
      (async () => {
        const keys = await initialize({ database: "pglite://memory" });
        const key = await keys.createApiKeys({ title: "t", type: "secret", created_by: "u" });
        assert.equal((await keys.authenticate(key.token)).id, key.id);
        await keys.close();
        console.log("cjs ok");
      })().catch((error) => { console.error(error); process.exit(1); });`;
    assert.match(run(process.execPath, ["-e", script]), /cjs ok/);
  });

  check("the admin router serves its OpenAPI document, with the installed version", () => {
    const script = `
      const assert = require("node:assert/strict");
      const express = require("express");
      const { apiKeyAdminRouter } = require("express-api-keys");
      const app = express();
      app.use("/admin/api-keys", apiKeyAdminRouter({ actor: () => "admin" }));
      const server = app.listen(0, "127.0.0.1", async () => {
        try {
          const res = await fetch("http://127.0.0.1:" + server.address().port + "/admin/api-keys/openapi.json");
          assert.equal(res.status, 200);
          const document = await res.json();
          assert.equal(document.openapi, "3.1.0");
          assert.equal(document.info.version, require("express-api-keys/package.json").version);
          assert.equal(document.servers[0].url, "/admin/api-keys");
          console.log("openapi ok");
        } finally {
          server.close();
        }
      });`;
    assert.match(run(process.execPath, ["-e", script]), /openapi ok/);
  });

  check("import works from an ES module", () => {
    const script = `
      import assert from "node:assert/strict";
      import { initialize, requireScopes } from "express-api-keys";
      import { apiKeyStoreConformance } from "express-api-keys/testing";
      assert.equal(typeof initialize, "function");
      assert.equal(typeof requireScopes, "function");
      assert.ok(apiKeyStoreConformance({ openStore: async () => { throw new Error("unused"); } }).length > 10);
      console.log("esm ok");`;
    assert.match(run(process.execPath, ["--input-type=module", "-e", script]), /esm ok/);
  });

  check("the dashboard serves its page and every file the page loads", () => {
    const script = `
      const assert = require("node:assert/strict");
      const express = require("express");
      const { initialize, apiKeyDashboard } = require("express-api-keys");
      (async () => {
        const keys = await initialize({ database: "pglite://memory" });
        const app = express();
        app.use("/admin/keys", apiKeyDashboard({ service: keys }));
        const server = app.listen(0, "127.0.0.1");
        await new Promise((resolve) => server.once("listening", resolve));
        const base = "http://127.0.0.1:" + server.address().port + "/admin/keys/";
        const page = await (await fetch(base)).text();
        const files = [...page.matchAll(/(?:href|src)="(assets\\/[^"]+)"/g)].map((match) => match[1]);
        assert.equal(files.length, 5, page); // stylesheet, Preact, htm, the script and its charts
        for (const file of files) assert.equal((await fetch(base + file)).status, 200, file);
        server.close();
        await keys.close();
        console.log("dashboard ok");
      })().catch((error) => { console.error(error); process.exit(1); });`;
    assert.match(run(process.execPath, ["-e", script]), /dashboard ok/);
  });

  check("its type declarations compile a strict consumer", () => {
    writeFileSync(
      path.join(scratch, "consumer.ts"),
      `import express from "express";
import { type ApiKeyDTO, type ApiKeyStore, type AuthenticatedRequest, type VerifyResult, apiKeyAdminRouter, apiKeyAuth, apiKeyDashboard, initialize, requireScopes } from "express-api-keys";
import { apiKeyStoreConformance } from "express-api-keys/testing";

export async function main(): Promise<void> {
  const keys = await initialize({ database: "pglite://memory", cache: { ttl: 1000 } });
  const app = express();
  app.use("/admin/api-keys", apiKeyAuth({ type: "secret", scopes: ["api_keys:read"] }), apiKeyAdminRouter({ service: keys }));
  app.use("/admin/keys", apiKeyDashboard({ service: keys, sessionMaxAge: 3600, scopes: { write: ["api_keys:write"] } }));
  app.get("/orders", apiKeyAuth(), requireScopes("orders:read"), (req, res) => {
    const key: ApiKeyDTO | undefined = (req as AuthenticatedRequest<express.Request>).api_key;
    res.json({ owner: key?.owner_id ?? null });
  });
  const created = await keys.createApiKeys({ title: "t", type: "secret", created_by: "u", scopes: ["orders:*"], expires_in: 60 });
  const result: VerifyResult = await keys.verifyApiKey(created.token, { scopes: ["orders:read"] });
  const code: "valid" | "not_found" | "revoked" | "expired" | "forbidden" | "ip_not_allowed" | "rate_limited" | "usage_exceeded" = result.code;
  void code;
  const checks = apiKeyStoreConformance({ openStore: async (): Promise<ApiKeyStore> => { throw new Error("unused"); } });
  void checks;
  // @ts-expect-error: the type of a key is one of two words
  await keys.createApiKeys({ title: "t", type: "admin", created_by: "u" });
}
`,
    );
    writeFileSync(
      path.join(scratch, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: { strict: true, noEmit: true, module: "nodenext", moduleResolution: "nodenext", target: "es2022", esModuleInterop: true, skipLibCheck: false, types: ["node"] },
        files: ["consumer.ts"],
      }),
    );
    run(process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json"]);
  });

  check("its bin runs: --help, and a key created on the embedded database", () => {
    assert.match(run("npx", ["--no-install", "express-api-keys", "--help"]), /Manage API keys/);
    const created = run("npx", ["--no-install", "express-api-keys", "--database", "pglite://memory", "create", "--type", "secret", "--title", "ci", "--json"]);
    assert.match((JSON.parse(created) as { token: string }).token, /^sk_/);
  });

  console.log(`${passed} passed, 0 failed`);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}

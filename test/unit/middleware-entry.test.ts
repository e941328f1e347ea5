// express-api-keys/middleware loads no database driver, PGlite or Redis client: the layers
// keep them out of its import graph, and this proves it in a fresh process.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import path from "node:path";

const ROOT = path.resolve(__dirname, "../..");
const HEAVY = ["knex", "knex-pglite", "pg", "ioredis", "@electric-sql/pglite", "mysql2", "better-sqlite3"];

/** The npm packages a fresh process has loaded after requiring `entry`. */
function packagesLoadedBy(entry: string): string[] {
  const script = `
    require(${JSON.stringify(entry)});
    const names = Object.keys(require.cache).map((file) => (/node_modules[\\\\/]((?:@[^\\\\/]+[\\\\/])?[^\\\\/]+)/.exec(file) || [])[1]).filter(Boolean);
    process.stdout.write(JSON.stringify([...new Set(names.map((name) => name.replace(/\\\\/g, "/")))]));
  `;
  return JSON.parse(execFileSync(process.execPath, ["--import", "tsx", "-e", script], { cwd: ROOT, encoding: "utf8" })) as string[];
}

describe("the middleware entry", function () {
  this.timeout(30_000);

  it("loads no database driver, PGlite or Redis client", () => {
    const loaded = packagesLoadedBy("./middleware/index.ts");
    assert.deepEqual(loaded.filter((name) => HEAVY.includes(name)), [], `loaded: ${loaded.join(", ")}`);
  });

  it("is measured by a probe that sees them where they are loaded (the package root)", () => {
    const loaded = packagesLoadedBy("./index.ts");
    assert.ok(loaded.includes("knex"), `knex in ${loaded.join(", ")}`);
  });
});

// `npm ci` runs a dependency's install script only when package.json's `allowScripts` allows it,
// and warns about every one it was not told about: each is decided here, so that a fresh
// install prints no such warning and builds what must be built.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";

const root = path.resolve(__dirname, "../..");
const read = (file: string) => JSON.parse(readFileSync(path.join(root, file), "utf8")) as Record<string, unknown>;

describe("install scripts", () => {
  it("allowScripts decides every dependency with an install script, and allows better-sqlite3's build", () => {
    const lock = read("package-lock.json") as { packages: Record<string, { hasInstallScript?: boolean }> };
    const withScripts = Object.entries(lock.packages)
      .filter(([, entry]) => entry.hasInstallScript)
      .map(([location]) => location.slice(location.lastIndexOf("node_modules/") + "node_modules/".length))
      .sort();
    const allowScripts = read("package.json").allowScripts as Record<string, boolean>;
    assert.deepEqual(Object.keys(allowScripts).sort(), withScripts);
    // It builds from source here (no prebuilt binary is downloaded); esbuild's script only checks a binary an optional dependency already brings.
    assert.equal(allowScripts["better-sqlite3"], true);
    assert.equal(allowScripts.esbuild, false);
  });
});

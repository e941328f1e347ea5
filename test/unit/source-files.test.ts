// Source files stay ASCII: no look-alike characters, invisible bidi controls or smart quotes can
// hide in code. Characters beyond ASCII go in strings as \u escapes.
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";

const ROOT = path.resolve(__dirname, "../..");
const FOLDERS = ["lib", "store", "middleware", "cli", "testing", "examples", "bench", "test"];

function sourceFiles(folder: string): string[] {
  return readdirSync(path.join(ROOT, folder), { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && /\.(ts|cjs|js|css|html)$/.test(entry.name))
    .map((entry) => path.join(entry.parentPath, entry.name));
}

describe("source files", () => {
  it("are ASCII only", () => {
    const files = [path.join(ROOT, "index.ts"), path.join(ROOT, ".mocharc.cjs"), ...FOLDERS.flatMap(sourceFiles)];
    assert.ok(files.length > 50, "found the sources");
    const offenders = files.flatMap((file) =>
      readFileSync(file, "utf8")
        .split("\n")
        .flatMap((line, i) => (/[^\x00-\x7f]/.test(line) ? [`${path.relative(ROOT, file)}:${i + 1}`] : [])),
    );
    assert.deepEqual(offenders, []);
  });
});

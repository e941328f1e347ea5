// The files the dashboard's browser side downloads: our page, script and stylesheet, and the
// ESM builds of Preact and htm from node_modules. All are read once, when the dashboard is
// built, and served from memory (gzipped when the browser accepts it) under a path that holds
// a hash of their contents, so that they can be cached for good: a new version has a new path.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { dirname, join } from "node:path";
import { gzipSync } from "node:zlib";

export interface Asset {
  readonly type: string;
  readonly body: Buffer;
  readonly gzipped: Buffer;
}

export interface Assets {
  /** The folder every asset is served under: `assets/<hash>`, relative to the page. */
  readonly base: string;
  /** The page, with `base` filled in. */
  readonly page: Asset;
  /** The other files by name (`app.js`, `vendor/preact.js`, ...). */
  readonly files: ReadonlyMap<string, Asset>;
}

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
};

/** Our own files sit next to this module: in `assets/` under the sources and, copied by the build, under dist. */
const OWN_FILES = ["app.js", "charts.js", "app.css"];

function asset(name: string, body: Buffer): Asset {
  const extension = name.slice(name.lastIndexOf("."));
  return { type: TYPES[extension] ?? "application/octet-stream", body, gzipped: gzipSync(body, { level: 9 }) };
}

let loaded: Assets | undefined;

/** Reads the assets on first use; every dashboard in the process shares them. */
export function loadAssets(): Assets {
  if (loaded) return loaded;
  const folder = join(__dirname, "assets");
  const sources = new Map<string, Buffer>();
  for (const name of OWN_FILES) sources.set(name, readFileSync(join(folder, name)));
  // Preact's entry is its minified ESM build; htm's is CommonJS, with the ESM build beside it.
  sources.set("vendor/preact.js", readFileSync(require.resolve("preact")));
  sources.set("vendor/htm.js", readFileSync(join(dirname(require.resolve("htm")), "htm.module.js")));
  const hash = createHash("sha256");
  for (const [name, body] of sources) hash.update(name).update(body);
  const base = `assets/${hash.digest("base64url").slice(0, 12)}`;
  const page = readFileSync(join(folder, "index.html"), "utf8").replaceAll("{{base}}", base);
  loaded = {
    base,
    page: asset("index.html", Buffer.from(page)),
    files: new Map([...sources].map(([name, body]) => [name, asset(name, body)])),
  };
  return loaded;
}

/** Sends an asset, gzipped when the request accepts it. */
export function sendAsset(req: IncomingMessage, res: ServerResponse, file: Asset, cacheControl: string): void {
  const gzip = /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? ""));
  const body = gzip ? file.gzipped : file.body;
  res.statusCode = 200;
  res.setHeader("Content-Type", file.type);
  res.setHeader("Cache-Control", cacheControl);
  res.setHeader("Vary", "Accept-Encoding");
  if (gzip) res.setHeader("Content-Encoding", "gzip");
  res.setHeader("Content-Length", body.length);
  res.end(req.method === "HEAD" ? undefined : body);
}

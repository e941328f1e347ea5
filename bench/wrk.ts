// wrk as the load generator: pinned to its own core, with a Lua script that prints one JSON line
// of results at the end, and for floods a distinct header value per request read from a file
// written here beforehand (so the Lua side needs no base64 or CRC32).
import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";

/** The core wrk runs on; the case servers run on the other one. */
export const LOAD_CORE = "0";
export const SERVER_CORE = "1";
export const CONNECTIONS = 10;
const MARK = "BENCH_RESULT ";

export interface WrkResult {
  requests: number;
  rps: number;
  p50_ms: number;
  p99_ms: number;
  /** Answers with a status of 400 or more (wrk's "Non-2xx or 3xx responses"). */
  non2xx: number;
  /** Socket errors: connect, read, write and timeouts. */
  errors: number;
}

export interface Load {
  /** One header sent on every request. */
  header?: [name: string, value: string];
  /** A distinct value of this header per request, cycling through the list. */
  perRequest?: { name: string; values: () => string[] };
}

// done() runs once per wrk process; latency percentiles are in microseconds.
const SUMMARY = `
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('${MARK}{"requests":%d,"duration_us":%d,"non2xx":%d,"errors":%d,"p50_us":%.1f,"p99_us":%.1f}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
`;

// Every request is formatted once in init(), so request() costs wrk one table read.
const PER_REQUEST = (name: string) => `
local prepared, count, index = {}, 0, 0
function init(args)
  for line in io.lines(args[1]) do
    count = count + 1
    prepared[count] = wrk.format(nil, nil, { Host = wrk.headers["Host"], ["${name}"] = line })
  end
end
function request()
  index = index % count + 1
  return prepared[index]
end
`;

/** Exits with a clear message when wrk or taskset is missing: the bench installs nothing itself. */
export function requireTools(): void {
  for (const [tool, args, install] of [
    ["wrk", ["--version"], "apt-get install wrk"],
    ["taskset", ["-V"], "apt-get install util-linux"],
  ] as const) {
    try {
      execFileSync(tool, args, { stdio: "ignore" });
    } catch (error) {
      // wrk --version exits 1 after printing its usage; only a missing binary matters here.
      if ((error as NodeJS.ErrnoException).code === "ENOENT") {
        console.error(`npm run bench needs ${tool}: ${install}`);
        process.exit(1);
      }
    }
  }
}

export function wrkVersion(): string {
  try {
    execFileSync("wrk", ["--version"], { encoding: "utf8", stdio: "pipe" });
  } catch (error) {
    const output = String((error as { stdout?: string }).stdout ?? "");
    return output.split("\n")[0]!.replace(/ Copyright.*/, "");
  }
  return "unknown";
}

/** A scratch directory for the scripts and token files, removed by `close()`. */
export function workspace(): { dir: string; close: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), "bench-wrk-"));
  return { dir, close: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Runs wrk on LOAD_CORE against `port` for `seconds` and returns its summary; `dir` is its own, for one run at a time. */
export async function runWrk(dir: string, port: number, load: Load, seconds: number, urlPath = "/", connections = CONNECTIONS): Promise<WrkResult> {
  const script = path.join(dir, "script.lua");
  const args = ["-c", LOAD_CORE, "wrk", "-t1", `-c${connections}`, `-d${seconds}s`, "--latency", "-s", script];
  if (load.header) args.push("-H", `${load.header[0]}: ${load.header[1]}`);
  args.push(`http://127.0.0.1:${port}${urlPath}`);
  if (load.perRequest) {
    const values = path.join(dir, "values.txt");
    writeFileSync(values, `${load.perRequest.values().join("\n")}\n`);
    writeFileSync(script, PER_REQUEST(load.perRequest.name) + SUMMARY);
    args.push("--", values);
  } else {
    writeFileSync(script, SUMMARY);
  }
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile("taskset", args, { encoding: "utf8", maxBuffer: 1 << 20 }, (error, out, err) =>
      error ? reject(new Error(`wrk failed: ${err || error.message}`)) : resolve(out),
    );
  });
  const line = stdout.split("\n").find((text) => text.startsWith(MARK));
  if (!line) throw new Error(`wrk printed no result:\n${stdout}`);
  const raw = JSON.parse(line.slice(MARK.length)) as {
    requests: number;
    duration_us: number;
    non2xx: number;
    errors: number;
    p50_us: number;
    p99_us: number;
  };
  return {
    requests: raw.requests,
    rps: raw.requests / (raw.duration_us / 1e6),
    p50_ms: raw.p50_us / 1000,
    p99_ms: raw.p99_us / 1000,
    non2xx: raw.non2xx,
    errors: raw.errors,
  };
}

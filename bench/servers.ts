// The bench's case servers (bench/server.ts) as child processes: started pinned to a core,
// asked for their counters.
import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { SERVER_CORE } from "./wrk";

const root = path.resolve(__dirname, "..");

/** Starts a case's server; `nodeArgs` (such as `--cpu-prof`) go to its node. */
export async function startServer(kind: string, env: Record<string, string>, core = SERVER_CORE, nodeArgs: string[] = []): Promise<{ child: ChildProcess; port: number }> {
  // taskset execs node in place, so the child is the server itself.
  const child = spawn("taskset", ["-c", core, process.execPath, ...nodeArgs, "--import", "tsx", "bench/server.ts"], {
    cwd: root,
    env: { ...process.env, ...env, BENCH_CASE: kind },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      const match = /listening (\d+)/.exec(output);
      if (match) resolve(Number(match[1]));
    });
    child.once("exit", (code) => reject(new Error(`server ${kind} exited with ${code}`)));
  });
  return { child, port };
}

export async function stats(port: number): Promise<{ queries: number; updates: number; lookups: number; cpu_us: number }> {
  const response = await fetch(`http://127.0.0.1:${port}/__stats`);
  return (await response.json()) as { queries: number; updates: number; lookups: number; cpu_us: number };
}

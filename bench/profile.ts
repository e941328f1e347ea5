// The package's share of a server's CPU: a case's server run under `node --cpu-prof` while wrk
// loads it, and its profile read back as self time per function. The share is the self time of
// functions in this package's own files (lib/, middleware/, store/, setup/, index.ts) over all
// sampled time but idle: what the package's code itself costs a request, apart from Express,
// Node and the libraries it calls.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { ChildProcess } from "node:child_process";

const root = path.resolve(__dirname, "..");
const PACKAGE_FILES = ["lib/", "middleware/", "store/", "setup/", "index.ts"].map((part) => `${root}/${part}`);

/** What V8's profiler writes (`--cpu-prof`, or the inspector's Profiler.stop): the call tree and its samples. */
export interface CpuProfile {
  nodes: { id: number; callFrame: { url: string; functionName: string } }[];
  samples?: number[];
  timeDeltas?: number[];
}

export interface ProfileShare {
  /** Self time in the package's files over all non-idle sampled time. */
  package_share: number;
  /** The package's functions with the most self time, in % of non-idle time. */
  top: { name: string; share: number }[];
}

/** A function's name as the reports print it: its name, then its file in the package, its library, or Node's module. */
function describe(functionName: string, url: string): { name: string; ours: boolean } {
  const file = url.replace(/^file:\/\//, "");
  const ours = PACKAGE_FILES.some((prefix) => file.startsWith(prefix));
  const library = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(file)?.[1];
  const where = library ? `(${library})` : file.startsWith(`${root}/`) ? path.relative(root, file) : file;
  return { name: `${functionName || "(anonymous)"}${where ? ` ${where}` : ""}`, ours };
}

/** Self time per function, in microseconds, and the sampled time that was not idle. */
export function selfTimes(profile: CpuProfile): { busy: number; functions: Map<string, { time: number; ours: boolean }> } {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map<number, number>();
  (profile.samples ?? []).forEach((id, index) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas?.[index] ?? 0)));
  let busy = 0;
  const functions = new Map<string, { time: number; ours: boolean }>();
  for (const [id, time] of self) {
    const { url, functionName } = byId.get(id)!.callFrame;
    if (functionName === "(idle)") continue;
    busy += time;
    const { name, ours } = describe(functionName, url);
    const known = functions.get(name);
    if (known) known.time += time;
    else functions.set(name, { time, ours });
  }
  return { busy, functions };
}

export function readShare(file: string): ProfileShare {
  const { busy, functions } = selfTimes(JSON.parse(readFileSync(file, "utf8")) as CpuProfile);
  const ourFunctions = [...functions].filter(([, { ours }]) => ours);
  const ours = ourFunctions.reduce((total, [, { time }]) => total + time, 0);
  const top = ourFunctions.sort((a, b) => b[1].time - a[1].time).slice(0, 5).map(([name, { time }]) => ({ name, share: time / busy }));
  return { package_share: busy === 0 ? 0 : ours / busy, top };
}

/** A directory for one server's profile, and how to read it once the server has exited. */
export function profileDirectory(): { dir: string; read(): ProfileShare; close(): void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), "bench-profile-"));
  return {
    dir,
    read: () => {
      const file = readdirSync(dir).find((name) => name.endsWith(".cpuprofile"));
      if (!file) throw new Error(`no CPU profile was written in ${dir}`);
      return readShare(path.join(dir, file));
    },
    close: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Stops a server so that it writes its profile. */
export function stopProfiled(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
  });
}

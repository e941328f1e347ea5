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

interface CpuProfile {
  nodes: { id: number; callFrame: { url: string; functionName: string } }[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileShare {
  /** Self time in the package's files over all non-idle sampled time. */
  package_share: number;
  /** The package's functions with the most self time, in % of non-idle time. */
  top: { name: string; share: number }[];
}

export function readShare(file: string): ProfileShare {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map<number, number>();
  profile.samples.forEach((id, index) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[index] ?? 0)));
  let busy = 0;
  let ours = 0;
  const functions = new Map<string, number>();
  for (const [id, time] of self) {
    const { url, functionName } = byId.get(id)!.callFrame;
    if (functionName === "(idle)") continue;
    busy += time;
    const file = url.replace(/^file:\/\//, "");
    if (PACKAGE_FILES.some((prefix) => file.startsWith(prefix))) {
      ours += time;
      const name = `${functionName || "(anonymous)"} ${path.relative(root, file)}`;
      functions.set(name, (functions.get(name) ?? 0) + time);
    }
  }
  const top = [...functions].sort((a, b) => b[1] - a[1]).slice(0, 5).map(([name, time]) => ({ name, share: time / busy }));
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

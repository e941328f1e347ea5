// A private PostgreSQL primary with a streaming replica, for the read-replica tests: made with
// initdb and pg_basebackup in a temporary directory, on free ports, and stopped and removed
// afterwards (also when the test process exits early). The shared server on 5432 is never
// touched. PostgreSQL refuses to run as root, so as root the servers run as the `postgres` user.
import { execFile, spawnSync } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import knexFactory, { type Knex } from "knex";
import { freePort } from "./redis";
import { skipOrFail } from "./services";

const run = promisify(execFile);

/** The newest PostgreSQL's programs: Debian keeps them in /usr/lib/postgresql/<version>/bin, others on the PATH. */
function binDirectory(): string | undefined {
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root).filter((name) => existsSync(path.join(root, name, "bin", "pg_ctl")));
  versions.sort((a, b) => Number(b) - Number(a));
  return versions[0] && path.join(root, versions[0], "bin");
}

const BIN = binDirectory();
const asRoot = process.getuid?.() === 0;

/** A PostgreSQL program, run as `postgres` when we are root. */
function command(program: string, args: string[]): [string, string[]] {
  const file = BIN ? path.join(BIN, program) : program;
  return asRoot ? ["runuser", ["-u", "postgres", "--", file, ...args]] : [file, args];
}

async function pg(program: string, args: string[]): Promise<void> {
  const [file, argv] = command(program, args);
  await run(file, argv, { timeout: 60_000 });
}

/** Data directories of servers still running, and the clusters' directories: cleaned up at exit if a suite could not. */
const running = new Set<string>();
const directories = new Set<string>();
process.once("exit", () => {
  for (const data of running) spawnSync(...command("pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"]));
  for (const dir of directories) rmSync(dir, { recursive: true, force: true });
});

export class ReplicaCluster {
  readonly primary: Knex;
  readonly replica: Knex;

  private constructor(
    private readonly dir: string,
    readonly primaryPort: number,
    readonly replicaPort: number,
  ) {
    this.primary = knexFactory({ client: "pg", connection: this.url(primaryPort), pool: { min: 0, max: 4 } });
    this.replica = knexFactory({ client: "pg", connection: this.url(replicaPort), pool: { min: 0, max: 4 } });
  }

  url(port: number): string {
    return `postgres://postgres@127.0.0.1:${port}/postgres`;
  }

  /** Starts both servers (about 5 s), or skips the suite (fails it under CI) when PostgreSQL's programs are missing. */
  static async start(context: Mocha.Context): Promise<ReplicaCluster | undefined> {
    const dir = mkdtempSync(path.join(tmpdir(), "api-keys-replica-"));
    directories.add(dir);
    const [primaryPort, replicaPort] = [await freePort(), await freePort()];
    const cluster = new ReplicaCluster(dir, primaryPort, replicaPort);
    try {
      if (asRoot) {
        const id = (flag: string) => Number(spawnSync("id", [flag, "postgres"], { encoding: "utf8" }).stdout.trim());
        chownSync(dir, id("-u"), id("-g"));
      }
      await pg("initdb", ["-D", cluster.data("primary"), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"]);
      await cluster.startServer("primary", primaryPort, ["-c wal_level=replica", "-c max_wal_senders=4", "-c fsync=off"]);
      await pg("pg_basebackup", ["-h", "127.0.0.1", "-p", String(primaryPort), "-U", "postgres", "-D", cluster.data("replica"), "-R", "-X", "stream", "-c", "fast"]);
      await cluster.startServer("replica", replicaPort, ["-c hot_standby=on", "-c fsync=off"]);
      return cluster;
    } catch (error) {
      await cluster.stop();
      return skipOrFail(context, "a private PostgreSQL primary and replica", BIN ?? "PATH", error);
    }
  }

  private data(server: "primary" | "replica"): string {
    return path.join(this.dir, server);
  }

  private async startServer(server: "primary" | "replica", port: number, settings: string[]): Promise<void> {
    const options = [`-p ${port}`, `-k ${this.dir}`, "-c listen_addresses=127.0.0.1", ...settings].join(" ");
    running.add(this.data(server));
    await pg("pg_ctl", ["-D", this.data(server), "-l", `${this.data(server)}.log`, "-o", options, "-w", "start"]);
  }

  private async stopServer(server: "primary" | "replica"): Promise<void> {
    if (!running.delete(this.data(server))) return;
    // A server that never started has nothing to stop: that failure is the one already reported.
    await pg("pg_ctl", ["-D", this.data(server), "-m", "immediate", "-w", "stop"]).catch(() => undefined);
  }

  /** Stops replay on the replica: from now on it lags behind the primary until `resumeReplay`. */
  async pauseReplay(): Promise<void> {
    await this.replica.raw("select pg_wal_replay_pause()");
    while ((await this.replica.raw<{ rows: { state: string }[] }>("select pg_get_wal_replay_pause_state() as state")).rows[0]!.state !== "paused") {
      await sleep(5);
    }
  }

  /** Resumes replay and waits until the replica has every change the primary has flushed. */
  async resumeReplay(): Promise<void> {
    await this.replica.raw("select pg_wal_replay_resume()");
    await this.caughtUp();
  }

  async caughtUp(): Promise<void> {
    const { rows } = await this.primary.raw<{ rows: { lsn: string }[] }>("select pg_current_wal_flush_lsn()::text as lsn");
    const sql = "select pg_last_wal_replay_lsn() >= ?::pg_lsn as done";
    while (!(await this.replica.raw<{ rows: { done: boolean }[] }>(sql, [rows[0]!.lsn])).rows[0]!.done) await sleep(5);
  }

  /** Stops both servers and removes their directory. */
  async stop(): Promise<void> {
    await Promise.all([this.primary.destroy(), this.replica.destroy()]);
    await this.stopServer("replica");
    await this.stopServer("primary");
    rmSync(this.dir, { recursive: true, force: true });
    directories.delete(this.dir);
  }
}

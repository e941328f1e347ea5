// Private Redis topologies for tests, on free ports of their own (never the shared 6379): a
// Redis Cluster of masters (and a replica each, for tests that fail a master over), and a
// master with a replica watched by three Sentinels. Each lives in a temporary directory and is
// stopped, every process, by `stop()`. Without redis-server or redis-cli the tests fail under
// CI and skip loudly elsewhere.
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { Cluster, Redis } from "ioredis";
import { PrivateRedis, REDIS_URL, connectRedis, deletePrefix, freePort, serviceClient } from "./redis";
import { skipOrFail } from "./services";

const execFileAsync = promisify(execFile);
/** A master feeds a new replica at once, not after the default 5 s wait for more replicas. */
const QUICK_SYNC = ["--repl-diskless-sync-delay", "0"];

/** Fails under CI, and skips elsewhere, when redis-server or redis-cli cannot be run. */
export async function requireRedisTools(context: Mocha.Context): Promise<void> {
  try {
    await execFileAsync("redis-server", ["--version"]);
    await execFileAsync("redis-cli", ["--version"]);
  } catch (error) {
    skipOrFail(context, "redis-server and redis-cli", "PATH", error);
  }
}

/** Polls `check` every 50 ms until it holds, for up to `ms`; fails naming `what` otherwise. */
export async function waitFor(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // A node that is failing over or restarting may refuse a probe: ask again.
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** One admin connection to one server, closed after `work`. */
async function onServer<T>(port: number, work: (client: Redis) => Promise<T>): Promise<T> {
  const client = new Redis(port, "127.0.0.1", { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
  client.on("error", () => {});
  try {
    await client.connect();
    return await work(client);
  } finally {
    client.disconnect();
  }
}

async function info(port: number, section: string): Promise<string> {
  return onServer(port, (client) => client.info(section));
}

/** `field:value` lines of INFO (or CLUSTER INFO) as a map. */
function fields(text: string): Map<string, string> {
  return new Map(text.split("\r\n").flatMap((line) => (line.includes(":") ? [line.split(/:(.*)/s).slice(0, 2) as [string, string]] : [])));
}

async function stopAll(servers: PrivateRedis[], dir: string): Promise<void> {
  await Promise.all(servers.map((server) => server.stop()));
  await rm(dir, { recursive: true, force: true });
}

interface ClusterNodeLine {
  id: string;
  port: number;
  master: boolean;
  masterId: string;
  slots: string[];
}

export class PrivateCluster {
  private constructor(
    readonly servers: PrivateRedis[],
    readonly replicas: number,
    readonly dir: string,
  ) {}

  /** `masters` masters with `replicas` replicas each, formed with `redis-cli --cluster create`. */
  static async start(masters: number, replicas: number): Promise<PrivateCluster> {
    const dir = await mkdtemp(path.join(tmpdir(), "api-keys-cluster-"));
    const servers: PrivateRedis[] = [];
    const cluster = new PrivateCluster(servers, replicas, dir);
    try {
      for (let i = 0; i < masters * (1 + replicas); i++) {
        const server = new PrivateRedis(await freePort());
        servers.push(server);
        // The bus port is given, not left at port + 10000, which may be taken or out of range.
        const bus = await freePort();
        await server.start([
          "--dir", dir,
          "--cluster-enabled", "yes",
          "--cluster-config-file", `nodes-${server.port}.conf`,
          "--cluster-port", String(bus),
          "--cluster-node-timeout", "2000",
          ...QUICK_SYNC,
        ]);
      }
      const addresses = servers.map((server) => `127.0.0.1:${server.port}`);
      await execFileAsync("redis-cli", ["--cluster", "create", ...addresses, "--cluster-replicas", String(replicas), "--cluster-yes"], { timeout: 30_000 });
      await cluster.waitHealthy();
      return cluster;
    } catch (error) {
      await stopAll(servers, dir);
      throw error;
    }
  }

  /** `host:port,...` of every node, as REDIS_CLUSTER_NODES and `--redis-cluster-nodes` take them. */
  get addresses(): string {
    return this.servers.map((server) => `127.0.0.1:${server.port}`).join(",");
  }

  get startupNodes(): { host: string; port: number }[] {
    return this.servers.map((server) => ({ host: "127.0.0.1", port: server.port }));
  }

  /** Every node says cluster_state:ok and sees every slot served, and every replica is in sync. */
  async waitHealthy(): Promise<void> {
    await waitFor("cluster_state:ok on every node", async () => {
      const states = await Promise.all(this.servers.map(async (server) => fields(await onServer(server.port, (client) => client.cluster("INFO")))));
      return states.every((state) => state.get("cluster_state") === "ok" && state.get("cluster_slots_ok") === "16384");
    });
    await waitFor("every node to agree on the masters", async () => {
      const views = await Promise.all(this.servers.map((server) => this.#nodes(server.port)));
      const masters = (view: ClusterNodeLine[]) => view.filter((node) => node.master && node.slots.length > 0).map((node) => node.id).sort().join();
      return views.every((view) => masters(view) === masters(views[0]!));
    });
    const replicas = (this.servers.length / (1 + this.replicas)) * this.replicas;
    await waitFor("every replica known and in sync", async () => {
      const views = await Promise.all(this.servers.map((server) => this.#nodes(server.port)));
      if (views.some((view) => view.filter((node) => !node.master).length !== replicas)) return false;
      const roles = await Promise.all(views[0]!.filter((node) => !node.master).map(async (node) => fields(await info(node.port, "replication"))));
      return roles.every((role) => role.get("master_link_status") === "up");
    });
  }

  async #nodes(port: number): Promise<ClusterNodeLine[]> {
    const text = await onServer(port, (client) => client.cluster("NODES"));
    return String(text)
      .trim()
      .split("\n")
      .map((line) => {
        const [id, address, flags, masterId, , , , , ...slots] = line.split(" ");
        return {
          id: id!,
          port: Number(address!.split(/[:@]/)[1]),
          master: flags!.split(",").includes("master"),
          masterId: masterId!,
          slots,
        };
      });
  }

  /** The master that serves `slot`, as the first node sees it. */
  async ownerOf(slot: number): Promise<{ id: string; port: number }> {
    const view = await this.#nodes(this.servers[0]!.port);
    const owner = view.find((node) => node.master && node.slots.some((range) => inRange(range, slot)));
    if (!owner) throw new Error(`no master serves slot ${slot}`);
    return owner;
  }

  async masters(): Promise<{ id: string; port: number }[]> {
    return (await this.#nodes(this.servers[0]!.port)).filter((node) => node.master && node.slots.length > 0);
  }

  /**
   * Moves `slot` to the master on `toPort` as `redis-cli --cluster reshard` does (IMPORTING,
   * MIGRATING, MIGRATE, SETSLOT NODE), one key at a time with `pauseMs` between keys, so that
   * for a while a token's entry and version sit on different nodes.
   */
  async moveSlot(slot: number, toPort: number, pauseMs: number): Promise<void> {
    const from = await this.ownerOf(slot);
    const to = (await this.masters()).find((node) => node.port === toPort)!;
    await onServer(to.port, (client) => client.cluster("SETSLOT", slot, "IMPORTING", from.id));
    await onServer(from.port, (client) => client.cluster("SETSLOT", slot, "MIGRATING", to.id));
    await onServer(from.port, async (client) => {
      for (;;) {
        const keys = await client.cluster("GETKEYSINSLOT", slot, 1);
        if (keys.length === 0) break;
        await client.migrate("127.0.0.1", to.port, "", 0, 5000, "KEYS", ...keys);
        await sleep(pauseMs);
      }
    });
    // The new owner first, then the old, then everyone else, as redis-cli does.
    const masters = await this.masters();
    const order = [to, from, ...masters.filter((node) => node.id !== to.id && node.id !== from.id)];
    for (const node of order) await onServer(node.port, (client) => client.cluster("SETSLOT", slot, "NODE", to.id));
  }

  /** Promotes the replica of the master on `masterPort` with CLUSTER FAILOVER; resolves once the cluster agrees. */
  async failOver(masterPort: number): Promise<number> {
    const view = await this.#nodes(this.servers[0]!.port);
    const master = view.find((node) => node.port === masterPort)!;
    const replica = view.find((node) => !node.master && node.masterId === master.id);
    if (!replica) throw new Error(`the master on ${masterPort} has no replica`);
    await onServer(replica.port, (client) => client.cluster("FAILOVER"));
    await waitFor("the replica to take over", async () => (await this.masters()).some((node) => node.port === replica.port));
    await this.waitHealthy();
    return replica.port;
  }

  /** Connections subscribed to `channel`, summed over every node (each counts only its own). */
  async subscribers(channel: string): Promise<number> {
    const counts = await Promise.all(this.servers.map((server) => onServer(server.port, (client) => client.pubsub("NUMSUB", channel))));
    return counts.reduce((sum: number, [, count]) => sum + Number(count), 0);
  }

  /** Every node stops answering clients for `ms` (CLIENT PAUSE), as an overloaded cluster would. */
  async pause(ms: number): Promise<void> {
    await Promise.all(this.servers.map((server) => onServer(server.port, (client) => client.call("CLIENT", "PAUSE", ms, "ALL"))));
  }

  /** Closes every subscribed connection on every node, as a node that restarts would. */
  async dropSubscribers(): Promise<void> {
    await Promise.all(this.servers.map((server) => onServer(server.port, (client) => client.call("CLIENT", "KILL", "TYPE", "pubsub"))));
  }

  async stop(): Promise<void> {
    await stopAll(this.servers, this.dir);
  }
}

function inRange(range: string, slot: number): boolean {
  if (range.startsWith("[")) return false; // a slot being migrated or imported
  const [start, end] = range.split("-").map(Number);
  return slot >= start! && slot <= (end ?? start!);
}

/** A master, its replica, and three Sentinels that watch them under the name `name`. */
export class PrivateSentinels {
  readonly name = "api-keys";

  private constructor(
    readonly master: PrivateRedis,
    readonly replica: PrivateRedis,
    readonly sentinels: PrivateRedis[],
    readonly dir: string,
  ) {}

  static async start(): Promise<PrivateSentinels> {
    const dir = await mkdtemp(path.join(tmpdir(), "api-keys-sentinel-"));
    const master = new PrivateRedis(await freePort());
    const replica = new PrivateRedis(await freePort());
    const sentinels = [new PrivateRedis(await freePort()), new PrivateRedis(await freePort()), new PrivateRedis(await freePort())];
    const topology = new PrivateSentinels(master, replica, sentinels, dir);
    try {
      await master.start(["--dir", dir, ...QUICK_SYNC]);
      await replica.start(["--dir", dir, ...QUICK_SYNC, "--replicaof", "127.0.0.1", String(master.port)]);
      await waitFor("the replica to sync", async () => fields(await info(replica.port, "replication")).get("master_link_status") === "up");
      for (const sentinel of sentinels) {
        // Sentinel rewrites its configuration file, so each gets one of its own.
        const config = path.join(dir, `sentinel-${sentinel.port}.conf`);
        await writeFile(
          config,
          [
            `dir ${dir}`,
            `sentinel monitor ${topology.name} 127.0.0.1 ${master.port} 2`,
            `sentinel down-after-milliseconds ${topology.name} 1000`,
            `sentinel failover-timeout ${topology.name} 10000`,
            "",
          ].join("\n"),
        );
        await sentinel.start(["--sentinel"], config);
      }
      await waitFor("every Sentinel to know the replica", async () => {
        const known = await Promise.all(sentinels.map((sentinel) => onServer(sentinel.port, (client) => client.call("SENTINEL", "REPLICAS", topology.name))));
        return known.every((replicas) => (replicas as unknown[]).length === 1);
      });
      return topology;
    } catch (error) {
      await topology.stop();
      throw error;
    }
  }

  /** `host:port,...` of the Sentinels, as REDIS_SENTINELS and `--redis-sentinels` take them. */
  get addresses(): string {
    return this.sentinels.map((sentinel) => `127.0.0.1:${sentinel.port}`).join(",");
  }

  get sentinelNodes(): { host: string; port: number }[] {
    return this.sentinels.map((sentinel) => ({ host: "127.0.0.1", port: sentinel.port }));
  }

  /** The port of the master as the Sentinels name it now. */
  async masterPort(): Promise<number> {
    const address = await onServer(this.sentinels[0]!.port, (client) => client.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", this.name));
    return Number((address as string[])[1]);
  }

  /** SENTINEL FAILOVER; resolves once every Sentinel names the new master and it says it is one. Returns its port. */
  async failOver(): Promise<number> {
    const before = await this.masterPort();
    await onServer(this.sentinels[0]!.port, (client) => client.call("SENTINEL", "FAILOVER", this.name));
    const after = before === this.master.port ? this.replica.port : this.master.port;
    await waitFor("the Sentinels to name the new master", async () => {
      const named = await Promise.all(
        this.sentinels.map((sentinel) => onServer(sentinel.port, (client) => client.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", this.name))),
      );
      return named.every((address) => Number((address as string[])[1]) === after);
    });
    await waitFor("the new master to be one", async () => fields(await info(after, "replication")).get("role") === "master");
    return after;
  }

  /** How many connections on the server at `port` are subscribed to `channel`. */
  async subscribers(port: number, channel: string): Promise<number> {
    const [, count] = (await onServer(port, (client) => client.pubsub("NUMSUB", channel))) as [string, number];
    return Number(count);
  }

  async stop(): Promise<void> {
    await stopAll([...this.sentinels, this.replica, this.master], this.dir);
  }
}

/** A Redis a suite runs on: the shared one, or a private cluster of three masters. */
export interface SharedRedis {
  readonly cluster: boolean;
  /** What `initialize()`'s `redis` option takes to reach it. */
  readonly option: string | { clusterNodes: string[] };
  /** The suite's own connection, for reading what the package wrote and cleaning up after. */
  readonly admin: Redis | Cluster;
  /** A new client opened the way `initialize()` opens one, ready. */
  client(): Promise<Redis | Cluster>;
  /** Names under `prefix` on every master. */
  keys(prefix: string): Promise<string[]>;
  deletePrefix(prefix: string): Promise<void>;
}

async function namesOn(client: Redis, prefix: string): Promise<string[]> {
  const names: string[] = [];
  let cursor = "0";
  do {
    const [next, found] = await client.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 500);
    cursor = next;
    names.push(...found);
  } while (cursor !== "0");
  return names;
}

async function ready(client: Redis | Cluster): Promise<Redis | Cluster> {
  client.on("error", () => {});
  await waitFor("a Redis client to be ready", async () => client.status === "ready", 10_000);
  return client;
}

/**
 * Runs `body` twice: on the shared Redis, and on a private Redis Cluster of three masters that
 * the suite starts once and stops after, so every command it makes must fit one slot.
 */
export function onEveryRedis(title: string, body: (redis: () => SharedRedis) => void): void {
  describe(`${title} [one Redis]`, function () {
    let shared: SharedRedis;
    before(async function () {
      const admin = await connectRedis(this);
      shared = {
        cluster: false,
        option: REDIS_URL,
        admin: admin!,
        client: () => ready(serviceClient(REDIS_URL)),
        keys: (prefix) => namesOn(admin!, prefix),
        deletePrefix: (prefix) => deletePrefix(admin!, prefix),
      };
    });
    after(() => shared?.admin.disconnect());
    body(() => shared);
  });

  describe(`${title} [Redis Cluster]`, function () {
    let cluster: PrivateCluster | undefined;
    let shared: SharedRedis;
    before(async function () {
      // Forming a cluster of three masters takes a few seconds.
      this.timeout(60_000);
      await requireRedisTools(this);
      cluster = await PrivateCluster.start(3, 0);
      const admin = (await ready(new Cluster(cluster.startupNodes))) as Cluster;
      const onMasters = async <T>(work: (node: Redis) => Promise<T>) => Promise.all(admin.nodes("master").map(work));
      shared = {
        cluster: true,
        option: { clusterNodes: cluster.addresses.split(",") },
        admin,
        client: () => ready(new Cluster(cluster!.startupNodes, { enableOfflineQueue: false, clusterRetryStrategy: (attempt) => Math.min(attempt * 100, 1000) })),
        keys: async (prefix) => (await onMasters((node) => namesOn(node, prefix))).flat(),
        // Each name is deleted on its own: one DEL of names in several slots is refused.
        deletePrefix: async (prefix) => {
          for (const name of await shared.keys(prefix)) await admin.del(name);
        },
      };
    });
    after(async () => {
      shared?.admin.disconnect();
      await cluster?.stop();
    });
    body(() => shared);
  });
}

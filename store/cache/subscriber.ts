// The connection that hears invalidations, seen through the events of one ioredis client:
// "ready" each time it is connected and may subscribe, "close" each time it is lost (messages
// sent meanwhile are lost, so the Redis tier stops trusting what it holds), "message", "error".
import { EventEmitter } from "node:events";
import type { Cluster, Redis } from "ioredis";
import { type RedisClient, isCluster } from "./redis-client";

export interface Subscriber {
  on(event: "ready" | "close", listener: () => void): unknown;
  on(event: "message", listener: (channel: string, message: unknown) => void): unknown;
  on(event: "error", listener: (error: unknown) => void): unknown;
  connect(): Promise<void>;
  subscribe(channel: string): Promise<unknown>;
  disconnect(): void;
}

/**
 * A second connection beside `client`. For one Redis, or one found through Sentinel, that is a
 * duplicate with the client's own options: through Sentinel it follows the master as the
 * client does (and with the client's `failoverDetector`, as promptly).
 */
export function openSubscriber(client: RedisClient): Subscriber {
  if (isCluster(client)) return new ClusterSubscriber(client);
  return client.duplicate({ enableOfflineQueue: true, lazyConnect: true });
}

/** Delays before trying the next node, by failures in a row: the first at once, on another node. */
const RETRY_DELAYS_MS = [0, 50, 100, 250, 500, 1000];

/**
 * A subscription on a Redis Cluster: one plain connection to any node. A PUBLISH on a cluster
 * reaches every node, masters and replicas, whichever slots they serve, so resharding and
 * failovers elsewhere do not touch it; when its own node is lost, the next node the cluster
 * knows of is tried. ioredis's own cluster subscriber also moves on by itself, but silently:
 * messages lost while it moves would go unnoticed. Here each move is a "close" then a "ready".
 *
 * Sharded pub/sub (SSUBSCRIBE, Redis 7) is not used: it pays off for many busy channels, and
 * we have one quiet one; and it would drop the subscription whenever the channel's slot moves
 * or its master fails over, which is exactly when invalidations matter.
 */
class ClusterSubscriber extends EventEmitter implements Subscriber {
  readonly #cluster: Cluster;
  #node: Redis | undefined;
  #next = Math.floor(Math.random() * 1024);
  #failures = 0;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(cluster: Cluster) {
    super();
    this.#cluster = cluster;
  }

  /** Connects to one node; when that fails, rejects and goes on trying the others in the background. */
  async connect(): Promise<void> {
    const nodes = this.#cluster.nodes("all");
    if (nodes.length === 0) {
      // The cluster has not connected yet: its nodes are not known.
      this.#retry();
      throw new Error("Redis Cluster: no node is known yet");
    }
    const node = nodes[this.#next++ % nodes.length]!.duplicate({ lazyConnect: true, enableOfflineQueue: true, retryStrategy: () => null });
    this.#node = node;
    node.on("ready", () => {
      this.#failures = 0;
      this.emit("ready");
    });
    node.on("message", (channel: string, message: unknown) => this.emit("message", channel, message));
    node.on("error", (error: unknown) => this.emit("error", error));
    node.on("close", () => this.emit("close"));
    // Without a retry strategy, a lost connection ends: move on to another node.
    node.once("end", () => {
      if (this.#node === node) this.#retry();
    });
    await node.connect();
  }

  async subscribe(channel: string): Promise<unknown> {
    if (!this.#node) throw new Error("Redis Cluster: the subscriber is not connected");
    return this.#node.subscribe(channel);
  }

  disconnect(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#node?.disconnect();
    this.#node = undefined;
  }

  #retry(): void {
    if (this.#stopped || this.#timer) return;
    this.#node = undefined;
    const delay = RETRY_DELAYS_MS[Math.min(this.#failures++, RETRY_DELAYS_MS.length - 1)];
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      // A failure is heard as the node's "end" (or no node known), which tries again.
      this.connect().catch(() => {});
    }, delay);
    this.#timer.unref();
  }
}

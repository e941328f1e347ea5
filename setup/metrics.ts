// Prometheus metrics through prom-client, an optional peer dependency: it is loaded only when the
// app turns `metrics` on, so that an app without it pays nothing, not even the import.
import { failConfiguration } from "../lib/errors";
import type { LookupTier, Metrics } from "../lib/metrics";
import type { ApiKeyType, VerifyCode } from "../lib/types";

/** What we need of a prom-client `Registry`: the app's own, or prom-client's default `register`. */
export interface MetricsRegistry {
  registerMetric(metric: never): void;
  getSingleMetric(name: string): unknown;
}

export interface MetricsOptions {
  /** Where the metrics are registered. Default: prom-client's default registry (`register`). */
  registry?: MetricsRegistry;
  /** Put before every metric's name. Default: `""` (the names start with `api_key_`). */
  prefix?: string;
}

/** Writes not yet made, read when the registry is scraped. */
export interface PendingWrites {
  last_used: number;
  usage: number;
}

const PREFIX = /^[a-zA-Z_:][a-zA-Z0-9_:]*$|^$/;
/** Seconds: lookups and commands take from a tenth of a millisecond to the timeouts (250 ms by default) and past them. */
const BUCKETS = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

type PromClient = typeof import("prom-client");

async function loadPromClient(): Promise<PromClient> {
  try {
    return await import("prom-client");
  } catch {
    failConfiguration("`metrics` needs the prom-client package: npm install prom-client");
  }
}

export function checkMetricsOption(option: unknown): MetricsOptions | undefined {
  if (option === undefined || option === false) return undefined;
  if (option === true) return {};
  if (typeof option !== "object" || option === null) failConfiguration("`metrics` must be a boolean or { registry?, prefix? }.");
  const { registry, prefix, ...rest } = option as Record<string, unknown>;
  const unknown = Object.keys(rest)[0];
  if (unknown !== undefined) failConfiguration(`unknown option \`metrics.${unknown}\`; the options are registry and prefix.`);
  const given = registry as Partial<MetricsRegistry> | undefined;
  if (registry !== undefined && (typeof given?.registerMetric !== "function" || typeof given.getSingleMetric !== "function")) {
    failConfiguration("`metrics.registry` must be a prom-client Registry.");
  }
  if (prefix !== undefined && (typeof prefix !== "string" || !PREFIX.test(prefix))) {
    failConfiguration("`metrics.prefix` must be a valid start of a Prometheus metric name, such as `myapp_`.");
  }
  return { registry: registry as MetricsRegistry | undefined, prefix: prefix };
}

/** Every open service's pending writes, by registry: a scrape reports their sum. */
const pendingSources = new WeakMap<object, Set<() => PendingWrites>>();

export interface OpenedMetrics {
  metrics: Metrics;
  /** Stops reporting this service's pending writes (its metrics stay registered, as prom-client keeps them). */
  close(): void;
}

/**
 * The metrics, registered in `options.registry`. Several services in one process on one registry
 * share them: their counts add up. `pending` and `withRedis` say what this service has.
 */
export async function openMetrics(options: MetricsOptions, pending: () => PendingWrites, withRedis: boolean): Promise<OpenedMetrics> {
  const client = await loadPromClient();
  const registry = (options.registry ?? client.register) as InstanceType<PromClient["Registry"]>;
  const registers = [registry];
  const name = (suffix: string) => `${options.prefix ?? ""}api_key_${suffix}`;
  const once = <M>(suffix: string, make: (name: string) => M): M => (registry.getSingleMetric(name(suffix)) as M | undefined) ?? make(name(suffix));
  const verifications = once("verifications_total", (n) => new client.Counter({ name: n, help: "Verifications by key type (none: no key found) and code.", labelNames: ["type", "code"], registers }));
  const answers = once("lookups_total", (n) => new client.Counter({ name: n, help: "Key lookups by the tier that answered: memory, redis or store.", labelNames: ["tier"], registers }));
  const durations = {
    store: once("store_lookup_duration_seconds", (n) => new client.Histogram({ name: n, help: "Lookups of keys in the store, by outcome.", labelNames: ["outcome"], buckets: BUCKETS, registers })),
    redis: once("redis_command_duration_seconds", (n) => new client.Histogram({ name: n, help: "Redis commands of the cache tier, by outcome.", labelNames: ["outcome"], buckets: BUCKETS, registers })),
  };
  const up = {
    store: once("store_up", (n) => new client.Gauge({ name: n, help: "1 when the last store lookup succeeded, else 0.", registers })),
    redis: withRedis ? once("redis_up", (n) => new client.Gauge({ name: n, help: "1 when the last Redis command succeeded, else 0.", registers })) : undefined,
  };
  up.store.set(1);
  up.redis?.set(1);
  let sources = pendingSources.get(registry);
  if (!sources) {
    const all = new Set<() => PendingWrites>();
    pendingSources.set(registry, (sources = all));
    once("pending_writes", (n) =>
      new client.Gauge({
        name: n,
        help: "Writes waiting for the next flush: last_used (keys) and usage (key-hour pairs of verification counts).",
        labelNames: ["kind"],
        registers,
        collect() {
          const sum = { last_used: 0, usage: 0 };
          for (const source of all) {
            const waiting = source();
            sum.last_used += waiting.last_used;
            sum.usage += waiting.usage;
          }
          this.set({ kind: "last_used" }, sum.last_used);
          this.set({ kind: "usage" }, sum.usage);
        },
      }),
    );
  }
  sources.add(pending);
  const metrics: Metrics = {
    verified: (type: ApiKeyType | "none", code: VerifyCode) => verifications.inc({ type, code }),
    answered: (tier: LookupTier) => answers.inc({ tier }),
    timed(target, seconds, ok) {
      durations[target].observe({ outcome: ok ? "ok" : "error" }, seconds);
      up[target]?.set(ok ? 1 : 0);
    },
  };
  return { metrics, close: () => sources.delete(pending) };
}

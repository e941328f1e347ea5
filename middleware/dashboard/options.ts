// apiKeyDashboard()'s options: what each means, its default, and how it is checked, in one place.
import type { IncomingMessage } from "node:http";
import type { ApiKeyService } from "../../lib/service";
import type { AdminRouterOptions } from "../admin-router";
import { adminScopesProblem } from "../admin-scopes";
import { type FactorySpec, checkFactoryOptions, rules } from "../http/options";
import type { SignInLimit } from "./sign-in-throttle";

export interface DashboardOptions {
  /** The service to manage keys with. Default: the one the latest `initialize()` returned. */
  service?: ApiKeyService;
  /**
   * `true`: a person signs in with a secret key. `false`: no sign-in, for an app that protects
   * the mount with its own authentication; its `req.auth_context.actor_id` (or `actor`) is
   * the one acting, and a request without one is refused. Default: `true`.
   */
  signIn?: boolean;
  /** Who is acting when `signIn` is `false`. Default: `req.auth_context.actor_id`. */
  actor?: (req: IncomingMessage) => string | undefined;
  /** The longest a session lasts, in seconds. Default: 28800 (8 hours). */
  sessionMaxAge?: number;
  /** A session ends after this many seconds without a request. Default: 3600 (1 hour). */
  sessionIdleTimeout?: number;
  /** How many sessions the process keeps at most; the least recently used end first. Default: 10000. */
  maxSessions?: number;
  /**
   * How many sessions one key may hold at once; signing in once more ends that key's oldest
   * session, and nobody else's. Default: 10.
   */
  maxSessionsPerKey?: number;
  /**
   * Sign-ins one key may make in a window: `limit` per `duration` seconds, counted in this
   * process. One more is answered 429 `rate_limited` with `Retry-After`, opens no session and
   * spends no use of the key. Default: `{ limit: 10, duration: 60 }`.
   */
  signInsPerKey?: SignInLimit;
  /**
   * Sign-in attempts one client address (`req.ip`: set Express's `trust proxy` behind a proxy)
   * may make in a window, right keys or wrong, counted before any key is checked, in this
   * process. One more is answered as `signInsPerKey`'s. Default: `{ limit: 30, duration: 60 }`.
   */
  signInsPerAddress?: SignInLimit;
  /** As the admin router's: scopes the signed-in key needs, `read` to sign in and list, `read` and `write` to change keys. Default: as the router's (`api_keys:read` / `api_keys:write` for keys with scopes; unrestricted keys may do everything). */
  scopes?: AdminRouterOptions["scopes"];
  /** As the admin router's: the ids among `ids` that name no sales channel. Default: every id is accepted. */
  findMissingSalesChannels?: AdminRouterOptions["findMissingSalesChannels"];
}

const DEFAULTS = {
  signIn: true,
  sessionMaxAge: 8 * 3600,
  sessionIdleTimeout: 3600,
  maxSessions: 10_000,
  maxSessionsPerKey: 10,
  signInsPerKey: { limit: 10, duration: 60 },
  signInsPerAddress: { limit: 30, duration: 60 },
};

export type DashboardConfig = DashboardOptions & typeof DEFAULTS;

const isCount = (value: unknown) => typeof value === "number" && Number.isSafeInteger(value) && value > 0;

const signInLimit =
  (name: string) =>
  (value: unknown): string | undefined => {
    const { limit, duration } = (typeof value === "object" && value !== null ? value : {}) as Partial<SignInLimit>;
    return isCount(limit) && isCount(duration)
      ? undefined
      : `\`${name}\` must be { limit, duration }: whole numbers of sign-ins and of seconds greater than 0, such as { limit: 10, duration: 60 }.`;
  };

const OPTIONS: FactorySpec<DashboardOptions> = {
  name: "apiKeyDashboard",
  usage: 'apiKeyDashboard() returns the router: write app.use("/admin/keys", apiKeyDashboard()), not app.use(apiKeyDashboard).',
  rules: {
    service: rules.service,
    signIn: rules.boolean("signIn"),
    actor: rules.function("actor"),
    sessionMaxAge: rules.count("sessionMaxAge", "seconds"),
    sessionIdleTimeout: rules.count("sessionIdleTimeout", "seconds"),
    maxSessions: rules.count("maxSessions", "sessions"),
    maxSessionsPerKey: rules.count("maxSessionsPerKey", "sessions"),
    signInsPerKey: signInLimit("signInsPerKey"),
    signInsPerAddress: signInLimit("signInsPerAddress"),
    scopes: adminScopesProblem,
    findMissingSalesChannels: rules.function("findMissingSalesChannels"),
  },
  together: ({ actor, signIn }) =>
    actor !== undefined && signIn !== false ? "`actor` applies with `signIn: false` only: with sign-in, the signed-in key acts." : undefined,
};

/** The options checked, with the defaults for those absent (`undefined` is absent). */
export function dashboardConfig(options: unknown): DashboardConfig {
  const given = Object.entries(checkFactoryOptions(OPTIONS, options)).filter(([, value]) => value !== undefined);
  return { ...DEFAULTS, ...Object.fromEntries(given) };
}

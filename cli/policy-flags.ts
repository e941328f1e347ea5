// The key policy flags of `create` and `update`: each parser turns one flag's text into the
// value the service takes, or refuses it as a usage error (exit 2) before anything is opened.
// The service validates the values again; these checks are for the message, not the safety.
import { type Command, InvalidArgumentError, Option } from "commander";
import { POLICY_FIELDS, type PolicyField } from "../lib/columns";
import { canonicalEntry } from "../lib/ip-allow-list";
import { keyState } from "../lib/key-status";
import { isScope } from "../lib/scopes";
import type { ApiKeyDTO } from "../lib/types";
import type { QuotaRefill, RateLimitRule } from "../lib/types";

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** Seconds, as a positive integer or with a unit: `90`, `90s`, `15m`, `12h`, `30d`. */
export function duration(value: string): number {
  const match = /^(\d{1,12})([smhd]?)$/.exec(value);
  const total = match ? Number(match[1]) * UNIT_SECONDS[match[2] || "s"]! : 0;
  if (!(total >= 1)) throw new InvalidArgumentError("expected a positive number of seconds, or one with a unit: 90, 15m, 12h, 30d.");
  return total;
}

/** An ISO 8601 date and time, such as 2027-01-31T12:00:00Z, kept as the text given. */
export function isoDate(value: string): string {
  if (!/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?$/.test(value) || Number.isNaN(Date.parse(value))) {
    throw new InvalidArgumentError("expected an ISO 8601 date, such as 2027-01-31 or 2027-01-31T12:00:00Z.");
  }
  return value;
}

export function scope(value: string, previous: string[] = []): string[] {
  if (!isScope(value, true)) throw new InvalidArgumentError('expected a scope: [a-z0-9_.-] words joined by ":", such as orders:read or orders:*.');
  return [...previous, value];
}

export function metadata(value: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new InvalidArgumentError('expected a JSON object, such as \'{"plan":"pro"}\'.');
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new InvalidArgumentError('expected a JSON object, such as \'{"plan":"pro"}\'.');
  return parsed as Record<string, unknown>;
}

/** `name:limit/duration`, such as `per_minute:100/60` or `daily:10000/1d`; repeatable. */
export function rateLimit(value: string, previous: RateLimitRule[] = []): RateLimitRule[] {
  const match = /^([A-Za-z0-9_.-]{1,64}):(\d{1,12})\/(\d{1,12}[smhd]?)$/.exec(value);
  const limit = match ? Number(match[2]) : 0;
  if (!match || limit < 1) throw new InvalidArgumentError("expected name:limit/duration, such as per_minute:100/60 or daily:10000/1d.");
  return [...previous, { name: match[1]!, limit, duration: duration(match[3]!) }];
}

export function remaining(value: string): number {
  if (!/^\d{1,15}$/.test(value)) throw new InvalidArgumentError("expected a number of uses (an integer, 0 or more).");
  return Number(value);
}

/** An address or CIDR range, IPv4 or IPv6; repeatable. */
export function allowedIp(value: string, previous: string[] = []): string[] {
  if (canonicalEntry(value) === undefined) throw new InvalidArgumentError("expected an IP address or a CIDR range, such as 203.0.113.7, 10.0.0.0/8 or 2001:db8::/32.");
  return [...previous, value];
}

/** `amount/day` or `amount/month`, such as `1000/month`. */
export function refill(value: string): QuotaRefill {
  const match = /^(\d{1,15})\/(day|month)$/.exec(value);
  if (!match || Number(match[1]) < 1) throw new InvalidArgumentError("expected amount/day or amount/month, such as 1000/month.");
  return { amount: Number(match[1]), interval: match[2] as QuotaRefill["interval"] };
}

export interface PolicyFlags {
  expiresIn?: number;
  expiresAt?: string;
  clearExpiry?: boolean;
  scope?: string[];
  owner?: string;
  metadata?: Record<string, unknown>;
  rateLimit?: RateLimitRule[];
  remaining?: number;
  refill?: QuotaRefill;
  allowedIp?: string[];
  clearAllowedIps?: boolean;
}

/** How one policy field is set from the command line: its flags, and the field's value from them. */
interface FieldFlags {
  /** The flags; `update` adds `forUpdate` ones too. */
  options: () => Option[];
  forUpdate?: () => Option[];
  /** The field's value from the parsed flags, or undefined when none was given. */
  value(flags: PolicyFlags, forUpdate: boolean, now: Date): unknown;
}

/**
 * Each policy field's flags: one entry per policy field of lib/columns.ts, so that a new field
 * fails type-check until the CLI can set it.
 */
const POLICY_FLAGS: { [F in PolicyField]: FieldFlags } = {
  expires_at: {
    options: () => [
      new Option("--expires-in <seconds>", "the key stops working this long from now (90, 15m, 12h, 30d)").argParser(duration).conflicts("expiresAt"),
      new Option("--expires-at <iso>", "the key stops working at this instant (ISO 8601)").argParser(isoDate),
    ],
    forUpdate: () => [new Option("--clear-expiry", "remove the key's expiry").conflicts(["expiresAt", "expiresIn"])],
    // On update, `--expires-in` becomes an `expires_at` (the update takes only that) from `now`;
    // create takes `expires_in` itself (see policyFields).
    value: (flags, forUpdate, now) => {
      if (flags.clearExpiry) return null;
      if (flags.expiresIn !== undefined && forUpdate) return new Date(now.getTime() + flags.expiresIn * 1000).toISOString();
      return flags.expiresAt;
    },
  },
  owner_id: {
    options: () => [new Option("--owner <id>", "the account, organisation or tenant the key belongs to")],
    value: (flags) => flags.owner,
  },
  scopes: {
    options: () => [new Option("--scope <scope>", "a scope of a secret key, such as orders:read or orders:* (repeatable)").argParser(scope)],
    value: (flags) => flags.scope,
  },
  metadata: {
    options: () => [new Option("--metadata <json>", "the app's own data, as a JSON object").argParser(metadata)],
    value: (flags) => flags.metadata,
  },
  rate_limits: {
    options: () => [new Option("--rate-limit <name:limit/duration>", "at most limit requests per duration, such as per_minute:100/60 (repeatable)").argParser(rateLimit)],
    value: (flags) => flags.rateLimit,
  },
  remaining: {
    options: () => [new Option("--remaining <n>", "a usage quota: at most this many successful uses").argParser(remaining)],
    value: (flags) => flags.remaining,
  },
  refill: {
    options: () => [new Option("--refill <amount/day|month>", "refill the quota to amount each day or month, such as 1000/month").argParser(refill)],
    value: (flags) => flags.refill,
  },
  allowed_ips: {
    options: () => [new Option("--allowed-ip <address|cidr>", "accept the key only from this address or range, such as 10.0.0.0/8 (repeatable)").argParser(allowedIp)],
    forUpdate: () => [new Option("--clear-allowed-ips", "accept the key from any address again").conflicts("allowedIp")],
    value: (flags) => (flags.clearAllowedIps ? [] : flags.allowedIp),
  },
};

/** Adds the policy flags to `create`, or to `update` (which also takes --clear-expiry). */
export function addPolicyOptions(command: Command, forUpdate: boolean): Command {
  for (const field of POLICY_FIELDS) {
    const { options, forUpdate: updateOnly } = POLICY_FLAGS[field];
    for (const option of [...options(), ...(forUpdate && updateOnly ? updateOnly() : [])]) command.addOption(option);
  }
  return command;
}

/**
 * The service fields the flags set; flags left out are left out. On create, `--expires-in` is
 * the service's `expires_in`.
 */
export function policyFields(flags: PolicyFlags, forUpdate: boolean, now: Date): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  if (!forUpdate && flags.expiresIn !== undefined) fields.expires_in = flags.expiresIn;
  for (const field of POLICY_FIELDS) {
    const value = POLICY_FLAGS[field].value(flags, forUpdate, now);
    if (value !== undefined) fields[field] = value;
  }
  return fields;
}

function asDate(value: Date | string | null | undefined): Date | undefined {
  return value === null || value === undefined ? undefined : new Date(value);
}

/**
 * The STATUS column: `deleted`, `revoked`, `expired`, or for a key that still works `active`,
 * or the nearer of `revokes <at>` and `expires <at>` when it is set to stop. Dates may come as
 * JSON strings.
 */
export function keyStatus(key: ApiKeyDTO, now: Date): string {
  const status = keyState({ deleted_at: key.deleted_at, revoked_at: asDate(key.revoked_at) ?? null, expires_at: asDate(key.expires_at) ?? null }, now);
  if (status.state !== "active") return status.state;
  if (!status.ends) return "active";
  return `${status.ends.by === "revoked" ? "revokes" : "expires"} ${status.ends.at.toISOString()}`;
}

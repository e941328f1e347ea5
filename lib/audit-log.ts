// The audit log: every change to a key as an event stored in the same transaction as the change,
// so that neither exists without the other. An event names the action, the key, who acted and
// when, and each field the change moved with its value before and after: never a token or a hash.
import { API_KEY_FIELDS, type ApiKeyField } from "./columns";
import { ApiKeyError } from "./errors";
import { asInstant, isPlainObject } from "./filters";
import { generateAuditEventId } from "./ids";
import type { ApiKeyDTO } from "./types";

export const AUDIT_ACTIONS = ["created", "updated", "revoked", "rolled", "soft_deleted", "restored", "deleted", "links_changed", "imported"] as const;

export type AuditAction = (typeof AUDIT_ACTIONS)[number];

/** One field a change moved; values as JSON has them (instants as ISO strings). */
export interface AuditChange {
  before: unknown;
  after: unknown;
}

export interface AuditEvent {
  /** `aev_` and a ULID: ordering by id is the order events were made in. */
  id: string;
  action: AuditAction;
  key_id: string;
  /** Who made the change: the context's `actor`, else its `actingKey` (the router's calling key); null when neither was given. */
  actor_id: string | null;
  at: Date;
  /** Each changed field by name; `links.<resource_type>` for links, `successor_id` for a roll. */
  changes: Record<string, AuditChange>;
  /** Why the change was made, as its caller said (`auditDetails`): a leak report's `url` and `source`, say; null for nothing said. */
  details: Record<string, string> | null;
}

/**
 * Fields an event never records: the token (a secret key's hash, a publishable key's token),
 * the time of the change itself (the event's `at`), and what authentication moves, not changes.
 */
const UNRECORDED: ReadonlySet<ApiKeyField> = new Set(["token", "updated_at", "last_used_at"]);
const RECORDED = API_KEY_FIELDS.filter((field) => !UNRECORDED.has(field));

/**
 * The fields that differ between a key before and after a change, values as JSON holds them
 * (so that an event reads the same from every store). A key created has no "before" and one
 * deleted no "after": every recorded field it holds is then listed.
 */
export function changesBetween(before: ApiKeyDTO | undefined, after: ApiKeyDTO | undefined): Record<string, AuditChange> {
  const changes: Record<string, AuditChange> = {};
  for (const field of RECORDED) {
    const was = JSON.stringify(before?.[field] ?? null);
    const is = JSON.stringify(after?.[field] ?? null);
    if (was !== is) changes[field] = { before: JSON.parse(was) as unknown, after: JSON.parse(is) as unknown };
  }
  return changes;
}

/** What a change records for one key; the change unit adds the id, the actor and the time. */
export interface AuditEntry {
  action: AuditAction;
  key_id: string;
  changes: Record<string, AuditChange>;
}

export function auditEvent(entry: AuditEntry, actor: string | null, at: Date, details: Record<string, string> | null): AuditEvent {
  return { id: generateAuditEventId(at.getTime()), action: entry.action, key_id: entry.key_id, actor_id: actor, at, changes: entry.changes, details };
}

/** At most this many details, each a string of at most MAX_DETAIL_LENGTH characters. */
const MAX_DETAILS = 10;
const MAX_DETAIL_LENGTH = 2000;

/** The details a context gives its audit events (`auditDetails`), checked; null for none. */
export function detailsOf(ctx: { auditDetails?: unknown } | undefined): Record<string, string> | null {
  const details = ctx?.auditDetails;
  if (details === undefined) return null;
  const entries = isPlainObject(details) ? Object.entries(details) : undefined;
  if (!entries || entries.length > MAX_DETAILS || !entries.every(([, value]) => typeof value === "string" && value.length <= MAX_DETAIL_LENGTH)) {
    throw new ApiKeyError("invalid_data", `Expected 'auditDetails' to be an object of at most ${MAX_DETAILS} strings of at most ${MAX_DETAIL_LENGTH} characters`);
  }
  return Object.fromEntries(entries) as Record<string, string>;
}

/** The longest actor id a context may give: as long as the columns that hold ids. */
export const MAX_ACTOR_LENGTH = 255;

/** A filter of `listAuditEvents`, validated: each list matches any of its values; `at` bounds are inclusive where named so. */
export interface AuditFilter {
  key_id?: string[];
  actor_id?: string[];
  action?: AuditAction[];
  at?: { gt?: Date; gte?: Date; lt?: Date; lte?: Date };
}

export interface AuditQuery {
  where: AuditFilter;
  order: "asc" | "desc";
  skip?: number;
  take?: number;
}

/** Filters as callers give them: a value or a list of values per field; `at` an instant or bounds. */
export interface AuditEventFilters {
  key_id?: string | string[];
  actor_id?: string | string[];
  action?: AuditAction | AuditAction[];
  at?: Date | string | { $gt?: Date | string; $gte?: Date | string; $lt?: Date | string; $lte?: Date | string };
}

export interface AuditEventConfig {
  skip?: number;
  take?: number;
  /** `{ at: "DESC" }` for the newest first; oldest first by default. */
  order?: { at?: "ASC" | "DESC" | "asc" | "desc" };
}

/** The most values one filter field takes. */
const MAX_VALUES = 1000;

function invalid(message: string): never {
  throw new ApiKeyError("invalid_data", `Invalid audit log query: ${message}`);
}

function strings(name: string, raw: unknown): string[] | undefined {
  if (raw === undefined) return undefined;
  const values = Array.isArray(raw) ? Array.from(raw, (value: unknown) => value) : [raw];
  if (values.length > MAX_VALUES) invalid(`'${name}' takes at most ${MAX_VALUES} values`);
  if (!values.every((value) => typeof value === "string" && value.length > 0 && value.length <= MAX_ACTOR_LENGTH)) {
    invalid(`'${name}' must be a non-empty string or an array of them`);
  }
  return values as string[];
}

function instant(name: string, raw: unknown): Date {
  const date = asInstant(raw);
  if (!date) invalid(`'${name}' must be a Date or an ISO 8601 date string`);
  return date;
}

function bounds(raw: unknown): AuditFilter["at"] {
  if (raw === undefined) return undefined;
  if (!isPlainObject(raw)) {
    const at = instant("at", raw);
    return { gte: at, lte: at };
  }
  const result: NonNullable<AuditFilter["at"]> = {};
  for (const [operator, value] of Object.entries(raw)) {
    if (value === undefined) continue;
    if (operator !== "$gt" && operator !== "$gte" && operator !== "$lt" && operator !== "$lte") {
      invalid(`'at' takes $gt, $gte, $lt and $lte, not '${operator}'`);
    }
    result[operator.slice(1) as keyof typeof result] = instant(`at.${operator}`, value);
  }
  return result;
}

function count(name: string, raw: unknown): number | undefined {
  if (raw === undefined) return undefined;
  if (typeof raw !== "number" || !Number.isSafeInteger(raw) || raw < 0) invalid(`'${name}' must be a non-negative integer`);
  return raw;
}

export function normalizeAuditQuery(filters: unknown, config: unknown): AuditQuery {
  if (filters !== undefined && !isPlainObject(filters)) invalid("the filters must be an object");
  if (config !== undefined && !isPlainObject(config)) invalid("the config must be an object");
  const { key_id, actor_id, action, at, ...otherFilters } = filters ?? {};
  const unknownFilter = Object.keys(otherFilters).find((name) => otherFilters[name] !== undefined);
  if (unknownFilter) invalid(`unknown filter '${unknownFilter}' (use key_id, actor_id, action, at)`);
  const { skip, take, order, ...otherConfig } = config ?? {};
  const unknownOption = Object.keys(otherConfig).find((name) => otherConfig[name] !== undefined);
  if (unknownOption) invalid(`unknown option '${unknownOption}' (use skip, take, order)`);

  const actions = strings("action", action);
  const unknownAction = actions?.find((value) => !(AUDIT_ACTIONS as readonly string[]).includes(value));
  if (unknownAction) invalid(`unknown action '${unknownAction}' (one of ${AUDIT_ACTIONS.join(", ")})`);
  let direction: "asc" | "desc" = "asc";
  if (order !== undefined) {
    const given = isPlainObject(order) ? order.at : undefined;
    if (!isPlainObject(order) || Object.keys(order).some((field) => field !== "at") || typeof given !== "string" || !["asc", "desc"].includes(given.toLowerCase())) {
      invalid("'order' must be { at: 'ASC' } or { at: 'DESC' }");
    }
    direction = given.toLowerCase() as "asc" | "desc";
  }
  const where: AuditFilter = {};
  const keyIds = strings("key_id", key_id);
  const actorIds = strings("actor_id", actor_id);
  const atBounds = bounds(at);
  if (keyIds) where.key_id = keyIds;
  if (actorIds) where.actor_id = actorIds;
  if (actions) where.action = actions as AuditAction[];
  if (atBounds) where.at = atBounds;
  return { where, order: direction, skip: count("skip", skip), take: count("take", take) };
}

/** The actor a context names: `actor` when given, else the acting key; null for neither. */
export function actorOf(ctx: { actor?: unknown; actingKey?: unknown } | undefined): string | null {
  const actor = ctx?.actor;
  if (actor === undefined) return typeof ctx?.actingKey === "string" ? ctx.actingKey : null;
  if (typeof actor !== "string" || actor.length === 0 || actor.length > MAX_ACTOR_LENGTH) {
    throw new ApiKeyError("invalid_data", `Expected 'actor' to be a non-empty string of at most ${MAX_ACTOR_LENGTH} characters`);
  }
  return actor;
}

// Validation of service inputs (ids and DTOs). Messages follow the reference's wording, so
// the admin router can show them as they are.
import { ApiKeyError, redactSecrets } from "./errors";
import { MAX_YEAR, asInstant, isPlainObject } from "./filters";
import { type ApiKeyColumnValues, POLICY_FIELDS, type PolicyField } from "./columns";
import {
  CREATE_INPUTS,
  INPUT_FIELDS,
  type InputField,
  LINK_INPUTS,
  MAX_IDS,
  MAX_METADATA_BYTES,
  MAX_OWNER_ID_LENGTH,
  MAX_RATE_LIMITS,
  MAX_RATE_LIMIT_DURATION,
  MAX_RATE_LIMIT_NAME_LENGTH,
  REVOKE_INPUTS,
  UPDATE_INPUTS,
} from "./input-fields";
import { MAX_ALLOWED_IPS, canonicalEntry } from "./ip-allow-list";
import { GRANTED_SCOPE, MAX_SCOPES, MAX_SCOPE_LENGTH, REQUIRED_SCOPE } from "./scopes";
import type { CreateApiKeyDTO, KeyMetadata, QuotaRefill, RateLimitRule, RevokeApiKeyDTO, UpdateApiKeyDTO, UpdateLinksDTO } from "./types";

type Body = Record<string, unknown>;

const MAX_SHOWN = 40;

/** A value as a message quotes it: secret tokens redacted first, so the cut never leaves part of one. */
function shown(value: unknown): string {
  const text = typeof value === "string" ? redactSecrets(value) : Array.isArray(value) ? "array" : value === null ? "null" : typeof value;
  return text.length > MAX_SHOWN ? `${text.slice(0, MAX_SHOWN)}...` : text;
}

function fail(issues: string[]): void {
  if (issues.length > 0) throw new ApiKeyError("invalid_data", issues.join("; "));
}

function objectBody(data: unknown, what: string): Body {
  if (!isPlainObject(data)) throw new ApiKeyError("invalid_data", `Expected an object for ${what}, got: '${shown(data)}'`);
  return data;
}

function unrecognized(body: Body, allowed: readonly string[], issues: string[]): void {
  const extra = Object.keys(body).filter((key) => !allowed.includes(key) && body[key] !== undefined);
  if (extra.length > 0) issues.push(`Unrecognized fields: ${extra.map((key) => `'${shown(key)}'`).join(", ")}`);
}

function typed(body: Body, field: string, type: "string" | "number", issues: string[]): void {
  const value = body[field];
  if (value === undefined) return;
  const ok = type === "number" ? typeof value === "number" && Number.isFinite(value) : typeof value === "string";
  if (!ok) issues.push(`Expected type: '${type}' for field '${field}', got: '${shown(value)}'`);
}

function required(body: Body, field: string, issues: string[]): void {
  if (body[field] === undefined) issues.push(`Field '${field}' is required`);
  else typed(body, field, "string", issues);
}

/** A key needs a name people can recognise it by: an empty title is refused, as the reference refuses it. */
function nonEmptyTitle(body: Body, issues: string[]): void {
  if (body.title === "") issues.push("Field 'title' must not be empty");
}

/** An object holding only the `allowed` fields: the strict body check of the admin routes. */
export function validateBody(data: unknown, allowed: readonly string[]): Body {
  const body = objectBody(data === undefined ? {} : data, "the request body");
  const issues: string[] = [];
  unrecognized(body, allowed, issues);
  fail(issues);
  return body;
}

/**
 * A create input, checked and normalised: `expires_in` turned into `expires_at` (a Date),
 * scopes without repeats, metadata copied. `now` is the clock expiry is judged by.
 */
export function validateCreate(data: unknown, now: Date): CreateApiKeyDTO {
  const body = objectBody(data, "api key data");
  const issues: string[] = [];
  unrecognized(body, CREATE_INPUTS, issues);
  required(body, "title", issues);
  nonEmptyTitle(body, issues);
  if (body.type === undefined) issues.push("Field 'type' is required");
  else if (body.type !== "publishable" && body.type !== "secret") {
    issues.push(`Expected: 'publishable, secret' for field 'type', but got: '${shown(body.type)}'`);
  }
  required(body, "created_by", issues);
  const result: CreateApiKeyDTO = { title: body.title as string, type: body.type as CreateApiKeyDTO["type"], created_by: body.created_by as string };
  if (body.expires_at !== undefined && body.expires_in !== undefined) {
    issues.push("Fields 'expires_at' and 'expires_in' cannot both be given");
  } else if (body.expires_in !== undefined) {
    const at = expiryIn(body.expires_in, now, issues);
    if (at) result.expires_at = at;
  }
  Object.assign(result, policyFields(body, issues, now, false));
  if (result.scopes && result.scopes.length > 0 && body.type === "publishable") issues.push("Field 'scopes' is only allowed on secret keys");
  fail(issues);
  return result;
}

/**
 * An update, checked and normalised as create's fields are; only the fields given are in the
 * result, so an empty update changes nothing but `updated_at`. `expires_at: null` and
 * `owner_id: null` clear them. Whether scopes suit the key's type is checked by the service.
 */
export function validateUpdate(data: unknown, now: Date): UpdateApiKeyDTO {
  const body = objectBody(data, "the update");
  const issues: string[] = [];
  unrecognized(body, UPDATE_INPUTS, issues);
  const result: UpdateApiKeyDTO = {};
  if (body.title !== undefined) {
    typed(body, "title", "string", issues);
    nonEmptyTitle(body, issues);
    result.title = body.title as string;
  }
  Object.assign(result, policyFields(body, issues, now, true));
  fail(issues);
  return result;
}

/**
 * How each policy field is checked: its value as stored, or undefined with an issue. One entry
 * per policy field of lib/columns.ts, so a new field fails type-check until it has a check.
 */
const POLICY_CHECKS: { [F in PolicyField]: (value: unknown, issues: string[], now: Date) => ApiKeyColumnValues[F] | undefined } = {
  expires_at: (value, issues, now) => expiryAt(value, now, issues),
  owner_id: (value, issues) => ownerId(value, issues),
  scopes: (value, issues) => scopeList(value, issues),
  metadata: (value, issues) => metadataObject(value, issues),
  rate_limits: (value, issues) => rateLimits(value, issues),
  remaining: (value, issues) => remainingUses(value, issues),
  refill: (value, issues) => refillRule(value, issues),
  allowed_ips: (value, issues) => allowedIps(value, issues),
};

/** An IP allow-list: addresses and CIDR ranges, bounded, each in its canonical form, without repeats. */
function allowedIps(value: unknown, issues: string[]): string[] | undefined {
  if (!Array.isArray(value) || !Array.from(value as unknown[]).every((entry) => typeof entry === "string")) {
    issues.push(`Expected type: 'array' of strings for field 'allowed_ips', got: '${shown(value)}'`);
    return undefined;
  }
  if (value.length > MAX_ALLOWED_IPS) {
    issues.push(`Field 'allowed_ips' holds ${value.length} entries: at most ${MAX_ALLOWED_IPS} are allowed`);
    return undefined;
  }
  const entries: string[] = [];
  for (const entry of value as string[]) {
    const canonical = entry.length <= 64 ? canonicalEntry(entry) : undefined;
    if (canonical === undefined) {
      issues.push(`Invalid entry in field 'allowed_ips': '${shown(entry)}' (an IPv4 or IPv6 address, or a CIDR range such as 10.0.0.0/8)`);
      return undefined;
    }
    entries.push(canonical);
  }
  return [...new Set(entries)];
}

/**
 * The policy fields of a create or an update, each checked by its entry in POLICY_CHECKS; on an
 * update, `null` clears a field whose input is clearable (lib/input-fields.ts).
 */
function policyFields(body: Body, issues: string[], now: Date, update: boolean): Partial<ApiKeyColumnValues> {
  const fields: Partial<Record<PolicyField, unknown>> = {};
  for (const field of POLICY_FIELDS) {
    const value = body[field];
    if (value === undefined) continue;
    if (value === null && update && (INPUT_FIELDS[field] as InputField).clearable === true) {
      fields[field] = null;
      continue;
    }
    const checked = POLICY_CHECKS[field](value, issues, now);
    if (checked !== undefined) fields[field] = checked;
  }
  return fields as Partial<ApiKeyColumnValues>;
}

/** An instant as a Date, from a Date or an ISO 8601 string; undefined (with an issue) otherwise. */
function instant(value: unknown, field: string, issues: string[]): Date | undefined {
  const date = asInstant(value);
  if (!date) {
    issues.push(`Expected a Date or an ISO 8601 date string for field '${field}', got: '${shown(value)}'`);
    return undefined;
  }
  if (date.getUTCFullYear() > MAX_YEAR) {
    issues.push(`Field '${field}' must be before the year ${MAX_YEAR + 1}`);
    return undefined;
  }
  return date;
}

function expiryAt(value: unknown, now: Date, issues: string[]): Date | undefined {
  const at = instant(value, "expires_at", issues);
  if (at && at.getTime() <= now.getTime()) {
    issues.push(`Field 'expires_at' must be in the future, got: '${at.toISOString()}'`);
    return undefined;
  }
  return at;
}

function expiryIn(value: unknown, now: Date, issues: string[]): Date | undefined {
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    issues.push(`Expected a positive number of seconds for field 'expires_in', got: '${shown(value)}'`);
    return undefined;
  }
  const at = new Date(now.getTime() + Math.ceil(value * 1000));
  if (Number.isNaN(at.getTime()) || at.getUTCFullYear() > MAX_YEAR) {
    issues.push("Field 'expires_in' is too large");
    return undefined;
  }
  return at;
}

/** A key's scopes: valid words, bounded, without repeats (first occurrence kept). */
function scopeList(value: unknown, issues: string[]): string[] | undefined {
  if (!Array.isArray(value) || !Array.from(value as unknown[]).every((scope) => typeof scope === "string")) {
    issues.push(`Expected type: 'array' of strings for field 'scopes', got: '${shown(value)}'`);
    return undefined;
  }
  const scopes = [...new Set(value as string[])];
  if (scopes.length > MAX_SCOPES) {
    issues.push(`Field 'scopes' holds ${scopes.length} scopes: at most ${MAX_SCOPES} are allowed`);
    return undefined;
  }
  const bad = scopes.filter((scope) => scope.length > MAX_SCOPE_LENGTH || !GRANTED_SCOPE.test(scope));
  if (bad.length > 0) {
    issues.push(
      `Invalid scope in field 'scopes': '${shown(bad[0])}' (scopes are words of [a-z0-9_.-] or '*', joined by ':', at most ${MAX_SCOPE_LENGTH} characters)`,
    );
    return undefined;
  }
  return scopes;
}

/** The scopes a verification requires: exact words, no wildcards. */
export function validateRequiredScopes(value: unknown): string[] {
  if (!Array.isArray(value) || !Array.from(value as unknown[]).every((scope) => typeof scope === "string")) {
    throw new ApiKeyError("invalid_data", `Expected type: 'array' of strings for option 'scopes', got: '${shown(value)}'`);
  }
  const bad = (value as string[]).find((scope) => scope.length > MAX_SCOPE_LENGTH || !REQUIRED_SCOPE.test(scope));
  if (bad !== undefined) {
    throw new ApiKeyError("invalid_data", `Invalid required scope '${shown(bad)}': required scopes are exact words of [a-z0-9_.-] joined by ':'`);
  }
  return [...new Set(value as string[])];
}

function ownerId(value: unknown, issues: string[]): string | undefined {
  if (typeof value !== "string" || value.length === 0 || value.length > MAX_OWNER_ID_LENGTH) {
    issues.push(`Expected a non-empty string of at most ${MAX_OWNER_ID_LENGTH} characters for field 'owner_id', got: '${shown(value)}'`);
    return undefined;
  }
  return value;
}

/** Why `value` is not plain JSON data, or undefined when it is. */
function notJson(value: unknown, seen: Set<object>): string | undefined {
  if (value === null || typeof value === "string" || typeof value === "boolean") return undefined;
  if (typeof value === "number") return Number.isFinite(value) ? undefined : `the number ${String(value)} is not JSON`;
  if (typeof value !== "object") return `a ${typeof value} is not JSON`;
  if (seen.has(value)) return "it refers to itself (a cycle)";
  const items = Array.isArray(value) ? Array.from(value as unknown[]) : isPlainObject(value) ? Object.values(value) : undefined;
  if (!items) return "only plain objects and arrays are JSON";
  seen.add(value);
  for (const item of items) {
    const problem = notJson(item, seen);
    if (problem) return problem;
  }
  seen.delete(value);
  return undefined;
}

/** A plain JSON object, at most MAX_METADATA_BYTES serialised; returned as a copy. */
function metadataObject(value: unknown, issues: string[]): KeyMetadata | undefined {
  if (!isPlainObject(value)) {
    issues.push(`Expected type: 'object' for field 'metadata', got: '${shown(value)}'`);
    return undefined;
  }
  const problem = notJson(value, new Set());
  if (problem) {
    issues.push(`Field 'metadata' must be plain JSON data: ${problem}`);
    return undefined;
  }
  const json = JSON.stringify(value);
  const bytes = Buffer.byteLength(json, "utf8");
  if (bytes > MAX_METADATA_BYTES) {
    issues.push(`Field 'metadata' is ${bytes} bytes as JSON: at most ${MAX_METADATA_BYTES} are allowed`);
    return undefined;
  }
  return JSON.parse(json) as KeyMetadata;
}

function isCount(value: unknown, least: number): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= least;
}

/** A key's rate limits: at most MAX_RATE_LIMITS, each named once, in bounds. */
function rateLimits(rules: unknown, issues: string[]): RateLimitRule[] | undefined {
  const ok =
    Array.isArray(rules) &&
    Array.from(rules as unknown[]).every(
      (rule) =>
        isPlainObject(rule) &&
        typeof rule.name === "string" &&
        rule.name.length > 0 &&
        rule.name.length <= MAX_RATE_LIMIT_NAME_LENGTH &&
        isCount(rule.limit, 1) &&
        isCount(rule.duration, 1) &&
        rule.duration <= MAX_RATE_LIMIT_DURATION,
    );
  if (!ok) {
    issues.push(
      `Expected type: 'array' of { name, limit, duration } (a name of at most ${MAX_RATE_LIMIT_NAME_LENGTH} characters, a positive whole number, and a duration of 1 to ${MAX_RATE_LIMIT_DURATION} seconds) for field 'rate_limits', got: '${shown(rules)}'`,
    );
    return undefined;
  }
  if ((rules as unknown[]).length > MAX_RATE_LIMITS) {
    issues.push(`Field 'rate_limits' holds ${(rules as unknown[]).length} limits: at most ${MAX_RATE_LIMITS} are allowed`);
    return undefined;
  }
  const list = (rules as Body[]).map((rule) => ({ name: rule.name as string, limit: rule.limit as number, duration: rule.duration as number }));
  if (new Set(list.map((rule) => rule.name)).size !== list.length) {
    issues.push("Field 'rate_limits' holds two limits of the same name");
    return undefined;
  }
  return list;
}

/** A usage quota: uses left (up to 2^53 - 1), or null for none. */
function remainingUses(value: unknown, issues: string[]): number | null | undefined {
  if (value === null || isCount(value, 0)) return value;
  issues.push(`Expected a non-negative whole number or null for field 'remaining', got: '${shown(value)}'`);
  return undefined;
}

/** How a quota is topped up, or null for never. */
function refillRule(refill: unknown, issues: string[]): QuotaRefill | null | undefined {
  if (refill === null) return null;
  if (isPlainObject(refill) && isCount(refill.amount, 1) && (refill.interval === "day" || refill.interval === "month")) {
    return { amount: refill.amount, interval: refill.interval };
  }
  issues.push(`Expected { amount, interval: 'day' | 'month' } or null for field 'refill', got: '${shown(refill)}'`);
  return undefined;
}

/** Types only: a missing `revoked_by` is reported later, in the reference's order and words. */
export function validateRevoke(data: unknown): RevokeApiKeyDTO {
  const body = objectBody(data, "the revocation");
  const issues: string[] = [];
  unrecognized(body, REVOKE_INPUTS, issues);
  typed(body, "revoked_by", "string", issues);
  typed(body, "revoke_in", "number", issues);
  fail(issues);
  return body as unknown as RevokeApiKeyDTO;
}

function idList(body: Body, field: string, issues: string[]): string[] {
  const value = body[field];
  if (value === undefined) return [];
  // Array.from turns the holes of a sparse array into undefined, which the check refuses.
  if (!Array.isArray(value) || !Array.from(value as unknown[]).every((id) => typeof id === "string" && id.length > 0)) {
    issues.push(`Expected type: 'array' of non-empty strings for field '${field}', got: '${shown(value)}'`);
    return [];
  }
  if (value.length > MAX_IDS) {
    issues.push(`Field '${field}' holds ${value.length} ids: at most ${MAX_IDS} are allowed in one request`);
    return [];
  }
  return [...new Set(value as string[])];
}

export function validateLinks(data: unknown): Required<UpdateLinksDTO> {
  const body = objectBody(data, "the link change");
  const issues: string[] = [];
  unrecognized(body, LINK_INPUTS, issues);
  typed(body, "resource_type", "string", issues);
  const add = idList(body, "add", issues);
  const remove = idList(body, "remove", issues);
  const both = add.filter((id) => remove.includes(id));
  if (both.length > 0) issues.push(`Ids cannot be both added and removed: ${both.map((id) => `'${shown(id)}'`).join(", ")}`);
  fail(issues);
  const resourceType = (body.resource_type as string | undefined) ?? "sales_channel";
  if (resourceType === "") throw new ApiKeyError("invalid_data", "Field 'resource_type' must not be empty");
  return { resource_type: resourceType, add, remove };
}

/** An id argument: a non-empty string. */
export function validateId(id: unknown): string {
  if (typeof id !== "string" || id.length === 0) {
    throw new ApiKeyError("invalid_data", `Expected a non-empty string id, got: '${shown(id)}'`);
  }
  return id;
}

/**
 * The items of a list argument, each validated by `each`: at most MAX_IDS of them, and no
 * holes (map() would skip a hole and leave it in the result).
 */
export function validateList<T>(items: readonly unknown[], what: string, each: (item: unknown) => T): T[] {
  if (items.length > MAX_IDS) {
    throw new ApiKeyError("invalid_data", `At most ${MAX_IDS} ${what} are allowed in one call, got ${items.length}`);
  }
  return Array.from(items, each);
}

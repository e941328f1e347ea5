// Validation of service inputs (ids and DTOs). Messages follow the reference's wording, so
// the admin router can show them as they are.
import { ApiKeyError, redactSecrets } from "./errors";
import { isPlainObject } from "./filters";
import type { CreateApiKeyDTO, RevokeApiKeyDTO, UpdateApiKeyDTO, UpdateLinksDTO } from "./types";

type Body = Record<string, unknown>;

const MAX_SHOWN = 40;

/**
 * Items in one list a caller passes: link ids per `add` or `remove`, keys per create or
 * delete call. Bounds the bind parameters of the statements they become.
 */
export const MAX_IDS = 1000;

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

/** An object holding only the `allowed` fields: the strict body check of the admin routes. */
export function validateBody(data: unknown, allowed: readonly string[]): Body {
  const body = objectBody(data === undefined ? {} : data, "the request body");
  const issues: string[] = [];
  unrecognized(body, allowed, issues);
  fail(issues);
  return body;
}

export function validateCreate(data: unknown): CreateApiKeyDTO {
  const body = objectBody(data, "api key data");
  const issues: string[] = [];
  unrecognized(body, ["title", "type", "created_by"], issues);
  required(body, "title", issues);
  if (body.type === undefined) issues.push("Field 'type' is required");
  else if (body.type !== "publishable" && body.type !== "secret") {
    issues.push(`Expected: 'publishable, secret' for field 'type', but got: '${shown(body.type)}'`);
  }
  required(body, "created_by", issues);
  fail(issues);
  return body as unknown as CreateApiKeyDTO;
}

export function validateUpdate(data: unknown): UpdateApiKeyDTO {
  const body = objectBody(data, "the update");
  const issues: string[] = [];
  unrecognized(body, ["title"], issues);
  required(body, "title", issues);
  fail(issues);
  return body as unknown as UpdateApiKeyDTO;
}

/** Types only: a missing `revoked_by` is reported later, in the reference's order and words. */
export function validateRevoke(data: unknown): RevokeApiKeyDTO {
  const body = objectBody(data, "the revocation");
  const issues: string[] = [];
  unrecognized(body, ["revoked_by", "revoke_in"], issues);
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
  unrecognized(body, ["resource_type", "add", "remove"], issues);
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

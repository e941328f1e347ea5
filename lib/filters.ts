// The reference's filter language, validated and normalised into a small condition tree that
// the store compiles to query-builder calls. Anything malformed is an `invalid_data` error
// here, so a bad filter never becomes a SQL error.
import { ApiKeyError } from "./errors";
import {
  API_KEY_COLUMNS,
  API_KEY_FIELDS,
  type ApiKeyField,
  type ColumnKind,
  FILTERABLE_FIELDS,
  type FilterableField,
  NULLABLE_FIELDS,
  isApiKeyField,
  isFilterableField,
} from "./columns";

export { API_KEY_FIELDS };

type Value = string | Date;

export type Condition =
  | { kind: "and" | "or"; items: Condition[] }
  | { kind: "not"; item: Condition }
  | { kind: "compare"; field: FilterableField; op: "=" | "<>" | ">" | ">=" | "<" | "<="; value: Value }
  | { kind: "in"; field: FilterableField; values: Value[]; negated: boolean }
  | { kind: "null"; field: FilterableField; negated: boolean }
  | { kind: "match"; field: FilterableField; op: "like" | "ilike" | "regex"; pattern: string }
  | { kind: "search"; words: string[] };

export interface NormalizedFindConfig {
  select?: ApiKeyField[];
  skip?: number;
  take?: number;
  order: [FilterableField, "asc" | "desc"][];
  withDeleted: boolean;
}

/** Maps a `token` filter value to what the column stores (secret tokens are stored hashed). */
export type TokenMapper = (token: string) => string;

const ORDERING = ["$gt", "$gte", "$lt", "$lte"] as const;
const PATTERN = ["$like", "$ilike", "$re"] as const;
const EQUALITY = ["$eq", "$ne", "$in", "$nin", "$exists", "$not"] as const;
/** The operators each kind of column takes. JSON and integer columns are not filterable (FILTERABLE_FIELDS never lets them get here). */
export const FILTER_OPERATORS: Record<Exclude<ColumnKind, "json" | "integer">, readonly string[]> = {
  text: [...EQUALITY, ...ORDERING, ...PATTERN],
  date: [...EQUALITY, ...ORDERING],
  // Ordering or pattern matching on stored token hashes would only leak hash prefixes.
  token: EQUALITY,
  type: EQUALITY,
};
const COMPARE_OPS = { $gt: ">", $gte: ">=", $lt: "<", $lte: "<=" } as const;
const MATCH_OPS = { $like: "like", $ilike: "ilike", $re: "regex" } as const;


/** Bounds that keep one filter from turning into an unbounded query. */
const MAX_DEPTH = 8;
/** Values in one list (`$in`, `$nin` or an array), and filters in one `$and` or `$or`. */
const MAX_LIST = 1000;
/**
 * Values in a whole filter, each becoming one bind parameter: every list item, compared
 * value, pattern and null check counts one, every `q` word two (it is matched against two
 * columns). Far under the smallest limit of the supported drivers (SQLite: 32,766 parameters),
 * with room for the rest of the query.
 */
export const MAX_FILTER_VALUES = 5000;
export const ISO_DATE = /^\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}(:?\d{2})?)?)?$/;

/** An instant every input takes: a valid Date, or an ISO 8601 string; a fresh Date, or undefined for anything else. */
export function asInstant(raw: unknown): Date | undefined {
  const date = raw instanceof Date ? new Date(raw.getTime()) : typeof raw === "string" && ISO_DATE.test(raw) ? new Date(raw) : undefined;
  return date && !Number.isNaN(date.getTime()) ? date : undefined;
}
/** The years every supported database stores and compares as given. */
export const MIN_YEAR = 1;
export const MAX_YEAR = 9999;

/** What one normalisation carries along: the token mapper and the values spent so far. */
interface Walk {
  mapToken: TokenMapper;
  values: number;
}


function invalid(path: string, expected: string): never {
  throw new ApiKeyError("invalid_data", `Invalid filter '${path}': ${expected}`);
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value;
}

function toValue(field: FilterableField, path: string, raw: unknown, mapToken: TokenMapper): Value {
  switch (API_KEY_COLUMNS[field].kind) {
    case "text":
      if (typeof raw !== "string") invalid(path, `expected a string, got ${describe(raw)}`);
      return raw;
    case "token":
      if (typeof raw !== "string") invalid(path, `expected a string, got ${describe(raw)}`);
      return mapToken(raw);
    case "type":
      if (raw !== "publishable" && raw !== "secret") invalid(path, "expected 'publishable' or 'secret'");
      return raw;
    case "date": {
      const date = asInstant(raw);
      if (!date) invalid(path, "expected a Date or an ISO 8601 date string");
      const year = date.getUTCFullYear();
      if (year < MIN_YEAR || year > MAX_YEAR) invalid(path, `expected a date in the years ${MIN_YEAR} to ${MAX_YEAR}`);
      return date;
    }
  }
}

/** Counts `count` more values against the filter's budget. */
function spend(walk: Walk, count: number, path: string): void {
  walk.values += count;
  if (walk.values > MAX_FILTER_VALUES) {
    invalid(path, `a filter may hold at most ${MAX_FILTER_VALUES} values in all (list items, compared values, null checks; q words count twice)`);
  }
}

/** A list of at most MAX_LIST items, with no holes: a sparse array is malformed, not shorter. */
function checkList(raw: unknown, path: string, what: string): asserts raw is unknown[] {
  if (!Array.isArray(raw)) invalid(path, `expected an array, got ${describe(raw)}`);
  if (raw.length > MAX_LIST) invalid(path, `at most ${MAX_LIST} ${what} are allowed`);
  for (let i = 0; i < raw.length; i++) {
    if (!Object.hasOwn(raw, i)) invalid(`${path}[${i}]`, "missing: the array has a hole here");
  }
}

function toList(field: FilterableField, path: string, raw: unknown, walk: Walk): Value[] {
  checkList(raw, path, "values");
  spend(walk, raw.length, path);
  const values = raw.map((item, i) => toValue(field, `${path}[${i}]`, item, walk.mapToken));
  const seen = new Set<string>();
  return values.filter((value) => {
    const key = value instanceof Date ? `d${value.getTime()}` : `s${value}`;
    return seen.has(key) ? false : (seen.add(key), true);
  });
}

function operatorCondition(
  field: FilterableField,
  path: string,
  op: string,
  raw: unknown,
  depth: number,
  walk: Walk,
): Condition {
  const at = `${path}.${op}`;
  if (!FILTER_OPERATORS[API_KEY_COLUMNS[field].kind].includes(op)) {
    invalid(at, `operator not supported on '${field}' (use one of ${FILTER_OPERATORS[API_KEY_COLUMNS[field].kind].join(" ")})`);
  }
  // Each operator but $in, $nin and $not holds one value.
  if (op !== "$in" && op !== "$nin" && op !== "$not") spend(walk, 1, at);
  switch (op) {
    case "$eq":
    case "$ne":
      if (raw === null) return { kind: "null", field, negated: op === "$ne" };
      return { kind: "compare", field, op: op === "$eq" ? "=" : "<>", value: toValue(field, at, raw, walk.mapToken) };
    case "$in":
    case "$nin":
      return { kind: "in", field, values: toList(field, at, raw, walk), negated: op === "$nin" };
    case "$exists":
      if (typeof raw !== "boolean") invalid(at, `expected a boolean, got ${describe(raw)}`);
      return { kind: "null", field, negated: raw };
    case "$not":
      return { kind: "not", item: fieldCondition(field, at, raw, depth + 1, walk) };
    case "$gt":
    case "$gte":
    case "$lt":
    case "$lte":
      return { kind: "compare", field, op: COMPARE_OPS[op], value: toValue(field, at, raw, walk.mapToken) };
    case "$like":
    case "$ilike":
    case "$re":
      if (typeof raw !== "string") invalid(at, `expected a string, got ${describe(raw)}`);
      if (op === "$re") assertRegex(at, raw);
      else assertLikePattern(at, raw);
      return { kind: "match", field, op: MATCH_OPS[op], pattern: raw };
    default:
      return invalid(at, "unknown operator");
  }
}

/**
 * In a LIKE pattern `\` escapes the next character, so one left at the end escapes nothing:
 * PostgreSQL refuses such a pattern and MySQL matches a backslash, so every store refuses it here.
 */
function assertLikePattern(path: string, pattern: string): void {
  const trailing = /\\+$/.exec(pattern)?.[0].length ?? 0;
  if (trailing % 2 === 1) invalid(path, "the pattern ends with a lone escape character '\\' (write '\\\\' for a backslash)");
}

function assertRegex(path: string, pattern: string): void {
  try {
    new RegExp(pattern);
  } catch {
    invalid(path, "not a valid regular expression");
  }
}

function fieldCondition(field: FilterableField, path: string, raw: unknown, depth: number, walk: Walk): Condition {
  if (depth > MAX_DEPTH) invalid(path, `nested deeper than ${MAX_DEPTH} levels`);
  if (Array.isArray(raw)) return { kind: "in", field, values: toList(field, path, raw, walk), negated: false };
  if (isPlainObject(raw)) {
    const entries = Object.entries(raw).filter(([, value]) => value !== undefined);
    if (entries.length === 0) invalid(path, "an operator map needs at least one operator");
    const items = entries.map(([op, value]) => operatorCondition(field, path, op, value, depth, walk));
    return items.length === 1 ? items[0]! : { kind: "and", items };
  }
  spend(walk, 1, path);
  if (raw === null) return { kind: "null", field, negated: false };
  return { kind: "compare", field, op: "=", value: toValue(field, path, raw, walk.mapToken) };
}

function filterCondition(filters: unknown, path: string, depth: number, walk: Walk): Condition {
  if (depth > MAX_DEPTH) invalid(path || "$and", `nested deeper than ${MAX_DEPTH} levels`);
  if (!isPlainObject(filters)) invalid(path || "filters", `expected an object, got ${describe(filters)}`);
  const items: Condition[] = [];
  for (const [key, raw] of Object.entries(filters)) {
    if (raw === undefined) continue;
    const at = path ? `${path}.${key}` : key;
    if (key === "$and" || key === "$or") {
      if (!Array.isArray(raw) || raw.length === 0) invalid(at, "expected a non-empty array of filters");
      checkList(raw, at, "filters");
      const nested = raw.map((item, i) => filterCondition(item, `${at}[${i}]`, depth + 1, walk));
      items.push({ kind: key === "$and" ? "and" : "or", items: nested });
    } else if (key === "q") {
      if (typeof raw !== "string") invalid(at, `expected a string, got ${describe(raw)}`);
      const words = raw.split(/\s+/).filter(Boolean);
      spend(walk, 2 * words.length, at);
      if (words.length > 0) items.push({ kind: "search", words });
    } else if (isFilterableField(key)) {
      items.push(fieldCondition(key, at, raw, depth, walk));
    } else {
      invalid(at, `unknown field (filterable: q, ${FILTERABLE_FIELDS.join(", ")}, $and, $or)`);
    }
  }
  return { kind: "and", items };
}

/** Validates a FilterableApiKeyProps value; `undefined` matches every key. */
export function normalizeFilters(filters: unknown, mapToken: TokenMapper): Condition {
  return filters === undefined ? { kind: "and", items: [] } : filterCondition(filters, "", 0, { mapToken, values: 0 });
}

export interface FoldScope {
  /** Soft-deleted keys are out of scope, so `deleted_at` is null on every key considered. */
  liveOnly: boolean;
}

/** A LIKE pattern made of `%` alone matches every string. */
const MATCHES_ANY_TEXT = /^%+$/;

/**
 * The truth of a null check when it is known without looking at a key: a column that never
 * holds null, or `deleted_at` when only live keys are in scope. Undefined when it depends on the key.
 */
function knownNullity(field: FilterableField, scope: FoldScope): boolean | undefined {
  if (!NULLABLE_FIELDS.has(field)) return false;
  return field === "deleted_at" && scope.liveOnly ? true : undefined;
}

/** True when the items hold `f IS NULL` and `f IS NOT NULL` for one field. */
function hasNullPair(items: Condition[]): boolean {
  const seen = new Set<string>();
  for (const item of items) {
    if (item.kind !== "null") continue;
    seen.add(`${item.field}:${item.negated}`);
    if (seen.has(`${item.field}:${!item.negated}`)) return true;
  }
  return false;
}

/**
 * Folds the parts of a condition whose truth is known without looking at a key: `true` when
 * it matches every key in scope, `false` when it matches none, else the condition without
 * its constant parts. An `in` of nothing is false and a `not in` of nothing true; a null
 * check on a column that never holds null is constant, as is a LIKE of `%` alone on one;
 * `and`, `or` and `not` fold constants as Kleene's logic does, so SQL's unknown (a comparison
 * with null) is never mistaken for false. Regular expressions are left as they are.
 */
export function foldCondition(condition: Condition, scope: FoldScope): Condition | boolean {
  switch (condition.kind) {
    case "in":
      return condition.values.length === 0 ? condition.negated : condition;
    case "search":
      return condition.words.length === 0 ? true : condition;
    case "null": {
      const isNull = knownNullity(condition.field, scope);
      return isNull === undefined ? condition : isNull !== condition.negated;
    }
    case "match":
      return condition.op !== "regex" && !NULLABLE_FIELDS.has(condition.field) && MATCHES_ANY_TEXT.test(condition.pattern) ? true : condition;
    case "not": {
      const item = foldCondition(condition.item, scope);
      if (typeof item === "boolean") return !item;
      if (item.kind === "not") return item.item;
      if (item.kind === "null") return { ...item, negated: !item.negated };
      return { kind: "not", item };
    }
    case "and":
    case "or": {
      // `true` decides an `or` and is dropped from an `and`; `false` the other way round.
      const decisive = condition.kind === "or";
      const items: Condition[] = [];
      for (const item of condition.items) {
        const folded = foldCondition(item, scope);
        if (folded === decisive) return decisive;
        if (typeof folded !== "boolean") items.push(folded);
      }
      if (items.length === 0) return !decisive;
      // `f IS NULL OR f IS NOT NULL` holds for every key, `f IS NULL AND f IS NOT NULL` for none.
      if (hasNullPair(items)) return decisive;
      return items.length === 1 ? items[0]! : { kind: condition.kind, items };
    }
    default:
      return condition;
  }
}

function invalidConfig(message: string): never {
  throw new ApiKeyError("invalid_data", `Invalid find config: ${message}`);
}

function optionalCount(name: string, raw: unknown): number | undefined {
  if (raw === undefined) return undefined;
  if (typeof raw !== "number" || !Number.isSafeInteger(raw) || raw < 0) {
    invalidConfig(`'${name}' must be a non-negative integer`);
  }
  return raw;
}

export function normalizeFindConfig(config: unknown): NormalizedFindConfig {
  if (config === undefined) return { order: [["id", "asc"]], withDeleted: false };
  if (!isPlainObject(config)) invalidConfig(`expected an object, got ${describe(config)}`);
  const { select, skip, take, order, withDeleted, ...rest } = config;
  const unknown = Object.keys(rest).filter((key) => rest[key] !== undefined);
  if (unknown.length > 0) invalidConfig(`unknown option '${unknown[0]}' (use select, skip, take, order, withDeleted)`);

  // Array.from turns holes into undefined, which every() then checks (it skips holes).
  const fields = Array.isArray(select) ? Array.from(select, (field: unknown) => field) : undefined;
  if (select !== undefined && (!fields || !fields.every((f) => typeof f === "string" && isApiKeyField(f)))) {
    invalidConfig(`'select' must be an array of fields among ${API_KEY_FIELDS.join(", ")}`);
  }
  if (withDeleted !== undefined && typeof withDeleted !== "boolean") invalidConfig("'withDeleted' must be a boolean");

  const ordering: [FilterableField, "asc" | "desc"][] = [];
  if (order !== undefined) {
    if (!isPlainObject(order)) invalidConfig("'order' must be an object such as { created_at: 'DESC' }");
    for (const [field, direction] of Object.entries(order)) {
      if (!isApiKeyField(field)) invalidConfig(`cannot order by unknown field '${field}'`);
      if (!isFilterableField(field)) invalidConfig(`cannot order by '${field}' (order by one of ${FILTERABLE_FIELDS.join(", ")})`);
      const dir = typeof direction === "string" ? direction.toLowerCase() : undefined;
      if (dir !== "asc" && dir !== "desc") invalidConfig(`order direction for '${field}' must be 'ASC' or 'DESC'`);
      ordering.push([field, dir]);
    }
  }
  // Ties are broken by id so that pages never overlap or skip rows.
  if (!ordering.some(([field]) => field === "id")) ordering.push(["id", "asc"]);

  return {
    select: select as ApiKeyField[] | undefined,
    skip: optionalCount("skip", skip),
    take: optionalCount("take", take),
    order: ordering,
    withDeleted: withDeleted === true,
  };
}

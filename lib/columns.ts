// The columns of `api_key`, described once. The DTO's type, the fields the filter language
// takes and how it reads their values, which fields are dates and which can be null, and the
// columns the store selects all follow from this one table.
import type { ApiKeyType } from "./tokens";

/**
 * How a column's values are read and compared: `text` and `date` by value, `token` only by
 * equality (through the stored hash for secret keys), `type` as the key-type enum.
 */
export type ColumnKind = "text" | "token" | "type" | "date";

export interface ColumnSpec {
  kind: ColumnKind;
  /** Whether the column can hold null. */
  nullable: boolean;
}

export const API_KEY_COLUMNS = {
  id: { kind: "text", nullable: false },
  token: { kind: "token", nullable: false },
  redacted: { kind: "text", nullable: false },
  title: { kind: "text", nullable: false },
  type: { kind: "type", nullable: false },
  last_used_at: { kind: "date", nullable: true },
  created_by: { kind: "text", nullable: false },
  created_at: { kind: "date", nullable: false },
  updated_at: { kind: "date", nullable: false },
  deleted_at: { kind: "date", nullable: true },
  revoked_by: { kind: "text", nullable: true },
  revoked_at: { kind: "date", nullable: true },
} as const satisfies Record<string, ColumnSpec>;

export type ApiKeyField = keyof typeof API_KEY_COLUMNS;

type Spec<F extends ApiKeyField> = (typeof API_KEY_COLUMNS)[F];
type ValueOf<K extends ColumnKind> = K extends "date" ? Date : K extends "type" ? ApiKeyType : string;

/** Each column's value: its kind's type, or null where the column is nullable. */
export type ApiKeyColumnValues = {
  -readonly [F in ApiKeyField]: ValueOf<Spec<F>["kind"]> | (Spec<F>["nullable"] extends true ? null : never);
};

type FilterValueOf<K extends ColumnKind> = K extends "date" ? Date | string : K extends "type" ? ApiKeyType : string;

/** What a filter compares each column with: an ISO string or a Date for dates, null where nullable. */
export type ApiKeyFilterValues = {
  -readonly [F in ApiKeyField]: FilterValueOf<Spec<F>["kind"]> | (Spec<F>["nullable"] extends true ? null : never);
};

/** Every field, in the table's column order. */
export const API_KEY_FIELDS = Object.keys(API_KEY_COLUMNS) as ApiKeyField[];

function fieldsWhere(test: (spec: ColumnSpec) => boolean): ApiKeyField[] {
  return API_KEY_FIELDS.filter((field) => test(API_KEY_COLUMNS[field]));
}

/** Fields holding instants: stores and caches bring these back as `Date`. */
export const DATE_FIELDS = fieldsWhere((spec) => spec.kind === "date");

/** Fields that can hold null; every other field always has a value. */
export const NULLABLE_FIELDS: ReadonlySet<ApiKeyField> = new Set(fieldsWhere((spec) => spec.nullable));

export function isApiKeyField(name: string): name is ApiKeyField {
  return Object.hasOwn(API_KEY_COLUMNS, name);
}

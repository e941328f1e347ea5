// Public data shapes, named and shaped as the reference's DTOs.
import type { ApiKeyType } from "./tokens";

export type { ApiKeyType };

/** An API key as every read returns it. `token` is `""` for secret keys except in create and roll results. */
export interface ApiKeyDTO {
  id: string;
  token: string;
  redacted: string;
  title: string;
  type: ApiKeyType;
  last_used_at: Date | null;
  created_by: string;
  created_at: Date;
  updated_at: Date;
  deleted_at: Date | null;
  revoked_by: string | null;
  revoked_at: Date | null;
}

export type ApiKeyField = keyof ApiKeyDTO;

export interface CreateApiKeyDTO {
  title: string;
  type: ApiKeyType;
  created_by: string;
}

export interface UpdateApiKeyDTO {
  title: string;
}

export interface RevokeApiKeyDTO {
  revoked_by: string;
  /** Seconds from now; zero, negative or absent means now. */
  revoke_in?: number;
}

/** Links between a publishable key and resource ids, such as sales channels. */
export interface UpdateLinksDTO {
  /** Defaults to `"sales_channel"`. */
  resource_type?: string;
  add?: string[];
  remove?: string[];
}

type Scalar = string | Date | null;

/** The operator map of the reference's filter language. */
export interface OperatorMap<T = Scalar> {
  $eq?: T;
  $ne?: T;
  $in?: T[];
  $nin?: T[];
  $gt?: T;
  $gte?: T;
  $lt?: T;
  $lte?: T;
  $like?: string;
  $ilike?: string;
  $re?: string;
  $exists?: boolean;
  $not?: OperatorMap<T> | T | T[];
}

type FieldFilter<T = Scalar> = T | T[] | OperatorMap<T>;

/** The reference's FilterableApiKeyProps, plus the other columns it accepts at run time. */
export interface FilterableApiKeyProps {
  q?: string;
  id?: FieldFilter<string>;
  token?: FieldFilter<string>;
  title?: FieldFilter<string>;
  type?: FieldFilter<ApiKeyType>;
  redacted?: FieldFilter<string>;
  created_by?: FieldFilter<string>;
  revoked_by?: FieldFilter<string | null>;
  revoked_at?: FieldFilter<Date | string | null>;
  created_at?: FieldFilter<Date | string>;
  updated_at?: FieldFilter<Date | string>;
  deleted_at?: FieldFilter<Date | string | null>;
  last_used_at?: FieldFilter<Date | string | null>;
  $and?: FilterableApiKeyProps[];
  $or?: FilterableApiKeyProps[];
}

export interface FindConfig {
  select?: ApiKeyField[];
  skip?: number;
  take?: number;
  order?: Partial<Record<ApiKeyField, "ASC" | "DESC" | "asc" | "desc">>;
  withDeleted?: boolean;
}

/**
 * Runs a call inside the app's own transaction, of whatever kind the store understands (a Knex
 * transaction for the Knex store); our writes then commit or roll back with it.
 */
export interface Context {
  transaction?: unknown;
}

// Public data shapes, named and shaped as the reference's DTOs.
import type { ApiKeyColumnValues, ApiKeyField, ApiKeyFilterValues } from "./columns";
import type { ApiKeyType } from "./tokens";

export type { ApiKeyType };

/**
 * An API key as every read returns it, one field per column (lib/columns.ts). `token` is `""`
 * for secret keys except in create and roll results.
 */
export interface ApiKeyDTO extends ApiKeyColumnValues {}

export type { ApiKeyField };

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

type FieldFilters = { [F in keyof ApiKeyFilterValues]?: FieldFilter<ApiKeyFilterValues[F]> };

/** The reference's FilterableApiKeyProps: every column (lib/columns.ts), plus `q`, `$and` and `$or`. */
export interface FilterableApiKeyProps extends FieldFilters {
  q?: string;
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

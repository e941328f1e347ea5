// Reads a Medusa database's keys for the import (lib/medusa-import.ts): its `api_key` and
// `publishable_api_key_sales_channel` tables, through an app's Knex or a connection string.
import type { Knex } from "knex";
import { ApiKeyError } from "../lib/errors";
import type { MedusaKeyRow, MedusaKeySource, MedusaSalesChannelLink } from "../lib/medusa-import";
import { isKnex, openDatabase } from "./connect";
import { connectionError } from "./connection-errors";
import { translateStoreError } from "./store-errors";

const KEY_COLUMNS = [
  "id", "token", "salt", "redacted", "title", "type", "last_used_at", "created_by",
  "created_at", "updated_at", "revoked_by", "revoked_at", "deleted_at",
] as const;

/** Missing tables or columns: not a Medusa database (or not one of its API key module). */
const NOT_MEDUSA = /does not exist|no such table|doesn't exist|Unknown column|no such column/i;

/** A driver's error as a typed one that says which database could not be read, and why. */
function sourceError(error: unknown, knex: Knex): ApiKeyError {
  if (error instanceof ApiKeyError) return error;
  const unusable = connectionError(error, knex, "The Medusa database");
  if (unusable) return unusable;
  const message = error instanceof Error ? error.message : String(error);
  if (NOT_MEDUSA.test(message)) {
    return new ApiKeyError("invalid_data", `The Medusa database has no API key tables as Medusa creates them (${message})`, { cause: error });
  }
  return translateStoreError(error);
}

/** The import's source on a Medusa database: a Knex instance (left open) or a connection string (closed after). */
export async function openMedusaSource(database: unknown): Promise<MedusaKeySource> {
  if (!isKnex(database) && typeof database !== "string") {
    throw new ApiKeyError("invalid_data", "Expected a Knex instance or a connection string for the Medusa database");
  }
  let opened: { knex: Knex; close: () => Promise<void> };
  try {
    opened = await openDatabase(database);
  } catch (error) {
    if (error instanceof TypeError) throw new ApiKeyError("invalid_data", error.message.replace(/^express-api-keys: /, ""));
    throw error;
  }
  const { knex, close } = opened;
  const read = async <T>(work: () => Promise<T>): Promise<T> => {
    try {
      return await work();
    } catch (error) {
      throw sourceError(error, knex);
    }
  };
  return {
    count: () =>
      read(async () => {
        const row = (await knex("api_key").count({ count: "*" }).first()) as { count: number | string } | undefined;
        return Number(row?.count ?? 0);
      }),
    keys: (afterId, limit) =>
      read(async () => {
        const query = knex("api_key").select(...KEY_COLUMNS).orderBy("id").limit(limit);
        if (afterId !== undefined) query.where("id", ">", afterId);
        return (await query) as MedusaKeyRow[];
      }),
    salesChannels: (ids) =>
      read(
        async () =>
          (await knex("publishable_api_key_sales_channel")
            .select("publishable_key_id", "sales_channel_id")
            .whereIn("publishable_key_id", ids)
            .whereNull("deleted_at")
            .orderBy(["publishable_key_id", "sales_channel_id"])) as MedusaSalesChannelLink[],
      ),
    close,
  };
}

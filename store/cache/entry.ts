// What the cache tiers hold for one token hash: the verified key without secret material, or
// the fact that no key has that token.
import type { ApiKeyDTO } from "../../lib/types";

export type CacheEntry =
  | { found: true; api_key: ApiKeyDTO; sales_channel_ids: string[] }
  | { found: false };

const DATE_FIELDS = ["last_used_at", "created_at", "updated_at", "deleted_at", "revoked_at"] as const;

export function serializeEntry(entry: CacheEntry): string {
  return JSON.stringify(entry);
}

/** Parses what serializeEntry wrote, bringing the DTO's dates back as Date objects. */
export function deserializeEntry(text: string): CacheEntry {
  const entry = JSON.parse(text) as CacheEntry;
  if (entry.found) {
    const key = entry.api_key as unknown as Record<string, unknown>;
    for (const field of DATE_FIELDS) {
      if (typeof key[field] === "string") key[field] = new Date(key[field]);
    }
  }
  return entry;
}

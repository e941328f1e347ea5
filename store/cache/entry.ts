// What the cache tiers hold for one token hash: the verified key without secret material, or
// the fact that no key has that token; and the signed form in which Redis holds it.
import { createHmac, timingSafeEqual } from "node:crypto";
import { API_KEY_FIELDS, DATE_FIELDS, fallbackOf } from "../../lib/columns";
import type { CacheEntry } from "../../lib/key-lookup-cache";

/** How the tiers name a key: the hex SHA-256 (or HMAC) of its token, as lib/tokens.ts hashToken makes it. */
const CACHE_KEY = /^[0-9a-f]{64}$/;

export function isCacheKey(value: unknown): value is string {
  return typeof value === "string" && CACHE_KEY.test(value);
}

export function serializeEntry(entry: CacheEntry): string {
  return JSON.stringify(entry);
}

/**
 * Parses what serializeEntry wrote, bringing the DTO's dates back as Date objects. A field the
 * writer did not know (an instance of an earlier release, during a rolling upgrade) reads as
 * what a stored null reads as, as it would from the database.
 */
export function deserializeEntry(text: string): CacheEntry {
  const entry = JSON.parse(text) as CacheEntry;
  if (entry.found) {
    const key = entry.api_key as unknown as Record<string, unknown>;
    for (const field of DATE_FIELDS) {
      if (typeof key[field] === "string") key[field] = new Date(key[field]);
    }
    for (const field of API_KEY_FIELDS) {
      if (key[field] === undefined) key[field] = fallbackOf(field);
    }
  }
  return entry;
}

/**
 * The signed form: `v1:<written>:<expires>:<mac>:<entry JSON>`, times in epoch milliseconds.
 * The MAC (HMAC-SHA-256, hex) covers the cache key, both instants and the JSON, so an entry
 * cannot be made up, edited, moved to another key or given a longer life without the key.
 */
const SIGNED = /^v1:(\d{1,15}):(\d{1,15}):([0-9a-f]{64}):/;

export interface SignedEntry {
  entry: CacheEntry;
  /** When it was written, by the writer's clock. */
  writtenAt: number;
  /** When it stops being valid: never later than the writer's cache.redisTtl after writtenAt. */
  expiresAt: number;
}

function mac(key: Buffer, cacheKey: string, writtenAt: number, expiresAt: number, json: string): Buffer {
  // Newlines cannot occur in a cache key or a number, and the JSON comes last: the input is unambiguous.
  return createHmac("sha256", key).update(`v1\n${cacheKey}\n${writtenAt}\n${expiresAt}\n${json}`).digest();
}

export function signEntry(key: Buffer, cacheKey: string, signed: SignedEntry): string {
  const json = serializeEntry(signed.entry);
  const tag = mac(key, cacheKey, signed.writtenAt, signed.expiresAt, json).toString("hex");
  return `v1:${signed.writtenAt}:${signed.expiresAt}:${tag}:${json}`;
}

/** The entry, if `text` is one signed with `key` for `cacheKey`; undefined for anything else. */
export function openSignedEntry(key: Buffer, cacheKey: string, text: string): SignedEntry | undefined {
  const match = SIGNED.exec(text);
  if (!match) return undefined;
  const writtenAt = Number(match[1]);
  const expiresAt = Number(match[2]);
  const json = text.slice(match[0].length);
  const expected = mac(key, cacheKey, writtenAt, expiresAt, json);
  if (!timingSafeEqual(expected, Buffer.from(match[3]!, "hex"))) return undefined;
  try {
    return { entry: deserializeEntry(json), writtenAt, expiresAt };
  } catch {
    return undefined; // signed but unreadable: only a writer of another version could do that
  }
}

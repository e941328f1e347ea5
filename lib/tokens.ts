// Token format: generate, parse (format + checksum, no I/O), hash for storage, redact for display.
//
// A token is `pk_` or `sk_`, then 36 random base62 characters (214 bits), then a 6-character
// base62 CRC32 of everything before it. The checksum lets any mistyped or forged-looking
// token be rejected before a cache or database is asked, as GitHub's tokens do.
import { createHmac, hash, randomBytes, timingSafeEqual } from "node:crypto";
import { crc32 } from "node:zlib";

export type ApiKeyType = "publishable" | "secret";

const PREFIX: Record<ApiKeyType, string> = { publishable: "pk_", secret: "sk_" };
const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const RANDOM_LENGTH = 36;
const CHECKSUM_LENGTH = 6;
const TOKEN_PATTERN = /^(pk|sk)_([0-9A-Za-z]{36})([0-9A-Za-z]{6})$/;

/** The length of every token this package issues. */
export const TOKEN_LENGTH = 3 + RANDOM_LENGTH + CHECKSUM_LENGTH;

function randomBase62(length: number): string {
  let out = "";
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      // 248 is the largest multiple of 62 below 256: rejecting the rest keeps every character equally likely.
      if (byte < 248) out += ALPHABET[byte % 62];
      if (out.length === length) break;
    }
  }
  return out;
}

function checksum(text: string): string {
  let value = crc32(text);
  let out = "";
  for (let i = 0; i < CHECKSUM_LENGTH; i++) {
    out = ALPHABET[value % 62] + out;
    value = Math.floor(value / 62);
  }
  return out;
}

export function generateToken(type: ApiKeyType): string {
  const head = PREFIX[type] + randomBase62(RANDOM_LENGTH);
  return head + checksum(head);
}

/** The key type a well-formed token belongs to, or undefined when its format or checksum is wrong. */
export function parseToken(token: unknown): ApiKeyType | undefined {
  if (typeof token !== "string" || token.length !== TOKEN_LENGTH) return undefined;
  const match = TOKEN_PATTERN.exec(token);
  if (!match) return undefined;
  const head = token.slice(0, TOKEN_LENGTH - CHECKSUM_LENGTH);
  if (checksum(head) !== match[3]) return undefined;
  return match[1] === "pk" ? "publishable" : "secret";
}

/** SHA-256 of a token, or HMAC-SHA-256 when a pepper is set, as hex: how caches name a key. */
export function hashToken(token: string, pepper?: string | Buffer): string {
  // The one-shot hash() makes no Hash object: a good part of the cost of hashing a short token.
  return pepper ? createHmac("sha256", pepper).update(token).digest("hex") : hash("sha256", token, "hex");
}

/**
 * The value stored in the `token` column. Publishable tokens are public identifiers and are
 * stored as they are; secret tokens only as their hash, so a leaked table cannot be used to
 * authenticate.
 */
export function storedTokenValue(token: string, type: ApiKeyType, pepper?: string | Buffer): string {
  return type === "publishable" ? token : hashToken(token, pepper);
}

/** Constant-time equality for stored secret values, so comparisons leak no timing. */
export function sameSecret(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

/**
 * The display form, as the reference builds it: the first 6 characters, `***`, the last 3.
 * For our tokens that is the prefix, 3 random characters and 3 checksum characters.
 */
export function redactToken(token: string): string {
  return `${token.slice(0, 6)}***${token.slice(-3)}`;
}

// Token format: generate, parse (format, checksum and tag, no I/O), hash for storage, redact for display.
//
// A token is `pk_` or `sk_`, then (format 2, when the deployment sets `tokenPrefix`) its own
// segment and `_`, then 36 random base62 characters (214 bits), then (format 2) an 8-character
// base62 tag, then a 6-character base62 CRC32 of everything before it:
//
//   format 2 (53 characters, more with a segment): prefix + [segment_] + random + tag + checksum
//   format 1 (45 characters): prefix + random + checksum   (issued before the tag existed)
//   format 3 (67 characters): prefix + 64 lower-case hex   (Medusa's, imported: lib/imported-keys.ts)
//
// The random part's alphabet has no `_`, so a `_` after the prefix can only end a segment. The
// tag and the checksum both cover the segment: a token moved to another segment is neither.
//
// The checksum is public, so that anyone (a secret scanner, say) can tell a token from a typo
// offline, as GitHub's tokens allow; it stops typos, not attackers. The tag is the first 8 base62
// digits of HMAC-SHA-256(tagKey, prefix + random) under a key only the deployment has, so a
// token nobody issued here is refused before a cache or database is asked, however well formed.
import { hash, randomBytes, timingSafeEqual } from "node:crypto";
import { crc32 } from "node:zlib";
import { macsByLatestKey } from "./hmac";

export type ApiKeyType = "publishable" | "secret";

/** 1: no tag (tokens issued before it existed); 2: tagged; 3: Medusa's, imported. Length tells them apart. */
export type TokenFormat = 1 | 2 | 3;

/** The format of every token issued when a tag key is at hand. */
export const CURRENT_TOKEN_FORMAT = 2;

const PREFIX: Record<ApiKeyType, string> = { publishable: "pk_", secret: "sk_" };
const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const RANDOM_LENGTH = 36;
const TAG_LENGTH = 8;
const CHECKSUM_LENGTH = 6;
const TOKEN_PATTERN = /^(pk|sk)_(?:[a-z0-9]{1,16}_)?[0-9A-Za-z]+$/;
/** Medusa's tokens: the prefix and 32 random bytes in hex, with no checksum and no tag. */
const IMPORTED_TOKEN_PATTERN = /^(pk|sk)_[0-9a-f]{64}$/;
/** What a deployment's segment (`tokenPrefix`) may be: 1 to 16 lower-case letters and digits. */
export const TOKEN_SEGMENT = /^[a-z0-9]{1,16}$/;

/** The length of a format-2 (tagged) token. */
export const TOKEN_LENGTH = 3 + RANDOM_LENGTH + TAG_LENGTH + CHECKSUM_LENGTH;

/** The length of a format-1 token, issued before tags. */
export const LEGACY_TOKEN_LENGTH = 3 + RANDOM_LENGTH + CHECKSUM_LENGTH;

/** What follows the prefix and segment in a format-2 token, and in a format-1 token. */
const TAGGED_REST = TOKEN_LENGTH - 3;
const LEGACY_REST = LEGACY_TOKEN_LENGTH - 3;
const IMPORTED_REST = 64;

/**
 * A secret token standing on its own in a text: what a secret scanner is given to find leaked
 * tokens. With a `segment`, exactly the tokens issued under it; without one, tokens of either
 * format with no segment (every deployment without `tokenPrefix` shares that shape, and the
 * receiver asks the store whether a match is one of ours).
 */
export function secretTokenPattern(segment?: string): string {
  return segment === undefined
    ? `\\bsk_(?:[0-9A-Za-z]{${TAGGED_REST}}|[0-9A-Za-z]{${LEGACY_REST}})\\b`
    : `\\bsk_${segment}_[0-9A-Za-z]{${TAGGED_REST}}\\b`;
}

/** How many characters the prefix and segment (`sk_acme_`) take: 3 without a segment. */
function headLength(token: string): number {
  const end = token.indexOf("_", 3);
  return end === -1 ? 3 : end + 1;
}

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

/** Bytes `at` and `at + 1` of a binary (Latin-1) string, big-endian. */
function limb(binary: string, at: number): number {
  return (binary.charCodeAt(at) << 8) | binary.charCodeAt(at + 1);
}

/**
 * `length` base62 digits of the first 8 bytes of a digest given as a binary string (62^8 < 2^64,
 * so every digit carries a full share): the 64-bit number divided by 62 again and again, as
 * long division over four 16-bit limbs, so that every step stays in small integers (a BigInt,
 * or a double's remainder, costs several times as much).
 */
function base62Digits(digest: string, length: number): string {
  const limbs = [limb(digest, 0), limb(digest, 2), limb(digest, 4), limb(digest, 6)];
  let out = "";
  for (let i = 0; i < length; i++) {
    let rest = 0;
    for (let j = 0; j < 4; j++) {
      const current = rest * 65536 + limbs[j]!;
      limbs[j] = (current / 62) | 0;
      rest = current - limbs[j]! * 62;
    }
    out += ALPHABET[rest];
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

/** The deployment's tag key and pepper, each with its pads computed once. */
const tagMac = macsByLatestKey();
const pepperMac = macsByLatestKey();

/** The tag of `prefix + random` under `tagKey`: 8 base62 digits (47 bits) of its HMAC-SHA-256. */
function tag(head: string, tagKey: Buffer): string {
  return base62Digits(tagMac(tagKey)(head, "binary"), TAG_LENGTH);
}

/** A new token: tagged (format 2) under `tagKey`, with `segment` after its prefix when given; format 1 without a tag key. */
export function generateToken(type: ApiKeyType, tagKey?: Buffer, segment?: string): string {
  const head = PREFIX[type] + (tagKey && segment ? `${segment}_` : "") + randomBase62(RANDOM_LENGTH);
  const body = tagKey ? head + tag(head, tagKey) : head;
  return body + checksum(body);
}

/** The format a token's length says it has (after its segment, if any), or undefined for any other length. */
export function tokenFormat(token: string): TokenFormat | undefined {
  const head = headLength(token);
  const rest = token.length - head;
  if (rest === TAGGED_REST) return 2;
  if (head !== 3) return undefined;
  if (rest === LEGACY_REST) return 1;
  return rest === IMPORTED_REST ? 3 : undefined;
}

/**
 * The key type of a well-formed token of any format, or undefined when its prefix, alphabet,
 * length or checksum is wrong. What anyone can check offline: the tag is not looked at, and a
 * Medusa token (format 3) has no checksum to check.
 */
export function parseToken(token: unknown): ApiKeyType | undefined {
  if (typeof token !== "string") return undefined;
  const format = tokenFormat(token);
  if (format === 3) return IMPORTED_TOKEN_PATTERN.test(token) ? (token.startsWith("pk_") ? "publishable" : "secret") : undefined;
  if (format === undefined || !TOKEN_PATTERN.test(token)) return undefined;
  const body = token.slice(0, -CHECKSUM_LENGTH);
  if (checksum(body) !== token.slice(-CHECKSUM_LENGTH)) return undefined;
  return token.startsWith("pk_") ? "publishable" : "secret";
}

/** Whether a format-2 token's tag is the one `tagKey` gives, compared in constant time. */
export function hasValidTag(token: string, tagKey: Buffer): boolean {
  if (tokenFormat(token) !== 2) return false;
  const tagStart = token.length - CHECKSUM_LENGTH - TAG_LENGTH;
  return sameSecret(tag(token.slice(0, tagStart), tagKey), token.slice(tagStart, tagStart + TAG_LENGTH));
}

/** What the deployment accepts, beside well-formed checksums. */
export interface TokenRules {
  /** The key tags are checked with; without one, no format-2 token can be told from a forgery. */
  tagKey: Buffer | undefined;
  /** Whether format-1 tokens may still name a key that authenticates. */
  legacyAccepted: boolean;
  /** Whether Medusa's tokens (format 3) may name a key that authenticates: imported keys remain. */
  importedAccepted: boolean;
  /** Whether imported secret keys await their first use, which checks a token against Medusa's hashes. */
  importedAwaiting: boolean;
}

/**
 * The key type of a token worth looking up, or undefined when it cannot be one of this
 * deployment's keys: malformed, a wrong checksum, a wrong tag, or format 1 once no format-1 key
 * is left. Pure: decided with no I/O, before any cache or store is asked.
 */
export function acceptToken(token: unknown, rules: TokenRules): ApiKeyType | undefined {
  const type = parseToken(token);
  return type !== undefined && meetsRules(token as string, rules) ? type : undefined;
}

/** For a token `parseToken` accepted: whether its tag, or the rule of its untagged format, lets it through. */
export function meetsRules(token: string, rules: TokenRules): boolean {
  const format = tokenFormat(token);
  if (format === 1) return rules.legacyAccepted;
  if (format === 3) return rules.importedAccepted;
  return rules.tagKey !== undefined && hasValidTag(token, rules.tagKey);
}

/** SHA-256 of a token, or HMAC-SHA-256 when a pepper is set, as hex: how caches name a key. */
export function hashToken(token: string, pepper?: string | Buffer): string {
  // The one-shot hash() makes no Hash object: a good part of the cost of hashing a short token.
  return pepper ? pepperMac(pepper)(token, "hex") : hash("sha256", token, "hex");
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

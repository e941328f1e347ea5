// HMAC-SHA-256 (RFC 2104) of short strings, as two one-shot SHA-256 runs over the key's pads
// computed once. node:crypto's createHmac sets up an OpenSSL context on every call, which costs
// most of the ~2 us it takes for a token here; this takes about a third of that and gives the
// same bytes. The verifier signs a token's head to check its tag, and hashes every token with
// the pepper when one is set, so both pay it on every request that reaches them.
import { createHmac, hash } from "node:crypto";

/** SHA-256's block size: keys are padded (or first hashed) to it. */
const BLOCK = 64;
const DIGEST = 32;
/** Longer messages go to createHmac, so that the scratch space stays small. */
const MAX_CHARACTERS = 256;
/** UTF-8 takes at most 3 bytes per UTF-16 code unit. */
const MAX_BYTES = 3 * MAX_CHARACTERS;

/** A message's HMAC under one key, as hex or as a binary (Latin-1) string of the 32 bytes. */
export type KeyedMac = (message: string, encoding: "hex" | "binary") => string;

/** The HMAC-SHA-256 of strings under `key`; a message is read as UTF-8, as createHmac's update reads it. */
export function hmacSha256(key: string | Buffer): KeyedMac {
  // A copy: the pads and the fallback both sign with the key as it was given.
  const bytes = typeof key === "string" ? Buffer.from(key, "utf8") : Buffer.from(key);
  const padded = bytes.length > BLOCK ? hash("sha256", bytes, "buffer") : bytes;
  // inner: key ^ ipad, then the message; outer: key ^ opad, then the inner digest.
  const inner = Buffer.alloc(BLOCK + MAX_BYTES);
  const outer = Buffer.alloc(BLOCK + DIGEST);
  for (let i = 0; i < BLOCK; i++) {
    const byte = padded[i] ?? 0;
    inner[i] = byte ^ 0x36;
    outer[i] = byte ^ 0x5c;
  }
  // A view of the inner block per message length, made once: hash() reads a view whole.
  const views: Buffer[] = [];
  return (message, encoding) => {
    if (message.length > MAX_CHARACTERS) return createHmac("sha256", bytes).update(message).digest(encoding);
    const length = writeMessage(inner, message);
    const view = (views[length] ??= inner.subarray(0, BLOCK + length));
    const innerDigest = hash("sha256", view, "binary");
    for (let i = 0; i < DIGEST; i++) outer[BLOCK + i] = innerDigest.charCodeAt(i);
    return hash("sha256", outer, encoding);
  };
}

/**
 * Writes `message` as UTF-8 after the pad and answers its length in bytes. Tokens are ASCII,
 * which a plain loop copies in less time than Buffer#write takes to be called; anything else
 * goes through Buffer#write.
 */
function writeMessage(inner: Buffer, message: string): number {
  for (let i = 0; i < message.length; i++) {
    const code = message.charCodeAt(i);
    if (code > 0x7f) return inner.write(message, BLOCK, "utf8");
    inner[BLOCK + i] = code;
  }
  return message.length;
}

/**
 * `hmacSha256` of the key it was last asked for, remembered: a caller that signs with one key at
 * a time (a deployment's tag key, its pepper) computes the pads once, not on every message.
 */
export function macsByLatestKey(): (key: string | Buffer) => KeyedMac {
  let latestKey: string | Buffer | undefined;
  let latestMac: KeyedMac | undefined;
  return (key) => {
    if (key !== latestKey || latestMac === undefined) {
      latestMac = hmacSha256(key);
      latestKey = key;
    }
    return latestMac;
  };
}

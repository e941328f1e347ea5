// Ids: a prefix plus a ULID, like the reference's, so that ordering by id is creation order:
// `apk_` for keys, `aev_` for audit events.
import { randomBytes } from "node:crypto";

const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

let lastTime = -1;
let lastRandom: number[] = [];

function encode(digits: number[]): string {
  return digits.map((digit) => CROCKFORD[digit]).join("");
}

function randomDigits(): number[] {
  return [...randomBytes(16)].map((byte) => byte & 31);
}

/** Increments the base32 random part, so ids made in the same millisecond stay ordered. */
function increment(digits: number[]): number[] | undefined {
  const next = [...digits];
  for (let i = next.length - 1; i >= 0; i--) {
    if (next[i]! < 31) {
      next[i]! += 1;
      return next;
    }
    next[i] = 0;
  }
  return undefined;
}

/** A ULID for the instant `now` (epoch ms); increasing even within one millisecond. */
function ulid(now: number): string {
  const time = Math.max(now, lastTime);
  const incremented = time === lastTime ? increment(lastRandom) : undefined;
  lastRandom = incremented ?? randomDigits();
  lastTime = time;
  const timeDigits: number[] = [];
  let rest = time;
  for (let i = 0; i < 10; i++) {
    timeDigits.unshift(rest % 32);
    rest = Math.floor(rest / 32);
  }
  return `${encode(timeDigits)}${encode(lastRandom)}`;
}

export function generateApiKeyId(now: number): string {
  return `apk_${ulid(now)}`;
}

export function generateAuditEventId(now: number): string {
  return `aev_${ulid(now)}`;
}

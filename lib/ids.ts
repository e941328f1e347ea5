// Key ids: `apk_` plus a ULID, like the reference's, so the default `id` order is creation order.
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

export function generateApiKeyId(now: number): string {
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
  return `apk_${encode(timeDigits)}${encode(lastRandom)}`;
}

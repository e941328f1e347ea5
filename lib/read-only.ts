// A read-only copy of a verified key, made once per cached entry and handed to every request
// that key authenticates: deeply frozen, and its dates served fresh on each read (a frozen Date
// can still be changed through setTime), so no caller can change what the next one sees.
import type { ApiKeyDTO } from "./types";

function deepFreeze<T>(value: T): T {
  if (typeof value !== "object" || value === null || Object.isFrozen(value)) return value;
  for (const item of Object.values(value)) deepFreeze(item);
  return Object.freeze(value);
}

/**
 * A deep copy of `dto` that cannot be changed: assignments throw in strict code, and each read
 * of a date field is a new Date, so changing it changes nothing shared. Spreading, JSON and
 * structuredClone see an ordinary DTO.
 */
export function readOnlyKey(dto: ApiKeyDTO): ApiKeyDTO {
  const copy = structuredClone(dto) as unknown as Record<string, unknown>;
  for (const [field, value] of Object.entries(copy)) {
    if (value instanceof Date) {
      const time = value.getTime();
      Object.defineProperty(copy, field, { get: () => new Date(time), enumerable: true, configurable: false });
    } else {
      deepFreeze(value);
    }
  }
  return Object.freeze(copy) as unknown as ApiKeyDTO;
}

/** How to make copies of one read-only key that differ only in `remaining`: its fields in order, each date as its time. */
export type KeyRecipe = readonly (readonly [field: string, value: unknown, time: number | undefined])[];

/** The recipe for copies of `readOnly` (a key from `readOnlyKey`), read once per cached key. */
export function keyRecipe(readOnly: ApiKeyDTO): KeyRecipe {
  return Object.entries(readOnly).map(([field, value]) => (value instanceof Date ? [field, undefined, value.getTime()] : [field, value, undefined]));
}

/**
 * A copy of a read-only key carrying its quota as counted for one use. Its values are the key's
 * own deep-frozen ones and its dates new Date objects of its own, so no caller can change what
 * another sees, as with `readOnlyKey`; made from a recipe, it reads no date getter, which made a
 * copy per use cost microseconds.
 */
export function keyWithRemaining(recipe: KeyRecipe, remaining: number): ApiKeyDTO {
  const copy: Record<string, unknown> = {};
  for (const [field, value, time] of recipe) copy[field] = time === undefined ? value : new Date(time);
  copy.remaining = remaining;
  return Object.freeze(copy) as unknown as ApiKeyDTO;
}

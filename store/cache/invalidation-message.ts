// The messages on the invalidation channel: "*" (drop everything) or a JSON array of cache
// keys. Anyone who can publish to Redis can send anything, so a message is checked before it
// is believed, and anything else is reported as undefined, never thrown.
import { isCacheKey } from "./entry";

/** Most cache keys in one message; a larger change is sent as several messages. */
export const MAX_MESSAGE_KEYS = 1_000;

/** The longest well-formed message: MAX_MESSAGE_KEYS quoted 64-character keys, with brackets and commas. */
const MAX_MESSAGE_LENGTH = 2 + MAX_MESSAGE_KEYS * 67;

/** The messages that carry `cacheKeys`, at most `maxKeys` (a carrier may allow fewer than MAX_MESSAGE_KEYS) each. */
export function invalidationMessages(cacheKeys: string[], maxKeys = MAX_MESSAGE_KEYS): string[] {
  const messages: string[] = [];
  for (let start = 0; start < cacheKeys.length; start += maxKeys) {
    messages.push(JSON.stringify(cacheKeys.slice(start, start + maxKeys)));
  }
  return messages;
}

/** What a message asks for, or undefined when it is not one we send. */
export function parseInvalidation(message: unknown): string[] | "all" | undefined {
  if (message === "*") return "all";
  // The length bound comes first, so that no huge or deeply nested text is ever parsed.
  if (typeof message !== "string" || message.length > MAX_MESSAGE_LENGTH || !message.startsWith("[")) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(message);
  } catch {
    return undefined;
  }
  if (!Array.isArray(parsed) || parsed.length === 0 || !parsed.every(isCacheKey)) return undefined;
  return parsed;
}

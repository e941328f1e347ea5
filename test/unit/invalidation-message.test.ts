import assert from "node:assert/strict";
import { MAX_MESSAGE_KEYS, invalidationMessages, parseInvalidation } from "../../store/cache/invalidation-message";

const key = (i: number) => i.toString(16).padStart(64, "0");

describe("invalidation messages", () => {
  it("round-trips what we send, in messages of at most MAX_MESSAGE_KEYS keys", () => {
    const keys = Array.from({ length: MAX_MESSAGE_KEYS * 2 + 1 }, (_, i) => key(i));
    const messages = invalidationMessages(keys);
    assert.equal(messages.length, 3);
    assert.deepEqual(messages.flatMap((message) => parseInvalidation(message) as string[]), keys);
    assert.equal(parseInvalidation("*"), "all");
  });

  it("reports anything else as undefined, never by throwing", () => {
    const bad: unknown[] = [
      undefined,
      null,
      42,
      Buffer.from("[]"),
      "",
      "not json",
      "null",
      "{}",
      "[]",
      "[1]",
      "[null]",
      '"*"',
      "**",
      JSON.stringify([key(0xabcdef).toUpperCase()]),
      JSON.stringify([key(1).slice(1)]),
      JSON.stringify([key(1), {}]),
      JSON.stringify(Array.from({ length: MAX_MESSAGE_KEYS + 1 }, (_, i) => key(i))),
      `${"[".repeat(30_000)}${"]".repeat(30_000)}`,
      `${"[".repeat(1_000_000)}${"]".repeat(1_000_000)}`,
      `[${JSON.stringify(key(1))}`,
    ];
    for (const message of bad) assert.equal(parseInvalidation(message), undefined, String(message).slice(0, 60));
  });
});

import assert from "node:assert/strict";
import { invalidationMessages, parseInvalidation } from "../../store/cache/invalidation-message";
import { MAX_NOTIFY_KEYS, channelName } from "../../store/cache/pg-notify";

const key = (i: number) => i.toString(16).padStart(64, "0");

describe("the PostgreSQL invalidation channel", () => {
  it("is named after the schema, and hashed where the name would pass PostgreSQL's 63-byte identifier limit", () => {
    assert.equal(channelName("public"), "api_key_invalidate:public");
    const long = channelName("s".repeat(63));
    assert.match(long, /^api_key_invalidate:[0-9a-f]{40}$/);
    assert.ok(Buffer.byteLength(long) <= 63);
    assert.notEqual(channelName("s".repeat(63)), channelName(`${"s".repeat(62)}t`));
  });

  it("carries as many keys per message as fit under NOTIFY's 8,000-byte payload limit", () => {
    const keys = Array.from({ length: MAX_NOTIFY_KEYS * 2 + 1 }, (_, i) => key(i));
    const messages = invalidationMessages(keys, MAX_NOTIFY_KEYS);
    assert.deepEqual(messages.map((message) => (parseInvalidation(message) as string[]).length), [MAX_NOTIFY_KEYS, MAX_NOTIFY_KEYS, 1]);
    assert.ok(messages.every((message) => Buffer.byteLength(message) < 8_000));
  });
});

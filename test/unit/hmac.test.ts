import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import fc from "fast-check";
import { hmacSha256, macsByLatestKey } from "../../lib/hmac";

/** What node:crypto gives for the same key and message: the reference the quick path must match byte for byte. */
const expected = (key: string | Buffer, message: string, encoding: "hex" | "binary") => createHmac("sha256", key).update(message).digest(encoding);

// Keys shorter than, equal to and longer than SHA-256's 64-byte block (a longer key is hashed first).
const bufferKey = fc.uint8Array({ minLength: 0, maxLength: 200 }).map((bytes) => Buffer.from(bytes));
const stringKey = fc.string({ unit: "grapheme", maxLength: 80 });
const encoding = fc.constantFrom("hex" as const, "binary" as const);
// Up to past the 256 characters the quick path takes, so that the fallback is covered too; any
// UTF-16, lone surrogates included, as createHmac reads them.
const message = fc.oneof(fc.string({ unit: "binary", maxLength: 300 }), fc.string({ maxLength: 300 }), fc.string({ unit: "grapheme", maxLength: 120 }));

describe("hmacSha256", () => {
  it("property: gives the bytes createHmac gives, for any key and message", () => {
    fc.assert(
      fc.property(fc.oneof(bufferKey, stringKey), fc.array(fc.tuple(message, encoding), { minLength: 1, maxLength: 5 }), (key, messages) => {
        // One keyed function signing several messages in turn: nothing of one message is left in the next.
        const mac = hmacSha256(key);
        for (const [text, as] of messages) assert.equal(mac(text, as), expected(key, text, as));
      }),
      { numRuns: 2000 },
    );
  });

  it("signs messages of every length up to its limit, shorter after longer", () => {
    const key = Buffer.from("a deployment's key");
    const mac = hmacSha256(key);
    for (let length = 256; length >= 0; length--) {
      const text = "\u00e9".repeat(length);
      assert.equal(mac(text, "hex"), expected(key, text, "hex"), `length ${length}`);
    }
  });

  it("keeps the pads it computed when the caller's key buffer changes later", () => {
    const key = Buffer.from("0123456789abcdef0123456789abcdef");
    const mac = hmacSha256(key);
    const before = expected(key, "sk_head", "hex");
    key.fill(0);
    assert.equal(mac("sk_head", "hex"), before);
  });

  it("macsByLatestKey: a new key gets its own pads, the same key its remembered ones", () => {
    const macs = macsByLatestKey();
    const first = Buffer.from("first key");
    const second = "second key";
    assert.equal(macs(first), macs(first));
    for (const key of [first, second, first, second]) assert.equal(macs(key)("sk_token", "hex"), expected(key, "sk_token", "hex"));
  });
});

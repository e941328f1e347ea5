import assert from "node:assert/strict";
import fc from "fast-check";
import { TOKEN_LENGTH, generateToken, parseToken, redactToken, sameSecret, storedTokenValue } from "../../lib/tokens";

const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const type = fc.constantFrom("publishable" as const, "secret" as const);

describe("tokens", () => {
  it("issues pk_ and sk_ tokens of a fixed length in a copy-safe alphabet", () => {
    const pk = generateToken("publishable");
    const sk = generateToken("secret");
    assert.match(pk, /^pk_[0-9A-Za-z]{42}$/);
    assert.match(sk, /^sk_[0-9A-Za-z]{42}$/);
    assert.equal(pk.length, TOKEN_LENGTH);
  });

  it("carries at least 192 bits of randomness", () => {
    // 36 random base62 characters: 36 * log2(62) bits.
    assert.ok(36 * Math.log2(62) >= 192);
    const tokens = new Set(Array.from({ length: 2000 }, () => generateToken("secret")));
    assert.equal(tokens.size, 2000);
  });

  it("property: every issued token parses as its own type", () => {
    fc.assert(
      fc.property(type, (kind) => parseToken(generateToken(kind)) === kind),
      { numRuns: 2000 },
    );
  });

  it("property: every single-character corruption is rejected", () => {
    fc.assert(
      fc.property(
        type,
        fc.nat(),
        fc.integer({ min: 0, max: 0x10ffff }),
        (kind, rawIndex, codePoint) => {
          const token = generateToken(kind);
          const index = rawIndex % token.length;
          const replacement = String.fromCodePoint(codePoint);
          fc.pre(replacement !== token[index]);
          const corrupted = token.slice(0, index) + replacement + token.slice(index + 1);
          return parseToken(corrupted) === undefined;
        },
      ),
      { numRuns: 5000 },
    );
  });

  it("rejects every same-alphabet substitution at every position of one token", () => {
    const token = generateToken("secret");
    for (let i = 0; i < token.length; i++) {
      for (const char of ALPHABET + "_") {
        if (char === token[i]) continue;
        const corrupted = token.slice(0, i) + char + token.slice(i + 1);
        assert.equal(parseToken(corrupted), undefined, `position ${i} -> ${char}`);
      }
    }
  });

  it("rejects a publishable token relabelled as secret and the reverse", () => {
    const pk = generateToken("publishable");
    const sk = generateToken("secret");
    assert.equal(parseToken(`sk_${pk.slice(3)}`), undefined);
    assert.equal(parseToken(`pk_${sk.slice(3)}`), undefined);
  });

  it("property: random strings and non-strings never parse", () => {
    fc.assert(fc.property(fc.string({ maxLength: 100 }), (text) => parseToken(text) === undefined));
    fc.assert(fc.property(fc.anything(), (value) => typeof value === "string" || parseToken(value) === undefined));
    fc.assert(
      fc.property(type, fc.string({ unit: fc.constantFrom(...ALPHABET), minLength: 42, maxLength: 42 }), (kind, body) => {
        const token = `${kind === "secret" ? "sk" : "pk"}_${body}`;
        // A random well-formed body passes the checksum about once in 2^32 tries.
        return parseToken(token) === undefined;
      }),
      { numRuns: 5000 },
    );
  });

  it("stores secret tokens as a SHA-256 or HMAC hash and publishable tokens as they are", () => {
    const sk = generateToken("secret");
    const plain = storedTokenValue(sk, "secret");
    const peppered = storedTokenValue(sk, "secret", "pepper");
    assert.match(plain, /^[0-9a-f]{64}$/);
    assert.match(peppered, /^[0-9a-f]{64}$/);
    assert.notEqual(plain, peppered);
    assert.equal(storedTokenValue(sk, "secret"), plain);
    const pk = generateToken("publishable");
    assert.equal(storedTokenValue(pk, "publishable", "pepper"), pk);
  });

  it("redacts as the reference does: first 6, ***, last 3", () => {
    const sk = generateToken("secret");
    const redacted = redactToken(sk);
    assert.equal(redacted.length, 12);
    assert.equal(redacted, `${sk.slice(0, 6)}***${sk.slice(-3)}`);
  });

  it("compares secrets by value, whatever their lengths", () => {
    assert.equal(sameSecret("abc", "abc"), true);
    assert.equal(sameSecret("abc", "abd"), false);
    assert.equal(sameSecret("abc", "abcd"), false);
  });
});

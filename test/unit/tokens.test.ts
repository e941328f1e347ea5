import assert from "node:assert/strict";
import fc from "fast-check";
import { createHmac, randomBytes } from "node:crypto";
import { crc32 } from "node:zlib";
import {
  LEGACY_TOKEN_LENGTH,
  TOKEN_LENGTH,
  type TokenRules,
  acceptToken,
  generateToken as generateTagged,
  hasValidTag,
  parseToken,
  redactToken,
  sameSecret,
  storedTokenValue,
  tokenFormat,
} from "../../lib/tokens";

const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const type = fc.constantFrom("publishable" as const, "secret" as const);
const TAG_KEY = randomBytes(32);
/** Tagged (format 2) unless a test asks for format 1. */
const generateToken = (kind: "publishable" | "secret") => generateTagged(kind, TAG_KEY);
const CURRENT: TokenRules = { tagKey: TAG_KEY, legacyAccepted: false, importedAccepted: false, importedAwaiting: false };

/** The public checksum of `body`, computed as anyone can (a forger included). */
function withChecksum(body: string): string {
  let value = crc32(body);
  let out = "";
  for (let i = 0; i < 6; i++) {
    out = ALPHABET[value % 62] + out;
    value = Math.floor(value / 62);
  }
  return body + out;
}

function randomBase62(length: number): string {
  return Array.from(randomBytes(length), (byte) => ALPHABET[byte % 62]).join("");
}

describe("tokens", () => {
  it("issues pk_ and sk_ tokens of a fixed length in a copy-safe alphabet: 53 characters tagged, 45 untagged", () => {
    const pk = generateToken("publishable");
    const sk = generateToken("secret");
    assert.match(pk, /^pk_[0-9A-Za-z]{50}$/);
    assert.match(sk, /^sk_[0-9A-Za-z]{50}$/);
    assert.equal(pk.length, TOKEN_LENGTH);
    assert.equal(TOKEN_LENGTH, 53);
    assert.equal(tokenFormat(sk), 2);
    const legacy = generateTagged("secret");
    assert.match(legacy, /^sk_[0-9A-Za-z]{42}$/);
    assert.equal(legacy.length, LEGACY_TOKEN_LENGTH);
    assert.equal(tokenFormat(legacy), 1);
    assert.equal(parseToken(legacy), "secret", "format 1 still parses: its checksum is checked the same way");
  });

  it("tags a token under its key: the tag is checked apart from the public checksum", () => {
    const sk = generateToken("secret");
    assert.equal(hasValidTag(sk, TAG_KEY), true);
    assert.equal(hasValidTag(sk, randomBytes(32)), false, "another deployment's key");
    assert.equal(acceptToken(sk, CURRENT), "secret");
    assert.equal(acceptToken(sk, { tagKey: randomBytes(32), legacyAccepted: true, importedAccepted: false, importedAwaiting: false }), undefined);
    assert.equal(acceptToken(sk, { tagKey: undefined, legacyAccepted: true, importedAccepted: false, importedAwaiting: false }), undefined, "no key: no tagged token can be told from a forgery");
    const pk = generateToken("publishable");
    assert.equal(acceptToken(pk, CURRENT), "publishable", "publishable tokens carry the tag too");
  });

  it("property: a checksum-valid token with a forged tag is refused (a forger knows the format, not the key)", () => {
    fc.assert(
      fc.property(type, (kind) => {
        const forged = withChecksum(`${kind === "secret" ? "sk" : "pk"}_${randomBase62(44)}`);
        assert.equal(parseToken(forged), kind, "the forgery passes the public checksum");
        return acceptToken(forged, CURRENT) === undefined && acceptToken(forged, { ...CURRENT, legacyAccepted: true, importedAccepted: false, importedAwaiting: false }) === undefined;
      }),
      { numRuns: 2000 },
    );
  });

  it("accepts format-1 tokens only while format-1 keys remain", () => {
    const legacy = generateTagged("secret");
    assert.equal(acceptToken(legacy, { tagKey: TAG_KEY, legacyAccepted: true, importedAccepted: false, importedAwaiting: false }), "secret");
    assert.equal(acceptToken(legacy, { tagKey: TAG_KEY, legacyAccepted: false, importedAccepted: false, importedAwaiting: false }), undefined);
    const forged = withChecksum(`sk_${randomBase62(36)}`);
    assert.equal(acceptToken(forged, { tagKey: TAG_KEY, legacyAccepted: false, importedAccepted: false, importedAwaiting: false }), undefined);
  });

  it("property: flipping any one character of a valid token never lets it through", () => {
    fc.assert(
      fc.property(type, fc.boolean(), fc.nat(), fc.constantFrom(...ALPHABET, "_", "-", " "), (kind, tagged, rawIndex, char) => {
        const token = tagged ? generateToken(kind) : generateTagged(kind);
        const index = rawIndex % token.length;
        fc.pre(char !== token[index]);
        const corrupted = token.slice(0, index) + char + token.slice(index + 1);
        return acceptToken(corrupted, { tagKey: TAG_KEY, legacyAccepted: true, importedAccepted: false, importedAwaiting: false }) === undefined;
      }),
      { numRuns: 5000 },
    );
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

  it("rejects every same-alphabet substitution at every position of one token, in either format", () => {
    for (const token of [generateToken("secret"), generateTagged("secret")]) {
      for (let i = 0; i < token.length; i++) {
        for (const char of ALPHABET + "_") {
          if (char === token[i]) continue;
          const corrupted = token.slice(0, i) + char + token.slice(i + 1);
          assert.equal(parseToken(corrupted), undefined, `position ${i} -> ${char}`);
        }
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
      fc.property(type, fc.oneof(...[42, 50].map((length) => fc.string({ unit: fc.constantFrom(...ALPHABET), minLength: length, maxLength: length }))), (kind, body) => {
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

  it("property: a tag is the first 8 bytes of HMAC-SHA-256(tag key, head) in base62, and a peppered hash its hex", () => {
    // Written out with node:crypto and BigInt, as tokens were tagged when tags were introduced:
    // every token issued since must keep its tag however the tag is computed now.
    const reference = (head: string, tagKey: Buffer) => {
      let value = createHmac("sha256", tagKey).update(head).digest().readBigUInt64BE(0);
      let out = "";
      for (let i = 0; i < 8; i++) {
        out += ALPHABET[Number(value % 62n)];
        value /= 62n;
      }
      return out;
    };
    fc.assert(
      fc.property(type, fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.option(fc.stringMatching(/^[a-z0-9]{1,16}$/), { nil: undefined }), (kind, key, segment) => {
        const tagKey = Buffer.from(key);
        const token = generateTagged(kind, tagKey, segment);
        const tagStart = token.length - 6 - 8;
        assert.equal(token.slice(tagStart, tagStart + 8), reference(token.slice(0, tagStart), tagKey));
        assert.ok(hasValidTag(token, tagKey));
        assert.equal(storedTokenValue(token, "secret", tagKey), createHmac("sha256", tagKey).update(token).digest("hex"));
      }),
      { numRuns: 2000 },
    );
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

describe("tokens with a deployment's segment (tokenPrefix)", () => {
  const segment = fc.stringMatching(/^[a-z0-9]{1,16}$/);

  it("are issued after the prefix, parse as format 2, and carry a valid tag", () => {
    fc.assert(
      fc.property(type, segment, (kind, name) => {
        const token = generateTagged(kind, TAG_KEY, name);
        assert.ok(token.startsWith(`${kind === "secret" ? "sk" : "pk"}_${name}_`), token);
        assert.equal(token.length, TOKEN_LENGTH + name.length + 1);
        assert.equal(parseToken(token), kind);
        assert.equal(tokenFormat(token), 2);
        assert.equal(acceptToken(token, CURRENT), kind);
      }),
    );
  });

  it("are covered by the checksum and the tag: a token moved to another segment is refused", () => {
    fc.assert(
      fc.property(segment, segment, (name, other) => {
        fc.pre(name !== other);
        const token = generateTagged("secret", TAG_KEY, name);
        const moved = `sk_${other}_${token.slice(4 + name.length)}`;
        assert.equal(parseToken(moved), undefined, "the checksum covers the segment");
        const rechecked = withChecksum(moved.slice(0, -6));
        assert.equal(parseToken(rechecked), "secret", "a forger can fix the public checksum");
        assert.equal(acceptToken(rechecked, CURRENT), undefined, "but not the tag");
      }),
    );
  });

  it("refuses a segment that is too long, upper-case, empty, or followed by a format-1 body", () => {
    const body = generateToken("secret").slice(3);
    for (const head of [`sk_${"a".repeat(17)}_`, "sk_ACME_", "sk__", "sk_a_b_"]) {
      assert.equal(parseToken(withChecksum(`${head}${body}`.slice(0, -6))), undefined, head);
    }
    const legacy = generateTagged("secret");
    assert.equal(parseToken(withChecksum(`sk_acme_${legacy.slice(3, -6)}`)), undefined, "format 1 has no segment");
  });
});

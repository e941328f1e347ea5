import assert from "node:assert/strict";
import { generateApiKeyId } from "../../lib/ids";

describe("api key ids", () => {
  it("are apk_ plus a 26-character ULID", () => {
    assert.match(generateApiKeyId(Date.now()), /^apk_[0-9A-HJKMNP-TV-Z]{26}$/);
  });

  it("sort in creation order, also within one millisecond", () => {
    const time = Date.now();
    const ids = Array.from({ length: 500 }, () => generateApiKeyId(time));
    assert.deepEqual([...ids].sort(), ids);
    assert.equal(new Set(ids).size, ids.length);
    const later = generateApiKeyId(time + 1);
    assert.ok(later > ids[ids.length - 1]!);
  });

  it("encode the creation time in the first 10 characters", () => {
    const a = generateApiKeyId(Date.UTC(2020, 0, 1));
    const b = generateApiKeyId(Date.UTC(2030, 0, 1));
    assert.ok(a.slice(4, 14) < b.slice(4, 14));
  });
});

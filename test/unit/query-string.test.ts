import assert from "node:assert/strict";
import { QueryStringError, parseQueryString } from "../../middleware/query-string";

const plain = (value: unknown) => JSON.parse(JSON.stringify(value)) as unknown;

describe("query string parsing", () => {
  it("reads plain values, repeats, brackets and nesting", () => {
    assert.deepEqual(plain(parseQueryString("q=store&limit=5")), { q: "store", limit: "5" });
    assert.deepEqual(plain(parseQueryString("id=a&id=b")), { id: ["a", "b"] });
    assert.deepEqual(plain(parseQueryString("id[]=a&id[]=b")), { id: ["a", "b"] });
    assert.deepEqual(plain(parseQueryString("created_at[$gt]=2024-01-01&created_at[$lt]=2025-01-01")), {
      created_at: { $gt: "2024-01-01", $lt: "2025-01-01" },
    });
    assert.deepEqual(plain(parseQueryString("$or[0][title]=a&$or[1][type]=secret")), { $or: [{ title: "a" }, { type: "secret" }] });
    assert.deepEqual(plain(parseQueryString("revoked_at[$in][]=x")), { revoked_at: { $in: ["x"] } });
    assert.deepEqual(plain(parseQueryString("q=a%20b%26c")), { q: "a b&c" });
    assert.deepEqual(plain(parseQueryString("id[1]=b&id[0]=a")), { id: ["a", "b"] }, "indexes in any order, without gaps");
  });

  const bad = [
    "a[b]=1&a=2",
    "a=1&a[b]=2",
    "[x]=1",
    "a[b=1",
    "a]=1",
    "a[0]=1&a[b]=2",
    "a[999]=1",
    "id[5]=a",
    "id[0]=a&id[2]=b",
    "$or[1][title]=a",
    "$or[0][id][1]=a",
    "a[b][1]=x",
    "a[b][c][d][e][f][g]=1",
    "__proto__[x]=1",
    "a[__proto__]=1",
    Array.from({ length: 201 }, (_, i) => `p${i}=1`).join("&"),
  ];
  for (const search of bad) {
    it(`rejects ${search.slice(0, 40)}`, () => {
      assert.throws(() => parseQueryString(search), QueryStringError);
    });
  }

  it("names the gap in a sparse list", () => {
    assert.throws(() => parseQueryString("$or[0][title]=a&$or[2][title]=b"), {
      message: "query parameter '$or' has no index 1: list indexes must run from 0 without gaps",
    });
    assert.throws(() => parseQueryString("$or[0][id][1]=a"), { message: /^query parameter '\$or\[0\]\[id\]' has no index 0/ });
  });

  it("builds objects without a prototype to poison", () => {
    const parsed = parseQueryString("toString=x&hasOwnProperty[a]=1");
    assert.equal(Object.getPrototypeOf(parsed), null);
    assert.deepEqual(plain(parsed), { toString: "x", hasOwnProperty: { a: "1" } });
  });
});

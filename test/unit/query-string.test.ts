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
  });

  const bad = [
    "a[b]=1&a=2",
    "a=1&a[b]=2",
    "[x]=1",
    "a[b=1",
    "a]=1",
    "a[0]=1&a[b]=2",
    "a[999]=1",
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

  it("builds objects without a prototype to poison", () => {
    const parsed = parseQueryString("toString=x&hasOwnProperty[a]=1");
    assert.equal(Object.getPrototypeOf(parsed), null);
    assert.deepEqual(plain(parsed), { toString: "x", hasOwnProperty: { a: "1" } });
  });
});

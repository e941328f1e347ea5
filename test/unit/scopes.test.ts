import assert from "node:assert/strict";
import { GRANTED_SCOPE, REQUIRED_SCOPE, grants, missingScopes } from "../../lib/scopes";

describe("scopes", () => {
  // [a key's scope, a required scope, granted?]
  const table: [string, string, boolean][] = [
    ["orders:read", "orders:read", true],
    ["orders:read", "orders:write", false],
    ["orders:read", "orders", false],
    ["orders:read", "orders:read:own", false],
    ["orders", "orders:read", false],
    ["orders:*", "orders:read", true],
    ["orders:*", "orders:read:own", true],
    ["orders:*", "orders", false],
    ["orders:*", "products:read", false],
    ["*", "orders", true],
    ["*", "orders:read:own", true],
    ["*:read", "orders:read", true],
    ["*:read", "orders:write", false],
    ["*:read", "orders:read:own", false],
    ["orders:*:own", "orders:read:own", true],
    ["orders:*:own", "orders:read:all", false],
    ["orders:*:own", "orders:read", false],
    ["orders:*:*", "orders:read", false],
    ["orders:*:*", "orders:read:own:x", true],
    ["a.b-c_d:1", "a.b-c_d:1", true],
  ];
  for (const [granted, required, expected] of table) {
    it(`'${granted}' ${expected ? "grants" : "does not grant"} '${required}'`, () => {
      assert.equal(grants(granted, required), expected);
    });
  }

  it("lists the required scopes no key scope grants, once each, in the order asked", () => {
    assert.deepEqual(missingScopes(["orders:*", "products:read"], ["orders:read", "users:read", "products:read", "users:read"]), ["users:read"]);
    assert.deepEqual(missingScopes([], []), []);
    assert.deepEqual(missingScopes([], ["a"]), ["a"]);
  });

  it("takes resource:action words, with '*' segments only on a key's side", () => {
    for (const scope of ["orders", "orders:read", "a.b:c-d:e_f", "*", "orders:*", "*:read"]) assert.ok(GRANTED_SCOPE.test(scope), scope);
    for (const scope of ["", ":", "orders:", ":read", "Orders:read", "orders read", "orders:re*", "**", "orders::read", "orders:read\n"]) {
      assert.ok(!GRANTED_SCOPE.test(scope), JSON.stringify(scope));
    }
    assert.ok(REQUIRED_SCOPE.test("orders:read"));
    assert.ok(!REQUIRED_SCOPE.test("orders:*"));
    assert.ok(!REQUIRED_SCOPE.test("*"));
  });
});

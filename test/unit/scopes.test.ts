import assert from "node:assert/strict";
import * as publicApi from "../../index";
import { GRANTED_SCOPE, REQUIRED_SCOPE, checkedGrants, checkedMissingScopes, grants, grantsOne, isScope, missingScopes } from "../../lib/scopes";

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
      assert.equal(grantsOne(granted, required), expected);
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

describe("scope matching", () => {
  // [the key's scopes, the required scope, granted?]
  const cases: [string[], string, boolean][] = [
    [[], "orders:read", false],
    [["orders:read"], "orders:read", true],
    [["orders:read"], "orders:write", false],
    [["orders:read"], "orders", false],
    [["orders:read"], "orders:read:own", false],
    [["orders"], "orders:read", false],
    [["orders:*"], "orders:read", true],
    [["orders:*"], "orders:read:own", true],
    [["orders:*"], "orders", false],
    [["orders:*"], "customers:read", false],
    [["*"], "orders:read", true],
    [["*"], "orders", true],
    [["*"], "a:b:c:d", true],
    [["*:read"], "orders:read", true],
    [["*:read"], "orders:write", false],
    [["*:read"], "orders:read:own", false],
    [["orders:*:own"], "orders:read:own", true],
    [["orders:*:own"], "orders:read:all", false],
    [["orders:*:own"], "orders:read", false],
    [["orders:read", "customers:*"], "customers:delete", true],
    // A required scope is an exact word: its `*` is only the character.
    [["orders:read"], "orders:*", false],
    [["orders:*"], "orders:*", true],
    [["orders:reads"], "orders:read", false],
    [["order:read"], "orders:read", false],
  ];
  for (const [keyScopes, required, expected] of cases) {
    it(`${JSON.stringify(keyScopes)} ${expected ? "grants" : "does not grant"} ${required}`, () => {
      assert.equal(grants(keyScopes, required), expected);
    });
  }

  it("lists the missing scopes in the order asked", () => {
    assert.deepEqual(missingScopes(["orders:*"], ["customers:read", "orders:read", "audit:read"]), ["customers:read", "audit:read"]);
    assert.deepEqual(missingScopes(["*"], ["a:b", "c"]), []);
  });

  const words: [unknown, boolean, boolean][] = [
    ["orders:read", true, true],
    ["orders.v2:read_all-x", true, true],
    ["orders", true, true],
    ["orders:*", false, true],
    ["*", false, true],
    ["Orders:read", false, false],
    ["orders::read", false, false],
    ["orders:", false, false],
    ["", false, false],
    ["orders read", false, false],
    ["orders:r*", false, false],
    ["a".repeat(101), false, false],
    [42, false, false],
  ];
  for (const [value, exact, withWildcards] of words) {
    it(`${JSON.stringify(value).slice(0, 30)} is ${exact ? "" : "not "}a required scope, ${withWildcards ? "" : "not "}a key scope`, () => {
      assert.equal(isScope(value, false), exact);
      assert.equal(isScope(value, true), withWildcards);
    });
  }
});

describe("the public scope helpers", () => {
  it("are the checked forms", () => {
    assert.equal(publicApi.grants, checkedGrants);
    assert.equal(publicApi.scopeGrants, checkedGrants);
    assert.equal(publicApi.missingScopes, checkedMissingScopes);
  });

  it("answer as the matching rule does for well-formed scopes", () => {
    assert.equal(checkedGrants(["orders:*"], "orders:read"), true);
    assert.equal(checkedGrants([], "orders:read"), false);
    assert.deepEqual(checkedMissingScopes(["orders:*"], ["orders:read", "users:read"]), ["users:read"]);
  });

  it("refuse malformed scopes on either side with invalid_data, instead of a silent no", () => {
    const invalid = { type: "invalid_data", status: 400 };
    assert.throws(() => checkedGrants(["orders::read"], "orders:read"), invalid);
    assert.throws(() => checkedGrants(["orders:read"], "orders::read"), invalid);
    assert.throws(() => checkedGrants(["orders:read"], "orders:*"), invalid, "a required scope is exact");
    assert.throws(() => checkedGrants(["Orders:read"], "orders:read"), invalid);
    assert.throws(() => checkedGrants("orders:read" as never, "orders:read"), invalid);
    assert.throws(() => checkedGrants([, "orders:read"] as never, "orders:read"), invalid);
    assert.throws(() => checkedGrants(["orders:read"], 7 as never), invalid);
    assert.throws(() => checkedMissingScopes(["*"], ["orders::read"]), invalid);
    assert.throws(() => checkedMissingScopes(["orders::read"], []), invalid);
  });
});

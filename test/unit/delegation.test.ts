import assert from "node:assert/strict";
import { heldScopes, loosenedLimits, uncoveredScopes } from "../../lib/delegation";
import type { ApiKeyRecord } from "../../lib/store";

describe("delegation", () => {
  // [what the acting key holds, a scope it would give or that a target holds, covered?]
  const table: [string[], string, boolean][] = [
    [["*"], "*", true],
    [["*"], "orders:*", true],
    [["orders:*"], "orders:read", true],
    [["orders:*"], "orders:*", true],
    [["orders:*"], "orders:*:own", true],
    [["orders:*"], "*", false],
    [["orders:*"], "orders", false],
    [["orders:read"], "orders:*", false],
    [["orders:read", "orders:write"], "orders:*", false],
    [["*:read"], "orders:read", true],
    [["*:read"], "*:read", true],
    [["*:read"], "orders:*", false],
    [["orders:*:own"], "orders:*", false],
    [["api_keys:read"], "api_keys:read:own", false],
  ];
  for (const [held, scope, covered] of table) {
    it(`${JSON.stringify(held)} ${covered ? "covers" : "does not cover"} '${scope}'`, () => {
      assert.deepEqual(uncoveredScopes(held, [scope]), covered ? [] : [scope]);
    });
  }

  it("counts an unrestricted secret key as holding *, and a publishable key as holding nothing", () => {
    assert.deepEqual(heldScopes({ type: "secret", scopes: [] }), ["*"]);
    assert.deepEqual(heldScopes({ type: "secret", scopes: ["a:b"] }), ["a:b"]);
    assert.deepEqual(heldScopes({ type: "publishable", scopes: [] }), []);
  });

  it("names the limits a change would raise or remove, and none that it tightens", () => {
    const key = {
      rate_limits: [{ name: "m", limit: 10, duration: 60 }],
      remaining: 5,
      refill: { amount: 5, interval: "day" },
      expires_at: new Date(1_000_000),
    } as unknown as ApiKeyRecord;
    assert.deepEqual(loosenedLimits(key, { rate_limits: [{ name: "h", limit: 10, duration: 3600 }], remaining: 4, refill: null, expires_at: new Date(999_999) }), []);
    assert.deepEqual(loosenedLimits(key, { rate_limits: [{ name: "m", limit: 10, duration: 59 }] }), ["rate_limits"]);
    assert.deepEqual(loosenedLimits(key, { remaining: 6, refill: { amount: 6, interval: "day" }, expires_at: null }), ["remaining", "refill", "expires_at"]);
    const unlimited = { rate_limits: [], remaining: null, refill: null, expires_at: null } as unknown as ApiKeyRecord;
    assert.deepEqual(loosenedLimits(unlimited, { rate_limits: [], remaining: 3, refill: { amount: 3, interval: "month" }, expires_at: new Date(1) }), []);
  });
});

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { partitionKey, rateLimitHeaders } from "../../middleware/rate-limit-headers";
import type { RateLimitRule, RateLimitState } from "../../middleware/verify-types";

// express-rate-limit's partition key, computed here independently of the module under test.
const pk = `:${Buffer.from(createHash("sha256").update("apk_1").digest("hex").slice(0, 12)).toString("base64")}:`;

const minute: RateLimitRule = { name: "per_minute", limit: 100, duration: 60 };
const day: RateLimitRule = { name: "per_day", limit: 10000, duration: 86400 };

describe("RateLimit headers (draft-8, as express-rate-limit sends them)", () => {
  it("computes the partition key as express-rate-limit does", () => {
    assert.equal(`:${partitionKey("apk_1")}:`, pk);
    assert.equal(pk.length, 18);
  });

  // [title, rules, states, refused, expected headers]
  const cases: [string, RateLimitRule[], RateLimitState | RateLimitState[] | undefined, boolean, Record<string, string>][] = [
    ["no rules and no states: no headers", [], undefined, false, {}],
    [
      "one window, admitted",
      [minute],
      { name: "per_minute", limit: 100, remaining: 42, reset: 17 },
      false,
      { "RateLimit-Policy": `"per_minute"; q=100; w=60; pk=${pk}`, RateLimit: '"per_minute"; r=42; t=17' },
    ],
    [
      "rules but no state reported: the policy alone",
      [minute],
      undefined,
      false,
      { "RateLimit-Policy": `"per_minute"; q=100; w=60; pk=${pk}` },
    ],
    [
      "fractional reset rounds up to whole seconds",
      [minute],
      { name: "per_minute", limit: 100, remaining: 0, reset: 16.2 },
      true,
      { "RateLimit-Policy": `"per_minute"; q=100; w=60; pk=${pk}`, RateLimit: '"per_minute"; r=0; t=17', "Retry-After": "17" },
    ],
    [
      "a reset already past: t=0, but Retry-After at least 1",
      [minute],
      { name: "per_minute", limit: 100, remaining: 0, reset: -3 },
      true,
      { "RateLimit-Policy": `"per_minute"; q=100; w=60; pk=${pk}`, RateLimit: '"per_minute"; r=0; t=0', "Retry-After": "1" },
    ],
    [
      "two windows: one list member each; Retry-After from the spent one",
      [minute, day],
      [
        { name: "per_minute", limit: 100, remaining: 7, reset: 30 },
        { name: "per_day", limit: 10000, remaining: 0, reset: 5000 },
      ],
      true,
      {
        "RateLimit-Policy": `"per_minute"; q=100; w=60; pk=${pk}, "per_day"; q=10000; w=86400; pk=${pk}`,
        RateLimit: '"per_minute"; r=7; t=30, "per_day"; r=0; t=5000',
        "Retry-After": "5000",
      },
    ],
    [
      "a negative remaining shows as 0",
      [minute],
      { name: "per_minute", limit: 100, remaining: -2, reset: 5 },
      false,
      { "RateLimit-Policy": `"per_minute"; q=100; w=60; pk=${pk}`, RateLimit: '"per_minute"; r=0; t=5' },
    ],
    [
      "a window the rules no longer list: its quota without a window",
      [],
      { name: "old", limit: 5, remaining: 1, reset: 2 },
      false,
      { "RateLimit-Policy": `"old"; q=5; pk=${pk}`, RateLimit: '"old"; r=1; t=2' },
    ],
    [
      "names are structured-field strings: quotes and backslashes escaped, non-ASCII replaced",
      [{ name: 'a"b\\c\u00e9\r\n', limit: 1, duration: 1 }],
      undefined,
      false,
      { "RateLimit-Policy": `"a\\"b\\\\c???"; q=1; w=1; pk=${pk}` },
    ],
  ];
  for (const [title, rules, states, refused, expected] of cases) {
    it(title, () => {
      assert.deepEqual(rateLimitHeaders("apk_1", rules, states, refused), expected);
    });
  }
});

import assert from "node:assert/strict";
import { InvalidArgumentError } from "commander";
import { duration, isoDate, keyStatus, metadata, policyFields, rateLimit, refill, remaining, scope } from "../../cli/policy-flags";
import type { ApiKeyDTO } from "../../lib/types";

describe("CLI policy flags", () => {
  // [parser, text, value, or undefined when the text is refused]
  const cases: [string, (text: string) => unknown, string, unknown][] = [
    ["duration", duration, "90", 90],
    ["duration", duration, "15m", 900],
    ["duration", duration, "12h", 43200],
    ["duration", duration, "30d", 2592000],
    ["duration", duration, "0", undefined],
    ["duration", duration, "-5", undefined],
    ["duration", duration, "1.5", undefined],
    ["duration", duration, "10w", undefined],
    ["duration", duration, "", undefined],
    ["isoDate", isoDate, "2027-01-31", "2027-01-31"],
    ["isoDate", isoDate, "2027-01-31T12:00:00Z", "2027-01-31T12:00:00Z"],
    ["isoDate", isoDate, "2027-01-31T12:00:00.250+02:00", "2027-01-31T12:00:00.250+02:00"],
    ["isoDate", isoDate, "2027-13-45", undefined],
    ["isoDate", isoDate, "tomorrow", undefined],
    ["isoDate", isoDate, "1700000000", undefined],
    ["scope", (text) => scope(text), "orders:read", ["orders:read"]],
    ["scope", (text) => scope(text), "orders:*", ["orders:*"]],
    ["scope", (text) => scope(text, ["a"]), "b:c", ["a", "b:c"]],
    ["scope", (text) => scope(text), "Orders:Read", undefined],
    ["scope", (text) => scope(text), "orders::read", undefined],
    ["metadata", metadata, '{"plan":"pro","seats":3}', { plan: "pro", seats: 3 }],
    ["metadata", metadata, "{}", {}],
    ["metadata", metadata, "[1]", undefined],
    ["metadata", metadata, "null", undefined],
    ["metadata", metadata, "{plan:pro}", undefined],
    ["rateLimit", (text) => rateLimit(text), "per_minute:100/60", [{ name: "per_minute", limit: 100, duration: 60 }]],
    ["rateLimit", (text) => rateLimit(text), "daily:10000/1d", [{ name: "daily", limit: 10000, duration: 86400 }]],
    ["rateLimit", (text) => rateLimit(text, [{ name: "a", limit: 1, duration: 1 }]), "b:2/1m", [{ name: "a", limit: 1, duration: 1 }, { name: "b", limit: 2, duration: 60 }]],
    ["rateLimit", (text) => rateLimit(text), "per_minute:0/60", undefined],
    ["rateLimit", (text) => rateLimit(text), "per_minute:100", undefined],
    ["rateLimit", (text) => rateLimit(text), "100/60", undefined],
    ["rateLimit", (text) => rateLimit(text), "a b:1/1", undefined],
    ["remaining", remaining, "0", 0],
    ["remaining", remaining, "1000", 1000],
    ["remaining", remaining, "-1", undefined],
    ["remaining", remaining, "ten", undefined],
    ["refill", refill, "1000/month", { amount: 1000, interval: "month" }],
    ["refill", refill, "5/day", { amount: 5, interval: "day" }],
    ["refill", refill, "0/day", undefined],
    ["refill", refill, "5/week", undefined],
    ["refill", refill, "5", undefined],
  ];
  for (const [name, parse, text, expected] of cases) {
    it(`${name} ${expected === undefined ? "refuses" : "reads"} ${JSON.stringify(text)}`, () => {
      if (expected === undefined) assert.throws(() => parse(text), InvalidArgumentError);
      else assert.deepEqual(parse(text), expected);
    });
  }

  it("turns the flags into the service's fields, leaving out the ones not given", () => {
    const now = new Date("2026-01-01T00:00:00Z");
    assert.deepEqual(policyFields({}, false, now), {});
    assert.deepEqual(
      policyFields(
        { expiresIn: 60, scope: ["a:b"], owner: "org", metadata: { x: 1 }, rateLimit: [{ name: "m", limit: 1, duration: 60 }], remaining: 3, refill: { amount: 3, interval: "day" } },
        false,
        now,
      ),
      { expires_in: 60, scopes: ["a:b"], owner_id: "org", metadata: { x: 1 }, rate_limits: [{ name: "m", limit: 1, duration: 60 }], remaining: 3, refill: { amount: 3, interval: "day" } },
    );
    assert.deepEqual(policyFields({ expiresIn: 60 }, true, now), { expires_at: "2026-01-01T00:01:00.000Z" }, "an update takes expires_at only");
    assert.deepEqual(policyFields({ expiresAt: "2027-01-01" }, true, now), { expires_at: "2027-01-01" });
    assert.deepEqual(policyFields({ clearExpiry: true }, true, now), { expires_at: null });
  });

  const now = new Date("2026-06-01T00:00:00Z");
  const past = new Date("2026-05-01T00:00:00Z");
  const soon = new Date("2026-06-02T00:00:00Z");
  const later = new Date("2026-07-01T00:00:00Z");
  // [revoked_at, expires_at, deleted_at, status]
  const statuses: [Date | null, Date | string | null, Date | null, string][] = [
    [null, null, null, "active"],
    [past, null, null, "revoked"],
    [null, past, null, "expired"],
    [null, past.toISOString(), null, "expired"],
    [past, past, null, "revoked"],
    [soon, null, null, `revokes ${soon.toISOString()}`],
    [null, soon, null, `expires ${soon.toISOString()}`],
    [later, soon, null, `expires ${soon.toISOString()}`],
    [soon, later, null, `revokes ${soon.toISOString()}`],
    [soon, past, null, "expired"],
    [null, null, past, "deleted"],
    [past, past, past, "deleted"],
  ];
  for (const [revoked_at, expires_at, deleted_at, expected] of statuses) {
    it(`shows status ${expected.split(" ")[0]} for revoked_at ${revoked_at?.toISOString() ?? null}, expires_at ${String(expires_at)}, deleted_at ${deleted_at?.toISOString() ?? null}`, () => {
      const key = { revoked_at, expires_at, deleted_at } as unknown as ApiKeyDTO;
      assert.equal(keyStatus(key, now), expected);
    });
  }
});

import assert from "node:assert/strict";
import { normalizeFilters, normalizeFindConfig, isEmptyCondition } from "../../lib/filters";

const identity = (token: string) => token;

function rejects(filters: unknown, message: RegExp): void {
  assert.throws(
    () => normalizeFilters(filters, identity),
    (error: unknown) =>
      (error as { type?: string }).type === "invalid_data" && message.test((error as Error).message),
    `expected ${JSON.stringify(filters)} to be rejected with ${message}`,
  );
}

describe("filter language", () => {
  it("normalises values, arrays and operator maps", () => {
    const condition = normalizeFilters(
      { title: "a", id: ["x", "x", "y"], revoked_at: { $gt: "2024-01-01T00:00:00Z", $exists: true } },
      identity,
    );
    assert.deepEqual(condition, {
      kind: "and",
      items: [
        { kind: "compare", field: "title", op: "=", value: "a" },
        { kind: "in", field: "id", values: ["x", "y"], negated: false },
        {
          kind: "and",
          items: [
            { kind: "compare", field: "revoked_at", op: ">", value: new Date("2024-01-01T00:00:00Z") },
            { kind: "null", field: "revoked_at", negated: true },
          ],
        },
      ],
    });
  });

  it("accepts LIKE patterns whose escapes all escape something", () => {
    for (const pattern of ["a\\\\", "\\%\\_", "a\\\\b\\x", "100%"]) {
      const condition = normalizeFilters({ title: { $like: pattern } }, identity);
      assert.deepEqual(condition.kind === "and" && condition.items[0], { kind: "match", field: "title", op: "like", pattern });
    }
  });

  it("splits q into words and ignores undefined fields", () => {
    assert.deepEqual(normalizeFilters({ q: "  pub  zzz ", title: undefined }, identity), {
      kind: "and",
      items: [{ kind: "search", words: ["pub", "zzz"] }],
    });
  });

  it("maps token values through the token mapper", () => {
    const condition = normalizeFilters({ token: { $in: ["a", "b"] } }, (t) => `h(${t})`);
    assert.deepEqual(condition.kind === "and" && condition.items[0], {
      kind: "in",
      field: "token",
      values: ["h(a)", "h(b)"],
      negated: false,
    });
  });

  it("knows an empty filter when it sees one", () => {
    assert.equal(isEmptyCondition(normalizeFilters({}, identity)), true);
    assert.equal(isEmptyCondition(normalizeFilters({ q: "   " }, identity)), true);
    assert.equal(isEmptyCondition(normalizeFilters({ title: "x" }, identity)), false);
  });

  const malformed: [string, unknown, RegExp][] = [
    ["a string as filters", "title", /expected an object/],
    ["an array as filters", [], /expected an object/],
    ["an unknown field", { salt: "x" }, /'salt': unknown field/],
    ["an unknown operator", { title: { $foo: "x" } }, /'title.\$foo'/],
    ["a number for a text field", { title: 5 }, /expected a string, got number/],
    ["an object inside an array", { id: [{}] }, /'id\[0\]'/],
    ["a non-array $in", { id: { $in: "x" } }, /expected an array/],
    ["an unknown type", { type: "admin" }, /'publishable' or 'secret'/],
    ["a bad date", { revoked_at: { $gt: "yesterday" } }, /ISO 8601/],
    ["an invalid Date", { created_at: new Date("nope") }, /ISO 8601/],
    ["a number as a date", { created_at: { $lt: 5 } }, /ISO 8601/],
    ["a non-boolean $exists", { revoked_at: { $exists: "yes" } }, /boolean/],
    ["$like on a date", { created_at: { $like: "2024%" } }, /operator not supported/],
    ["$gt on the token", { token: { $gt: "a" } }, /operator not supported/],
    ["$like on the token", { token: { $like: "a%" } }, /operator not supported/],
    ["a non-string $like", { title: { $like: 5 } }, /expected a string/],
    ["an invalid regular expression", { title: { $re: "(" } }, /regular expression/],
    ["a $like pattern ending in a lone escape", { title: { $like: "ab\\" } }, /'title.\$like': the pattern ends with a lone escape/],
    ["an $ilike pattern ending in an odd run of escapes", { title: { $ilike: "a\\\\\\" } }, /lone escape/],
    ["an empty operator map", { title: {} }, /at least one operator/],
    ["an empty $or", { $or: [] }, /non-empty array/],
    ["a non-array $and", { $and: { title: "x" } }, /non-empty array/],
    ["a bad nested filter", { $or: [{ title: "x" }, { nope: 1 }] }, /'\$or\[1\]\.nope'/],
    ["a non-string q", { q: 5 }, /'q': expected a string/],
    ["too many values", { id: Array.from({ length: 1001 }, (_, i) => `k${i}`) }, /at most 1000/],
    ["too deep nesting", { $and: [{ $and: [{ $and: [{ $and: [{ $and: [{ $and: [{ $and: [{ $and: [{ $and: [{ title: "x" }] }] }] }] }] }] }] }] }] }, /nested deeper/],
    ["a function", { title: () => "x" }, /expected a string, got function/],
    ["a class instance", { title: new Map() }, /expected a string, got object/],
  ];
  for (const [label, filters, message] of malformed) {
    it(`rejects ${label} as invalid_data`, () => rejects(filters, message));
  }
});

describe("find config", () => {
  it("defaults to id order and breaks ties by id", () => {
    assert.deepEqual(normalizeFindConfig(undefined).order, [["id", "asc"]]);
    assert.deepEqual(normalizeFindConfig({ order: { title: "DESC" } }).order, [
      ["title", "desc"],
      ["id", "asc"],
    ]);
  });

  const bad: [unknown, RegExp][] = [
    [{ take: -1 }, /'take'/],
    [{ skip: 1.5 }, /'skip'/],
    [{ take: "10" }, /'take'/],
    [{ take: Number.MAX_SAFE_INTEGER + 2 }, /'take'/],
    [{ order: { salt: "ASC" } }, /unknown field 'salt'/],
    [{ order: { title: "UP" } }, /'ASC' or 'DESC'/],
    [{ order: "title" }, /'order'/],
    [{ select: ["token", "salt"] }, /'select'/],
    [{ select: "id" }, /'select'/],
    [{ relations: ["sales_channels"] }, /unknown option 'relations'/],
    [{ withDeleted: "yes" }, /'withDeleted'/],
    [7, /expected an object/],
  ];
  for (const [config, message] of bad) {
    it(`rejects ${JSON.stringify(config)}`, () => {
      assert.throws(
        () => normalizeFindConfig(config),
        (error: unknown) => (error as { type?: string }).type === "invalid_data" && message.test((error as Error).message),
      );
    });
  }
});

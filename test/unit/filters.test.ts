import assert from "node:assert/strict";
import { type Condition, MAX_FILTER_VALUES, foldCondition, normalizeFilters, normalizeFindConfig } from "../../lib/filters";

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

  const live = { liveOnly: true };
  const fold = (filters: unknown, scope = live) => foldCondition(normalizeFilters(filters, identity), scope);
  const title: Condition = { kind: "compare", field: "title", op: "=", value: "a" };

  const everything: [string, unknown][] = [
    ["no filter", {}],
    ["blank q", { q: "  " }],
    ["an $or of an empty filter", { $or: [{}] }],
    ["an $and of an $or of an empty filter", { $and: [{ $or: [{}] }] }],
    ["a $nin of nothing", { id: { $nin: [] } }],
    ["a $not of an $in of nothing", { id: { $not: { $in: [] } } }],
    ["a $not of an empty array", { title: { $not: [] } }],
    ["an $or with an empty branch", { $or: [{ title: "a" }, {}] }],
    ["an $or with a $nin of nothing", { $or: [{ title: "a" }, { id: { $nin: [] } }] }],
    ["a column that always has a value exists", { id: { $exists: true } }],
    ["a column that always has a value is not null", { title: { $ne: null } }],
    ["live keys are not deleted", { deleted_at: null }],
    ["null or not null", { $or: [{ revoked_at: null }, { revoked_at: { $exists: true } }] }],
    ["null or not not-null", { $or: [{ revoked_at: null }, { revoked_at: { $not: { $eq: null } } }] }],
    ["a LIKE of % alone", { title: { $like: "%" } }],
    ["an ILIKE of %% alone", { created_by: { $ilike: "%%" } }],
    ["a double negation of everything", { id: { $not: { $not: { $nin: [] } } } }],
  ];
  for (const [label, filters] of everything) {
    it(`folds ${label} to true: it matches every key`, () => assert.equal(fold(filters), true));
  }

  const nothing: [string, unknown][] = [
    ["an $in of nothing", { id: { $in: [] } }],
    ["an empty array", { id: [] }],
    ["a $not of a $nin of nothing", { title: { $not: { $nin: [] } } }],
    ["an $and with an $in of nothing", { title: "a", id: { $in: [] } }],
    ["an $or of nothing that matches", { $or: [{ id: [] }, { type: { $in: [] } }] }],
    ["a null id", { id: null }],
    ["deleted live keys", { deleted_at: { $exists: true } }],
    ["null and not null", { revoked_at: { $exists: true, $eq: null } }],
  ];
  for (const [label, filters] of nothing) {
    it(`folds ${label} to false: it matches no key`, () => assert.equal(fold(filters), false));
  }

  it("keeps what depends on the key, without its constant parts", () => {
    assert.deepEqual(fold({ $or: [{ title: "a" }, { id: [] }] }), title);
    assert.deepEqual(fold({ $and: [{ title: "a" }, { id: { $nin: [] } }] }), title);
    assert.deepEqual(fold({ revoked_at: { $not: { $exists: true } } }), { kind: "null", field: "revoked_at", negated: false });
    // With deleted keys in scope, deleted_at depends on the key.
    assert.deepEqual(fold({ deleted_at: null }, { liveOnly: false }), { kind: "null", field: "deleted_at", negated: false });
    // Comparisons with a nullable column can be unknown, so their negation is not folded.
    assert.deepEqual(fold({ revoked_by: { $not: { $eq: "x" } } }), {
      kind: "not",
      item: { kind: "compare", field: "revoked_by", op: "=", value: "x" },
    });
    // A LIKE of % on a nullable column does not match null.
    assert.notEqual(fold({ revoked_by: { $like: "%" } }), true);
    assert.notEqual(fold({ title: { $re: "" } }), true, "regular expressions are not analysed");
  });

  it("counts every value of the whole filter against one bound", () => {
    const list = (n: number, tag: string) => Array.from({ length: n }, (_, i) => `${tag}${i}`);
    const branches = (n: number, size: number) => ({ $or: Array.from({ length: n }, (_, b) => ({ id: { $in: list(size, `b${b}_`) } })) });
    assert.doesNotThrow(() => normalizeFilters(branches(MAX_FILTER_VALUES / 1000, 1000), identity));
    rejects({ ...branches(MAX_FILTER_VALUES / 1000, 1000), title: "x" }, new RegExp(`at most ${MAX_FILTER_VALUES} values in all`));
    rejects(branches(1000, 1000), new RegExp(`at most ${MAX_FILTER_VALUES} values in all`));
    rejects({ q: "w ".repeat(MAX_FILTER_VALUES / 2 + 1) }, /at most .* values in all/);
    rejects({ $or: Array.from({ length: 1000 }, () => ({ revoked_at: null, revoked_by: null, title: { $ne: "x" }, created_by: { $like: "u%" }, id: "k", type: "secret" })) }, /values in all/);
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
    ["a hole in a list", { id: ["a", , "b"] }, /'id\[1\]': missing: the array has a hole/],
    ["a list of holes", { id: { $nin: new Array(3) } }, /'id.\$nin\[0\]': missing/],
    ["a hole in an $or", { $or: [{ title: "x" }, , { title: "y" }] }, /'\$or\[1\]': missing/],
    ["an $and of holes", { $and: new Array(2) }, /'\$and\[0\]': missing/],
    ["a hole deep inside", { $or: [{ $and: [{ id: { $not: { $in: [, "a"] } } }] }] }, /'\$or\[0\]\.\$and\[0\]\.id\.\$not\.\$in\[0\]': missing/],
    ["a date before year 1", { created_at: new Date("-000016-12-31T23:59:59.999Z") }, /years 1 to 9999/],
    ["year zero as text", { created_at: { $gt: "0000-06-01" } }, /years 1 to 9999/],
    ["a date after year 9999", { revoked_at: { $lt: new Date(8.64e15) } }, /years 1 to 9999/],
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
    [{ select: ["id", , "title"] }, /'select'/],
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

import assert from "node:assert/strict";
import { ApiKeyError, redactError, redactSecrets } from "../../lib/errors";
import { normalizeFilters } from "../../lib/filters";
import { randomBytes } from "node:crypto";
import { generateToken, redactToken } from "../../lib/tokens";
import { validateCreate, validateId, validateLinks } from "../../lib/validate-input";
import { QueryStringError, parseQueryString } from "../../middleware/query-string";

describe("ApiKeyError", () => {
  it("carries type, status and name", () => {
    const error = new ApiKeyError("unavailable", "down", { cause: new Error("ECONNREFUSED") });
    assert.deepEqual([error.type, error.status, error.name], ["unavailable", 503, "ApiKeyError"]);
    assert.ok(error.cause instanceof Error);
    assert.equal(new ApiKeyError("not_found", "x").status, 404);
    assert.equal(new ApiKeyError("invalid_data", "x").status, 400);
  });

  it("never carries a secret token, even one pasted into the wrong field", () => {
    const token = generateToken("secret");
    const errors: unknown[] = [];
    for (const attempt of [
      () => validateCreate({ title: "t", type: token, created_by: "u" }, new Date()),
      () => normalizeFilters({ [token]: 1 }, (t) => t),
      () => normalizeFilters({ created_at: token }, (t) => t),
    ]) {
      try {
        attempt();
      } catch (error) {
        errors.push(error);
      }
    }
    assert.equal(errors.length, 3);
    for (const error of errors) {
      assert.ok(error instanceof ApiKeyError);
      assert.equal(error.message.includes(token.slice(3, 20)), false, error.message);
    }
    assert.match((errors[0] as Error).message, new RegExp(`got: '${token.slice(0, 6)}\\*\\*\\*`));
  });

  it("leaves ids and publishable tokens readable", () => {
    const pk = generateToken("publishable");
    const error = new ApiKeyError("not_found", `apk_01ARZ3NDEKTSV4RRFFQ69G5FAV ask_me ${pk}`);
    assert.equal(error.message, `apk_01ARZ3NDEKTSV4RRFFQ69G5FAV ask_me ${pk}`);
  });
});

describe("redaction of secret tokens in messages", () => {
  const token = generateToken("secret");

  /** True when `text` holds 8 or more consecutive characters of the token's random part, in any case. */
  function leaks(text: string, secret = token): boolean {
    const lower = text.toLowerCase();
    for (let i = 3; i + 8 <= secret.length; i++) {
      if (lower.includes(secret.slice(i, i + 8).toLowerCase())) return true;
    }
    return false;
  }

  const placements: [string, string][] = [
    ["alone", token],
    ["glued to a letter", `x${token}`],
    ["glued to a digit", `0${token}`],
    ["glued to an underscore", `_${token}`],
    ["after token=", `token=${token}`],
    ["after a colon", `Basic:${token}`],
    ["with text glued after it", `${token}abc`],
    ["twice in a row", `${token}${token}`],
    ["in upper case", token.toUpperCase()],
    ["in upper case, glued", `KEY${token.toUpperCase()}`],
    ["cut short", token.slice(0, 20)],
    ["cut to eight characters", token.slice(0, 11)],
    ["in JSON", JSON.stringify({ title: token })],
    ["in a query parameter name", `${token}[a]`],
    ["in brackets", `x[${token}]`],
    ["percent-decoded from a URL", decodeURIComponent(encodeURIComponent(`q${token}`))],
  ];

  for (const [label, placed] of placements) {
    it(`redacts a token ${label}`, () => {
      const error = new ApiKeyError("invalid_data", `Invalid value '${placed}' here`);
      assert.equal(leaks(error.message), false, error.message);
      assert.match(error.message, /sk_/i, "the prefix stays, so the reader knows what was there");
      assert.equal(leaks(redactSecrets(placed)), false);
    });
  }

  it("redacts tokens with a deployment's segment, whole or cut short", () => {
    const token = generateToken("secret", randomBytes(32), "acme");
    assert.equal(redactSecrets(`bad key ${token} here`), `bad key ${redactToken(token)} here`);
    assert.equal(redactSecrets(`cut ${token.slice(0, 20)}`), "cut sk_***");
    assert.ok(!redactSecrets(`x=${token.slice(0, 30)}y`).includes(token.slice(8, 20)));
  });

  it("keeps the display form of a whole token, and leaves short sk_ words alone", () => {
    assert.equal(redactSecrets(`key ${token}.`), `key ${token.slice(0, 6)}***${token.slice(-3)}.`);
    assert.equal(redactSecrets(`x${token}y`), "xsk_***");
    assert.equal(redactSecrets("ask_me disk_usage sk_1234567"), "ask_me disk_usage sk_1234567");
  });

  it("redacts what the query-string parser says about a parameter name", () => {
    for (const search of [`${token}[a][b][c][d][e][f][g]=1`, `x${token}[=1`, `a[0]=1&a[${token}]=2`, `${"a".repeat(30)}${token}[=1`, `id[3]=x&${token}=1`]) {
      assert.throws(
        () => parseQueryString(search),
        (error: unknown) => error instanceof QueryStringError && !leaks(error.message),
        search,
      );
    }
  });

  it("redacts body validation messages before they cut what they quote", () => {
    // The quoted value is cut at 40 characters: a token starting at 30 would leave 10 of its characters.
    const values = [token, `${"a".repeat(30)}${token}`, `${"a".repeat(27)}${token}`, `note=${token}`];
    for (const value of values) {
      for (const attempt of [
        () => validateCreate({ title: "t", type: value, created_by: "u" }, new Date()),
        () => validateCreate({ title: "t", type: "secret", created_by: "u", [value]: 1 }, new Date()),
        () => validateLinks({ add: value }),
        () => validateId(value.length > 0 ? 5 : value),
      ]) {
        assert.throws(attempt, (error: unknown) => error instanceof ApiKeyError && !leaks(error.message), value);
      }
    }
  });

  it("redacts an error's message and stack in place before it is logged", () => {
    const error = new Error(`select * from "api_key" where "title" = '${token}' - relation "api_key" does not exist`);
    assert.equal(redactError(error), error);
    assert.equal(leaks(error.message), false);
    assert.equal(leaks(error.stack ?? ""), false);
    assert.equal(redactError("not an error"), "not an error");
  });
});

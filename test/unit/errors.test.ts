import assert from "node:assert/strict";
import { ApiKeyError } from "../../lib/errors";
import { normalizeFilters } from "../../lib/filters";
import { generateToken } from "../../lib/tokens";
import { validateCreate } from "../../lib/validate-input";

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
      () => validateCreate({ title: "t", type: token, created_by: "u" }),
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

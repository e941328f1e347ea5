// Assertions on typed errors that fail when nothing is thrown.
import assert from "node:assert/strict";
import { ApiKeyError, type ApiKeyErrorType } from "../../lib/errors";

export async function rejectsWith(
  promise: Promise<unknown>,
  type: ApiKeyErrorType,
  message?: string | RegExp,
): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof ApiKeyError, `expected an ApiKeyError, got ${String(error)}`);
    assert.equal(error.type, type, `type of "${error.message}"`);
    assert.equal(error.name, "ApiKeyError");
    if (typeof message === "string") assert.equal(error.message, message);
    else if (message) assert.match(error.message, message);
    return true;
  });
}

// The option checker of the HTTP layer: one table per factory, `undefined` as absent, and
// TypeErrors with a stable `code` that say what to change.
import assert from "node:assert/strict";
import http from "node:http";
import { apiKeyAdminRouter } from "../../middleware/admin-router";
import { apiKeyAuth } from "../../middleware/api-key-auth";

const rejects = (code: string, message: RegExp) => (error: unknown) => {
  assert.ok(error instanceof TypeError, String(error));
  assert.equal((error as TypeError & { code?: string }).code, code);
  assert.match(error.message, /^express-api-keys: /);
  assert.match(error.message, message);
  return true;
};

describe("the HTTP layer's option checker", () => {
  it("names an unknown option and lists the known ones", () => {
    assert.throws(() => apiKeyAuth({ tipe: "secret" } as never), rejects("ERR_API_KEYS_UNKNOWN_OPTION", /unknown option `tipe`; the options are type, required, scopes, service, getToken, onError\./));
    assert.throws(() => apiKeyAdminRouter({ scope: {} } as never), rejects("ERR_API_KEYS_UNKNOWN_OPTION", /unknown option `scope`; the options are service, actor, findMissingSalesChannels, scopes\./));
  });

  it("says how to mount a factory mounted as the middleware itself", () => {
    const req = new http.IncomingMessage(null as never);
    assert.throws(() => apiKeyAuth(req as never), rejects("ERR_API_KEYS_FACTORY_MISUSE", /not app\.use\(apiKeyAuth\)/));
    assert.throws(() => apiKeyAdminRouter(req as never), rejects("ERR_API_KEYS_FACTORY_MISUSE", /not app\.use\(apiKeyAdminRouter\)/));
  });

  it("refuses what is not an object, and values an option does not take", () => {
    assert.throws(() => apiKeyAuth("secret" as never), rejects("ERR_API_KEYS_OPTIONS_TYPE", /`apiKeyAuth\(options\)` takes an object/));
    assert.throws(() => apiKeyAuth({ required: "no" } as never), rejects("ERR_API_KEYS_INVALID_OPTION", /`required` must be a boolean/));
    assert.throws(() => apiKeyAuth({ type: "publishable", scopes: ["a:b"] }), rejects("ERR_API_KEYS_INVALID_OPTION", /secret keys only/));
    assert.throws(() => apiKeyAdminRouter({ actor: "me" } as never), rejects("ERR_API_KEYS_INVALID_OPTION", /`actor` must be a function/));
    assert.throws(() => apiKeyAdminRouter({ scopes: { read: "api_keys:read" } } as never), rejects("ERR_API_KEYS_INVALID_OPTION", /`scopes.read` must be an array/));
  });

  it("takes undefined, {}, Object.create(null) and undefined values alike", () => {
    for (const options of [undefined, {}, Object.create(null) as object, { type: undefined, scopes: undefined }]) {
      assert.equal(typeof apiKeyAuth(options as never), "function");
      assert.equal(typeof apiKeyAdminRouter(options as never), "function");
    }
  });
});

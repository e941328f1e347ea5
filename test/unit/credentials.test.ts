import assert from "node:assert/strict";
import { MESSAGES, readPublishableCredential, readSecretCredential } from "../../middleware/credentials";
import { apiKeyAuth } from "../../middleware/api-key-auth";
import { generateToken } from "../../lib/tokens";

const sk = generateToken("secret");
const b64 = (text: string) => Buffer.from(text).toString("base64");

describe("reading credentials", () => {
  const secretCases: [string | string[] | undefined, ReturnType<typeof readSecretCredential>][] = [
    [undefined, { kind: "missing" }],
    ["", { kind: "missing" }],
    [`Basic ${sk}`, { kind: "token", token: sk }],
    [`bAsIc ${sk}:`, { kind: "token", token: sk }],
    [`Basic ${b64(`${sk}:`)}`, { kind: "token", token: sk }],
    [`Basic ${b64(sk)}`, { kind: "token", token: sk }],
    [`Basic ${b64("alice:wonderland")}`, { kind: "missing" }],
    // Without its padding, a length no multiple of 4: read as with it.
    [`Basic ${b64(`${sk}:`).replace(/=+$/, "")}`, { kind: "token", token: sk }],
    [`Basic ${b64(`${sk}:\u00e9`)}`, { kind: "invalid", message: MESSAGES.secretWithPassword }],
    [`Basic ${b64("\u00e9lise:x")}`, { kind: "missing" }],
    ["Bearer eyJ.x.y", { kind: "missing" }],
    [`Bearer ${sk}`, { kind: "invalid", message: MESSAGES.bearerHint }],
    [`Basic ${sk}:pw`, { kind: "invalid", message: MESSAGES.secretWithPassword }],
    ["Basic", { kind: "invalid", message: MESSAGES.secretMalformed }],
    ["Basic ***", { kind: "invalid", message: MESSAGES.secretMalformed }],
    [[`Basic ${sk}`, `Basic ${sk}`], { kind: "invalid", message: MESSAGES.secretMalformed }],
    [`Basic ${"a".repeat(2000)}`, { kind: "invalid", message: MESSAGES.secretMalformed }],
  ];
  for (const [header, expected] of secretCases) {
    it(`reads Authorization ${JSON.stringify(header)?.slice(0, 40)}`, () => {
      assert.deepEqual(readSecretCredential(header), expected);
    });
  }

  it("reads x-publishable-api-key", () => {
    assert.deepEqual(readPublishableCredential(undefined), { kind: "missing" });
    assert.deepEqual(readPublishableCredential(""), { kind: "missing" });
    assert.deepEqual(readPublishableCredential("pk_x"), { kind: "token", token: "pk_x" });
    assert.deepEqual(readPublishableCredential(["a", "b"]), { kind: "invalid", message: MESSAGES.publishableInvalid });
  });
});

describe("apiKeyAuth options", () => {
  it("explains the fix when the factory itself is mounted", () => {
    const req = { headers: {}, method: "GET" };
    assert.throws(() => apiKeyAuth(req as never), /write app\.use\(apiKeyAuth\(\{ type: "secret" \}\)\), not app\.use\(apiKeyAuth\)/);
  });

  it("rejects unknown and malformed options at construction", () => {
    const cases: [unknown, RegExp][] = [
      [{ requried: false }, /unknown option `requried`/],
      [{ type: "admin" }, /`type`/],
      [{ required: "no" }, /`required`/],
      [{ service: {} }, /`service`/],
      [{ getToken: "header" }, /`getToken`/],
      [{ onError: 5 }, /`onError`/],
      ["secret", /takes an object/],
    ];
    for (const [options, message] of cases) {
      assert.throws(
        () => apiKeyAuth(options as never),
        (error: unknown) => error instanceof TypeError && error.message.startsWith("express-api-keys: ") && message.test(error.message),
      );
    }
  });

  it("returns a named middleware for undefined, {} and a null-prototype object alike", () => {
    for (const options of [undefined, {}, Object.create(null) as object]) {
      const middleware = apiKeyAuth(options);
      assert.equal(middleware.name, "apiKeyAuthMiddleware");
      assert.equal(middleware.length, 3);
    }
  });
});

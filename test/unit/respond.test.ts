import assert from "node:assert/strict";
import http from "node:http";
import request from "supertest";
import { ApiKeyError } from "../../lib/errors";
import { respondWithError, writeError } from "../../middleware/http/respond";

/** A bare server that answers every request with `error`, as the middleware's default onError does. */
function answering(error: ApiKeyError, noStore = false): http.Server {
  return http.createServer((req, res) => (noStore ? writeError(res, error, { noStore }) : respondWithError(error, req, res)));
}

describe("error answers", () => {
  it("answers one error alike every time: its type, message, status and the Basic challenge on a 401", async () => {
    const error = new ApiKeyError("unauthorized", "Unauthorized: the secret API key is invalid or revoked");
    const server = answering(error);
    for (let i = 0; i < 3; i++) {
      const response = await request(server).get("/").expect(401);
      assert.deepEqual(response.body, { type: "unauthorized", message: "Unauthorized: the secret API key is invalid or revoked" });
      assert.equal(response.headers["www-authenticate"], 'Basic realm="api", charset="UTF-8"');
      assert.equal(response.headers["content-type"], "application/json; charset=utf-8");
      assert.equal(response.headers["cache-control"], undefined);
    }
  });

  it("answers an error whose message was changed after its first answer with the new message", async () => {
    const error = new ApiKeyError("not_allowed", "A valid publishable key is required to proceed with the request");
    const server = answering(error);
    await request(server).get("/").expect(400);
    error.message = "Publishable key refused: caf\u00e9 \u2615";
    const response = await request(server).get("/").expect(400);
    assert.deepEqual(response.body, { type: "not_allowed", message: "Publishable key refused: caf\u00e9 \u2615" });
    // Counted in bytes: the two non-ASCII characters take 2 and 3.
    assert.equal(Number(response.headers["content-length"]), Buffer.byteLength(JSON.stringify(response.body)));
  });

  it("adds Cache-Control: no-store when asked, and no challenge to answers that are not 401", async () => {
    const response = await request(answering(new ApiKeyError("forbidden", "Forbidden: the API key lacks the scope orders:read"), true)).get("/").expect(403);
    assert.equal(response.headers["cache-control"], "no-store");
    assert.equal(response.headers["www-authenticate"], undefined);
  });
});

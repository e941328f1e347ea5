// tokenPrefix: a deployment's own segment in its tokens, covered by the tag and the checksum,
// so that secret scanners can tell them apart; tokens issued before it keep working.
import assert from "node:assert/strict";
import http from "node:http";
import request from "supertest";
import { apiKeyAuth } from "../../middleware/api-key-auth";
import { forEachBackend } from "../helpers/backends";

forEachBackend(
  "token prefix",
  (db) => {
    it("issues sk_<prefix>_ and pk_<prefix>_ tokens that authenticate, beside the tokens issued before", async () => {
      const before = await db.service.createApiKeys({ title: "before", type: "secret", created_by: "u" });
      const acme = await db.open({ tokenPrefix: "acme" });
      const secret = await acme.createApiKeys({ title: "s", type: "secret", created_by: "u" });
      const publishable = await acme.createApiKeys({ title: "p", type: "publishable", created_by: "u" });
      assert.match(secret.token, /^sk_acme_[0-9A-Za-z]{50}$/);
      assert.match(publishable.token, /^pk_acme_[0-9A-Za-z]{50}$/);
      assert.equal(secret.redacted, `sk_acm***${secret.token.slice(-3)}`);
      for (const token of [secret.token, publishable.token, before.token]) assert.equal((await acme.verifyApiKey(token)).code, "valid", token.slice(0, 8));
      // Another prefix later: every token issued so far keeps working.
      const renamed = await db.open({ tokenPrefix: "acme2" });
      assert.equal((await renamed.verifyApiKey(secret.token)).code, "valid");
      const rolled = await renamed.roll(secret.id, { revoked_by: "u" });
      assert.match(rolled.token, /^sk_acme2_/);

      const server = http.createServer((req, res) =>
        apiKeyAuth({ service: acme })(req, res, (error?: unknown) => {
          res.statusCode = error ? 500 : 200;
          res.end();
        }),
      );
      assert.equal((await renamed.verifyApiKey(secret.token)).code, "revoked");
      assert.equal((await request(server).get("/").auth(rolled.token, "")).status, 200, "a token of another segment of this deployment");
      const fresh = await acme.createApiKeys({ title: "fresh", type: "secret", created_by: "u" });
      assert.equal((await request(server).get("/").auth(fresh.token, "")).status, 200);
      assert.equal((await request(server).get("/").set("Authorization", `Basic ${fresh.token}`)).status, 200);
    });

    it("gives a token pattern that finds this deployment's secret tokens and no one else's", async () => {
      const acme = await db.open({ tokenPrefix: "acme" });
      const mine = await acme.createApiKeys({ title: "s", type: "secret", created_by: "u" });
      const unprefixed = await db.service.createApiKeys({ title: "s", type: "secret", created_by: "u" });
      const other = await (await db.open({ tokenPrefix: "globex" })).createApiKeys({ title: "s", type: "secret", created_by: "u" });
      const publishable = await acme.createApiKeys({ title: "p", type: "publishable", created_by: "u" });
      const text = [mine.token, unprefixed.token, other.token, publishable.token, `sk_acme_${"x".repeat(51)}`].join("\n");
      assert.deepEqual(text.match(new RegExp(acme.tokenPattern, "g")), [mine.token]);
    });

    it("refuses a prefix that is not 1 to 16 lower-case letters and digits", async () => {
      for (const tokenPrefix of ["", "ACME", "a_b", "x".repeat(17), 7]) {
        await assert.rejects(db.open({ tokenPrefix } as never), (error: Error) => error instanceof TypeError && /tokenPrefix/.test(error.message));
      }
    });
  },
  ["postgres", "sqlite"],
);

import assert from "node:assert/strict";
import type { Server } from "node:http";
import request from "supertest";
import { initialize } from "../../setup/initialize";
import type { ApiKeyDTO } from "../../lib/types";
import { MESSAGES } from "../../middleware/credentials";
import { forEachBackend } from "../helpers/backends";
import { FRAMEWORKS, createApp } from "../helpers/create-app";
import { unreachableDatabase } from "../helpers/services";

const basic = (token: string) => `Basic ${Buffer.from(`${token}:`).toString("base64")}`;

for (const framework of FRAMEWORKS) {
  forEachBackend(
    `apiKeyAuth on ${framework}`,
    (db) => {
      let app: Server;
      let secret: ApiKeyDTO;
      let publishable: ApiKeyDTO;

      beforeEach(async () => {
        app = createApp(framework, { service: db.service });
        secret = await db.service.createApiKeys({ title: "admin", type: "secret", created_by: "user_42" });
        publishable = await db.service.createApiKeys({ title: "store", type: "publishable", created_by: "user_42" });
        await db.service.updateLinks(publishable.id, { add: ["sc_web", "sc_app"] });
      });

      function expectRejected(res: request.Response, status: number, type: string, message: string): void {
        assert.equal(res.status, status, JSON.stringify(res.body));
        assert.match(res.headers["content-type"] ?? "", /^application\/json/);
        assert.deepEqual(res.body, { type, message });
        if (status === 401) assert.match(res.headers["www-authenticate"] ?? "", /^Basic realm="api"/);
      }

      describe("secret keys", () => {
        it("accepts Basic base64(sk_...:) and attaches the reference's contexts", async () => {
          const res = await request(app).get("/admin").set("Authorization", basic(secret.token));
          assert.equal(res.status, 200);
          assert.deepEqual(res.body.auth_context, {
            actor_id: secret.id,
            actor_type: "api-key",
            auth_identity_id: "",
            app_metadata: { scopes: [], owner_id: null },
            user_metadata: {},
          });
          assert.deepEqual(res.body.secret_key_context, { created_by: "user_42" });
          assert.equal(res.body.api_key.id, secret.id);
          assert.equal(res.body.api_key.token, "");
          assert.deepEqual(Object.keys(res.body.api_key).sort(), Object.keys(secret).sort());
        });

        it("accepts every form the reference accepts", async () => {
          const forms = [
            `Basic ${secret.token}`,
            `basic ${secret.token}:`,
            `BASIC ${Buffer.from(secret.token).toString("base64")}`,
            basic(secret.token),
          ];
          for (const header of forms) {
            const res = await request(app).get("/admin").set("Authorization", header);
            assert.equal(res.status, 200, header);
          }
        });

        it("answers 401 for a missing, malformed, unknown, mistyped or misplaced key", async () => {
          expectRejected(await request(app).get("/admin"), 401, "unauthorized", MESSAGES.secretMissing);
          expectRejected(await request(app).get("/admin").set("Authorization", "Basic !!!"), 401, "unauthorized", MESSAGES.secretMalformed);
          const unknown = await db.service.createApiKeys({ title: "x", type: "secret", created_by: "u" });
          await db.service.revoke(unknown.id, { revoked_by: "u" });
          const mistyped = `${secret.token.slice(0, -1)}${secret.token.endsWith("a") ? "b" : "a"}`;
          for (const token of [mistyped, unknown.token]) {
            expectRejected(await request(app).get("/admin").set("Authorization", basic(token)), 401, "unauthorized", MESSAGES.secretInvalid);
          }
          expectRejected(await request(app).get("/admin").set("Authorization", basic(publishable.token)), 401, "unauthorized", MESSAGES.publishableAsSecret);
          expectRejected(await request(app).get("/admin").set("Authorization", `Bearer ${secret.token}`), 401, "unauthorized", MESSAGES.bearerHint);
          expectRejected(await request(app).get("/admin").set("Authorization", `Basic ${secret.token}:password`), 401, "unauthorized", MESSAGES.secretWithPassword);
          expectRejected(await request(app).get("/admin").set("x-publishable-api-key", secret.token), 401, "unauthorized", MESSAGES.secretMissing);
        });

        it("rejects a revoked key, and a scheduled one from its instant on", async () => {
          await db.service.revoke(secret.id, { revoked_by: "u", revoke_in: 30 });
          assert.equal((await request(app).get("/admin").set("Authorization", basic(secret.token))).status, 200);
          db.clock.advance(30_000);
          expectRejected(await request(app).get("/admin").set("Authorization", basic(secret.token)), 401, "unauthorized", MESSAGES.secretInvalid);
        });

        it("rejects a deleted key", async () => {
          await db.service.revoke(secret.id, { revoked_by: "u" });
          await db.service.deleteApiKeys(secret.id);
          expectRejected(await request(app).get("/admin").set("Authorization", basic(secret.token)), 401, "unauthorized", MESSAGES.secretInvalid);
        });

        it("with required: false, lets keyless requests through but still rejects a bad key", async () => {
          const anonymous = await request(app).get("/optional");
          assert.equal(anonymous.status, 200);
          assert.equal(anonymous.body.auth_context, undefined);
          const jwt = await request(app).get("/optional").set("Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig");
          assert.equal(jwt.status, 200, "a Bearer token that is not a key is someone else's business");
          assert.equal((await request(app).get("/optional").set("Authorization", basic(secret.token))).body.auth_context.actor_id, secret.id);
          const mistyped = `${secret.token.slice(0, -2)}${secret.token.endsWith("zz") ? "yy" : "zz"}`;
          expectRejected(await request(app).get("/optional").set("Authorization", basic(mistyped)), 401, "unauthorized", MESSAGES.secretInvalid);
        });
      });

      describe("publishable keys", () => {
        it("accepts x-publishable-api-key in any case and attaches the sales channels", async () => {
          for (const header of ["x-publishable-api-key", "X-Publishable-Api-Key"]) {
            const res = await request(app).get("/store").set(header, publishable.token);
            assert.equal(res.status, 200);
            assert.deepEqual(res.body.publishable_key_context, { key: publishable.token, sales_channel_ids: ["sc_app", "sc_web"] });
            assert.equal(res.body.api_key.id, publishable.id);
            assert.equal(res.body.auth_context, undefined);
          }
        });

        it("gives a key without links an empty list", async () => {
          const bare = await db.service.createApiKeys({ title: "bare", type: "publishable", created_by: "u" });
          const res = await request(app).get("/store").set("x-publishable-api-key", bare.token);
          assert.deepEqual(res.body.publishable_key_context, { key: bare.token, sales_channel_ids: [] });
        });

        it("answers 400 not_allowed, as the reference does, for missing and invalid keys", async () => {
          expectRejected(await request(app).get("/store"), 400, "not_allowed", MESSAGES.publishableMissing);
          expectRejected(await request(app).get("/store").set("x-publishable-api-key", ""), 400, "not_allowed", MESSAGES.publishableMissing);
          const mistyped = `${publishable.token.slice(0, -1)}${publishable.token.endsWith("0") ? "1" : "0"}`;
          for (const value of ["pk_nope", secret.token, mistyped]) {
            expectRejected(await request(app).get("/store").set("x-publishable-api-key", value), 400, "not_allowed", MESSAGES.publishableInvalid);
          }
          expectRejected(await request(app).get("/store").set("Authorization", basic(secret.token)), 400, "not_allowed", MESSAGES.publishableMissing);
        });

        it("rejects revoked, scheduled-revoked after the instant, and deleted keys", async () => {
          const other = await db.service.createApiKeys({ title: "other", type: "publishable", created_by: "u" });
          await db.service.revoke(publishable.id, { revoked_by: "u", revoke_in: 10 });
          await db.service.revoke(other.id, { revoked_by: "u" });
          assert.equal((await request(app).get("/store").set("x-publishable-api-key", publishable.token)).status, 200);
          db.clock.advance(10_000);
          for (const key of [publishable, other]) {
            expectRejected(await request(app).get("/store").set("x-publishable-api-key", key.token), 400, "not_allowed", MESSAGES.publishableInvalid);
          }
          await db.service.deleteApiKeys(other.id);
          expectRejected(await request(app).get("/store").set("x-publishable-api-key", other.token), 400, "not_allowed", MESSAGES.publishableInvalid);
        });

        it("reflects link changes on the next request", async () => {
          await db.service.updateLinks(publishable.id, { remove: ["sc_web"], add: ["sc_pos"] });
          const res = await request(app).get("/store").set("x-publishable-api-key", publishable.token);
          assert.deepEqual(res.body.publishable_key_context.sales_channel_ids, ["sc_app", "sc_pos"]);
        });
      });

      it("answers 503 unavailable, not 401, when the database is down", async () => {
        const down = unreachableDatabase();
        const service = await initialize({ database: down, runMigrations: false });
        try {
          const outage = createApp(framework, { service });
          expectRejected(await request(outage).get("/admin").set("Authorization", basic(secret.token)), 503, "unavailable", "The API key store is unavailable");
          expectRejected(await request(outage).get("/store").set("x-publishable-api-key", publishable.token), 503, "unavailable", "The API key store is unavailable");
          // A malformed key never reaches the store, so it is still a plain 401.
          expectRejected(await request(outage).get("/admin").set("Authorization", "Basic sk_bad"), 401, "unauthorized", MESSAGES.secretInvalid);
        } finally {
          await service.close();
          await down.destroy();
        }
      });
    },
    // The middleware and the router sit above the store: PostgreSQL, and SQLite and MariaDB for
    // what differs below them (dates, case, links).
    ["postgres", "sqlite", "mariadb"],
  );
}

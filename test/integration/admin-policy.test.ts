import assert from "node:assert/strict";
import http, { type Server } from "node:http";
import request from "supertest";
import type { ApiKeyService } from "../../lib/service";
import type { ApiKeyDTO } from "../../lib/types";
import { apiKeyAdminRouter } from "../../middleware/admin-router";
import { apiKeyAuth } from "../../middleware/api-key-auth";
import { forEachBackend } from "../helpers/backends";
import { EXPRESS_VERSIONS, adminRouterOn, createAdminApp, expressApp } from "../helpers/create-app";
import { scriptedService } from "../helpers/scripted-service";

const basic = (token: string) => `Basic ${Buffer.from(`${token}:`).toString("base64")}`;

for (const version of EXPRESS_VERSIONS) forEachBackend(
  `admin router key policy on ${version}`,
  (db) => {
    let admin: ApiKeyDTO;

    beforeEach(async () => {
      admin = await db.service.createApiKeys({ title: "bootstrap", type: "secret", created_by: "user_1" });
    });

    function client(app: Server, token: string) {
      return {
        get: (path: string) => request(app).get(`/admin/api-keys${path}`).set("Authorization", basic(token)),
        post: (path: string, body: object = {}) => request(app).post(`/admin/api-keys${path}`).set("Authorization", basic(token)).send(body),
        delete: (path: string) => request(app).delete(`/admin/api-keys${path}`).set("Authorization", basic(token)),
      };
    }

    describe("the scopes option", () => {
      /**
       * The admin router behind an apiKeyAuth whose verification gives each calling key the
       * scopes `scopesOf` names (so that this runs before keys can be created with scopes);
       * the router itself works on the real service.
       */
      function appWith(scopesOf: Record<string, string[]>): Server {
        const authenticating: ApiKeyService = scriptedService(db.service, async (token) => {
          const key = await db.service.authenticate(token);
          return key ? { valid: true, code: "valid", api_key: { ...key, scopes: scopesOf[key.id] ?? [] } } : { valid: false, code: "not_found" };
        });
        const app = expressApp(version);
        app.use(
          "/admin/api-keys",
          apiKeyAuth({ service: authenticating }),
          adminRouterOn(version, { service: db.service, scopes: { read: ["api_keys:read"], write: ["api_keys:write"] } }),
        );
        return http.createServer(app);
      }

      it("lets a read-only key list and read, but not create, update, revoke, roll or delete", async () => {
        const reader = await db.service.createApiKeys({ title: "reader", type: "secret", created_by: "u" });
        const target = await db.service.createApiKeys({ title: "target", type: "secret", created_by: "u" });
        const app = appWith({ [reader.id]: ["api_keys:read"], [admin.id]: ["api_keys:*"] });
        const asReader = client(app, reader.token);
        assert.equal((await asReader.get("/")).status, 200);
        assert.equal((await asReader.get(`/${target.id}`)).status, 200);
        const before = await db.service.listApiKeys();
        const forbidden = { type: "forbidden", message: "Forbidden: the API key lacks the scope api_keys:write" };
        for (const res of [
          await asReader.post("/", { title: "x", type: "secret" }),
          await asReader.post(`/${target.id}`, { title: "renamed" }),
          await asReader.post(`/${target.id}/revoke`),
          await asReader.post(`/${target.id}/roll`),
          await asReader.post(`/${target.id}/soft-delete`),
          await asReader.post(`/${target.id}/restore`),
          await asReader.delete(`/${target.id}`),
        ]) {
          assert.equal(res.status, 403, JSON.stringify(res.body));
          assert.deepEqual(res.body, forbidden);
          assert.equal(res.headers["cache-control"], "no-store");
        }
        // Refused before the body is read: a form post from a reader is 403, not 415.
        const form = await request(app).post("/admin/api-keys").set("Authorization", basic(reader.token)).type("form").send("title=x");
        assert.equal(form.status, 403);
        assert.deepEqual(await db.service.listApiKeys(), before, "nothing changed");

        const asAdmin = client(app, admin.token);
        assert.equal((await asAdmin.post("/", { title: "x", type: "secret" })).status, 200, "api_keys:* grants both");
        assert.equal((await asAdmin.post(`/${target.id}/revoke`)).status, 200);
      });

      it("refuses a key without scopes, and a key with only write scopes a read and a change, which answers with records", async () => {
        const writer = await db.service.createApiKeys({ title: "writer", type: "secret", created_by: "u" });
        const app = appWith({ [writer.id]: ["api_keys:write"] });
        const none = await client(app, admin.token).get("/");
        assert.equal(none.status, 403);
        assert.deepEqual(none.body, { type: "forbidden", message: "Forbidden: the API key lacks the scope api_keys:read" });
        assert.equal((await client(app, writer.token).get("/")).status, 403);
        const before = await db.service.listApiKeys();
        const create = await client(app, writer.token).post("/", { title: "x", type: "publishable" });
        assert.deepEqual([create.status, create.body], [403, { type: "forbidden", message: "Forbidden: the API key lacks the scope api_keys:read" }]);
        assert.deepEqual(await db.service.listApiKeys(), before, "nothing changed");
      });

      it("refuses a caller that is not a key when scopes are required", async () => {
        const app = expressApp(version);
        app.use("/keys", adminRouterOn(version, { service: db.service, actor: () => "user_1", scopes: { read: ["api_keys:read"] } }));
        const res = await request(app).get("/keys");
        assert.equal(res.status, 403);
        assert.equal(res.body.type, "forbidden");
        // No write scopes required, but a change answers with records: it needs the read scopes.
        assert.equal((await request(app).post("/keys").send({ title: "x", type: "secret" })).status, 403);
        const open = expressApp(version);
        open.use("/keys", adminRouterOn(version, { service: db.service, actor: () => "user_1", scopes: { read: [], write: ["api_keys:write"] } }));
        assert.equal((await request(open).get("/keys")).status, 200);
        assert.equal((await request(open).post("/keys").send({ title: "x", type: "secret" })).status, 403);
      });

      it("is checked when the router is built", () => {
        const build = (scopes: unknown) => () => apiKeyAdminRouter({ service: db.service, scopes: scopes as { read: string[] } });
        assert.throws(build("api_keys:read"), /`scopes` must be an object/);
        assert.throws(build({ read: "api_keys:read" }), /`scopes.read` must be an array/);
        assert.throws(build({ write: ["api_keys:*"] }), /`scopes.write`: "api_keys:\*" is not a scope/);
        assert.throws(build({ reads: [] }), /unknown key `scopes.reads`/);
        assert.doesNotThrow(build({}));
        assert.doesNotThrow(build({ read: ["api_keys:read"], write: [] }));
      });
    });

    describe("routes and parameters", () => {
      let api: ReturnType<typeof client>;
      beforeEach(() => {
        api = client(createAdminApp(version, db.service), admin.token);
      });

      it("takes with_deleted on GET /:id and refuses a malformed one", async () => {
        assert.equal((await api.get(`/${admin.id}?with_deleted=true`)).body.api_key.id, admin.id);
        assert.equal((await api.get(`/${admin.id}?with_deleted=false`)).status, 200);
        const bad = await api.get(`/${admin.id}?with_deleted=yes`);
        assert.equal(bad.status, 400);
        assert.deepEqual(bad.body, { type: "invalid_data", message: "Invalid request: 'with_deleted' must be true or false" });
      });

      it("refuses bodies on soft-delete and restore, and unknown ids", async () => {
        const missing = "apk_01ARZ3NDEKTSV4RRFFQ69G5FAV";
        const extra = await api.post(`/${admin.id}/soft-delete`, { reason: "x" });
        assert.equal(extra.status, 400);
        assert.deepEqual(extra.body, { type: "invalid_data", message: "Invalid request: Unrecognized fields: 'reason'" });
        assert.equal((await api.post(`/${missing}/soft-delete`)).status, 404);
        assert.equal((await api.post(`/${missing}/restore`)).status, 404);
        const form = await request(createAdminApp(version, db.service)).post(`/admin/api-keys/${admin.id}/soft-delete`).set("Authorization", basic(admin.token)).type("form").send("x=1");
        assert.equal(form.status, 415);
      });

      it("soft-deletes and restores a key", async function () {
        const key = await db.service.createApiKeys({ title: "temp", type: "secret", created_by: "u" });
        const deleted = await api.post(`/${key.id}/soft-delete`);
        assert.equal(deleted.status, 200, JSON.stringify(deleted.body));
        assert.equal(deleted.body.api_key.id, key.id);
        assert.ok(deleted.body.api_key.deleted_at);
        assert.equal((await api.get(`/${key.id}`)).status, 404);
        assert.ok((await api.get(`/${key.id}?with_deleted=true`)).body.api_key.deleted_at);
        assert.deepEqual((await api.get("/?type=secret")).body.api_keys.map((k: ApiKeyDTO) => k.id), [admin.id]);
        assert.deepEqual((await api.get("/?type=secret&with_deleted=true&order=created_at")).body.api_keys.map((k: ApiKeyDTO) => k.id), [admin.id, key.id]);
        assert.equal(await db.service.authenticate(key.token), false);
        const restored = await api.post(`/${key.id}/restore`);
        assert.equal(restored.status, 200, JSON.stringify(restored.body));
        assert.equal(restored.body.api_key.deleted_at, null);
        assert.equal((await db.service.authenticate(key.token) as ApiKeyDTO).id, key.id);
      });

      it("creates, updates, filters and orders keys with policy fields", async function () {
        const expiresAt = new Date(db.clock.now().getTime() + 86_400_000).toISOString();
        const created = await api.post("/", {
          title: "partner",
          type: "secret",
          expires_at: expiresAt,
          scopes: ["orders:read", "orders:*"],
          owner_id: "org_1",
          metadata: { plan: "pro", seats: 3 },
          rate_limits: [{ name: "per_minute", limit: 100, duration: 60 }],
          remaining: 1000,
          refill: { amount: 1000, interval: "month" },
        });
        assert.equal(created.status, 200, JSON.stringify(created.body));
        const key = created.body.api_key;
        assert.deepEqual(
          [new Date(key.expires_at).toISOString(), key.scopes, key.owner_id, key.metadata, key.rate_limits, key.remaining, key.refill],
          [expiresAt, ["orders:read", "orders:*"], "org_1", { plan: "pro", seats: 3 }, [{ name: "per_minute", limit: 100, duration: 60 }], 1000, { amount: 1000, interval: "month" }],
        );
        const inAnHour = await api.post("/", { title: "short", type: "secret", expires_in: 3600, owner_id: "org_2" });
        assert.equal(inAnHour.status, 200, JSON.stringify(inAnHour.body));
        assert.equal(new Date(inAnHour.body.api_key.expires_at).getTime(), db.clock.now().getTime() + 3_600_000);

        const updated = await api.post(`/${key.id}`, { expires_at: null, scopes: ["orders:read"], owner_id: "org_3", metadata: {}, remaining: 5, refill: null, rate_limits: [] });
        assert.equal(updated.status, 200, JSON.stringify(updated.body));
        assert.deepEqual(
          [updated.body.api_key.expires_at, updated.body.api_key.scopes, updated.body.api_key.owner_id, updated.body.api_key.remaining, updated.body.api_key.refill],
          [null, ["orders:read"], "org_3", 5, null],
        );
        assert.equal((await api.post(`/${key.id}`, { title: "renamed" })).body.api_key.title, "renamed");

        const byOwner = await api.get("/?owner_id=org_2");
        assert.deepEqual(byOwner.body.api_keys.map((k: ApiKeyDTO) => k.id), [inAnHour.body.api_key.id]);
        const expiring = await api.get(`/?expires_at[$lte]=${encodeURIComponent(new Date(db.clock.now().getTime() + 7_200_000).toISOString())}`);
        assert.deepEqual(expiring.body.api_keys.map((k: ApiKeyDTO) => k.id), [inAnHour.body.api_key.id]);
        const ordered = await api.get("/?owner_id[$exists]=true&order=-owner_id");
        assert.deepEqual(ordered.body.api_keys.map((k: { owner_id: string }) => k.owner_id), ["org_3", "org_2"]);
        assert.equal((await api.get("/?order=expires_at")).status, 200);

        const bad = await api.post("/", { title: "x", type: "publishable", scopes: ["orders:read"] });
        assert.equal(bad.status, 400);
        assert.equal(bad.body.type, "invalid_data");
      });

      it("refuses a key without the middleware's scopes, over real verification", async function () {
        const reader = await db.service.createApiKeys({ title: "r", type: "secret", created_by: "u", scopes: ["orders:read"] } as never);
        const app = expressApp(version);
        app.get("/orders", apiKeyAuth({ service: db.service, scopes: ["orders:read"] }), (_req, res) => res.json({ ok: true }));
        app.get("/refunds", apiKeyAuth({ service: db.service, scopes: ["orders:read", "refunds:write"] }), (_req, res) => res.json({ ok: true }));
        assert.equal((await request(app).get("/orders").set("Authorization", basic(reader.token))).status, 200);
        const res = await request(app).get("/refunds").set("Authorization", basic(reader.token));
        assert.deepEqual([res.status, res.body], [403, { type: "forbidden", message: "Forbidden: the API key lacks the scope refunds:write" }]);
      });
    });
  },
  ["postgres", "sqlite", "mariadb"],
);

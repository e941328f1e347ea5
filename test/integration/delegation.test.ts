// Who may manage keys: through the admin router, the dashboard and the service's `actingKey`,
// nobody gives or manages more than it holds, over real verification on every SQL backend.
import assert from "node:assert/strict";
import type http from "node:http";
import request from "supertest";
import type { ApiKeyDTO, CreateApiKeyDTO } from "../../lib/types";
import type { AdminRouterOptions } from "../../middleware/admin-router";
import { apiKeyDashboard } from "../../middleware/dashboard";
import { forEachBackend } from "../helpers/backends";
import { createAdminApp, expressApp, withExpress } from "../helpers/create-app";

const basic = (token: string) => `Basic ${Buffer.from(`${token}:`).toString("base64")}`;
const EXPLICIT: AdminRouterOptions = { scopes: { read: ["api_keys:read"], write: ["api_keys:write"] } };
const MANAGER_SCOPES = ["api_keys:read", "api_keys:write"];

forEachBackend("who may manage keys", (db) => {
  let admin: ApiKeyDTO;

  beforeEach(async () => {
    admin = await db.service.createApiKeys({ title: "root", type: "secret", created_by: "u" });
  });

  const secret = (title: string, policy: Partial<CreateApiKeyDTO> = {}) => db.service.createApiKeys({ title, type: "secret", created_by: "u", ...policy });

  function client(app: http.Server, token: string) {
    return {
      get: (path: string) => request(app).get(`/admin/api-keys${path}`).set("Authorization", basic(token)),
      post: (path: string, body: object = {}) => request(app).post(`/admin/api-keys${path}`).set("Authorization", basic(token)).send(body),
      delete: (path: string) => request(app).delete(`/admin/api-keys${path}`).set("Authorization", basic(token)),
    };
  }

  /** Every key as stored, with deleted ones, so that "nothing changed" compares everything. */
  const snapshot = () => db.service.listApiKeys({}, { withDeleted: true, order: { id: "ASC" } });

  function assertForbidden(res: request.Response, names: RegExp): void {
    assert.equal(res.status, 403, JSON.stringify(res.body));
    assert.equal(res.body.type, "forbidden");
    assert.match(res.body.message, names);
    assert.doesNotMatch(JSON.stringify(res.body), /sk_/, "no token in a refusal");
  }

  for (const [label, options] of [
    ["with the scopes option", EXPLICIT],
    ["by default", {}],
  ] as const) {
    describe(`a key administrator with scopes, ${label}`, () => {
      let manager: ApiKeyDTO;
      let api: ReturnType<typeof client>;

      beforeEach(async () => {
        manager = await secret("manager", { scopes: MANAGER_SCOPES });
        api = client(createAdminApp("express5", db.service, options), manager.token);
      });

      it("cannot create a key with a scope it does not hold, nor an unrestricted one", async () => {
        const before = await snapshot();
        assertForbidden(await api.post("/", { title: "root 2", type: "secret", scopes: ["*"] }), /scope \*/);
        assertForbidden(await api.post("/", { title: "root 3", type: "secret" }), /unrestricted/);
        assertForbidden(await api.post("/", { title: "root 4", type: "secret", scopes: [] }), /unrestricted/);
        assertForbidden(await api.post("/", { title: "orders", type: "secret", scopes: ["api_keys:read", "orders:read"] }), /scope orders:read\b/);
        assertForbidden(await api.post("/", { title: "wider", type: "secret", scopes: ["api_keys:*"] }), /scope api_keys:\*/);
        assert.deepEqual(await snapshot(), before, "nothing changed");

        const narrower = await api.post("/", { title: "reader", type: "secret", scopes: ["api_keys:read"] });
        assert.equal(narrower.status, 200, JSON.stringify(narrower.body));
        assert.equal((await api.post("/", { title: "storefront", type: "publishable" })).status, 200, "publishable keys hold nothing");
      });

      it("cannot widen its own scopes", async () => {
        const before = await snapshot();
        assertForbidden(await api.post(`/${manager.id}`, { scopes: ["*"] }), /scope \*/);
        assertForbidden(await api.post(`/${manager.id}`, { scopes: [...MANAGER_SCOPES, "orders:read"] }), /scope orders:read/);
        assertForbidden(await api.post(`/${manager.id}`, { scopes: [] }), /unrestricted/);
        assert.deepEqual(await snapshot(), before);
        assert.equal((await api.post(`/${manager.id}`, { scopes: ["api_keys:read", "api_keys:write"], title: "renamed" })).status, 200);
      });

      it("cannot roll, update, revoke, delete, restore or relink a key that holds more, and never sees its successor's token", async () => {
        const ops = await secret("ops", { scopes: ["*"] });
        const orders = await secret("orders", { scopes: ["api_keys:read", "orders:write"] });
        const revoked = await secret("old root");
        await db.service.revoke(revoked.id, { revoked_by: "u" });
        const hidden = await secret("hidden root");
        await db.service.softDeleteApiKeys(hidden.id);
        const before = await snapshot();
        for (const target of [ops, admin, orders]) {
          const rolled = await api.post(`/${target.id}/roll`, { revoke_in: 86_400 });
          assertForbidden(rolled, new RegExp(target.id));
          assertForbidden(await api.post(`/${target.id}`, { title: "mine now" }), new RegExp(target.id));
          assertForbidden(await api.post(`/${target.id}`, { rate_limits: [] }), new RegExp(target.id));
          assertForbidden(await api.post(`/${target.id}/revoke`), new RegExp(target.id));
          assertForbidden(await api.post(`/${target.id}/soft-delete`), new RegExp(target.id));
        }
        assertForbidden(await api.post(`/${ops.id}/roll`), /scope \*/);
        assertForbidden(await api.post(`/${orders.id}/roll`), /scope orders:write/);
        assertForbidden(await api.delete(`/${revoked.id}`), new RegExp(revoked.id));
        assertForbidden(await api.post(`/${hidden.id}/restore`), new RegExp(hidden.id));
        assert.deepEqual(await snapshot(), before, "nothing changed");
        assert.equal((await db.service.authenticate(ops.token) as ApiKeyDTO).id, ops.id, "the ops key still works");
      });

      it("manages keys whose scopes it holds in full, and publishable keys", async () => {
        const reader = await secret("reader", { scopes: ["api_keys:read"] });
        const storefront = await db.service.createApiKeys({ title: "shop", type: "publishable", created_by: "u" });
        assert.equal((await api.post(`/${reader.id}`, { title: "reader 2", rate_limits: [] })).status, 200);
        const rolled = await api.post(`/${reader.id}/roll`);
        assert.equal(rolled.status, 200, JSON.stringify(rolled.body));
        assert.deepEqual(rolled.body.api_key.scopes, ["api_keys:read"]);
        assert.equal((await api.delete(`/${reader.id}`)).status, 200);
        assert.equal((await api.post(`/${storefront.id}/sales-channels`, { add: ["sc_1"] })).status, 200);
        assert.equal((await api.post(`/${storefront.id}/revoke`)).status, 200);
      });

      it("cannot raise or remove its own rate limits, quota or expiry, but may tighten them", async () => {
        const expiresAt = new Date(db.clock.now().getTime() + 86_400_000);
        const limited = await secret("limited", {
          scopes: MANAGER_SCOPES,
          rate_limits: [{ name: "per_minute", limit: 10, duration: 60 }],
          remaining: 100,
          refill: { amount: 100, interval: "day" },
          expires_at: expiresAt,
        });
        const self = client(createAdminApp("express5", db.service, options), limited.token);
        // Each request spends one use of the quota: that much, and nothing else, may change.
        const policyOf = async () => {
          const { rate_limits, remaining, refill, expires_at, scopes } = await db.service.retrieveApiKey(limited.id);
          return { rate_limits, remaining, refill, expires_at, scopes };
        };
        const before = await policyOf();
        const later = new Date(expiresAt.getTime() + 1000).toISOString();
        for (const [body, field] of [
          [{ rate_limits: [] }, "rate_limits"],
          [{ rate_limits: [{ name: "per_minute", limit: 11, duration: 60 }] }, "rate_limits"],
          [{ rate_limits: [{ name: "per_second", limit: 10, duration: 1 }] }, "rate_limits"],
          [{ remaining: null }, "remaining"],
          [{ remaining: 101 }, "remaining"],
          [{ refill: { amount: 101, interval: "day" } }, "refill"],
          [{ refill: { amount: 100, interval: "month" } }, "refill"],
          [{ expires_at: null }, "expires_at"],
          [{ expires_at: later }, "expires_at"],
        ] as const) {
          assertForbidden(await self.post(`/${limited.id}`, body), new RegExp(`own ${field}`));
        }
        assert.deepEqual(await policyOf(), { ...before, remaining: 100 - 9 }, "nothing changed but the uses spent");

        const tighter = await self.post(`/${limited.id}`, {
          rate_limits: [{ name: "per_minute", limit: 5, duration: 60 }, { name: "per_hour", limit: 100, duration: 3600 }],
          remaining: 50,
          refill: null,
          expires_at: new Date(expiresAt.getTime() - 1000).toISOString(),
        });
        assert.equal(tighter.status, 200, JSON.stringify(tighter.body));
        // Another administrator may lift them: the rule is about one's own key.
        const lifted = await client(createAdminApp("express5", db.service, options), manager.token).post(`/${limited.id}`, { rate_limits: [], remaining: null, expires_at: null });
        assert.equal(lifted.status, 200, JSON.stringify(lifted.body));
      });
    });
  }

  describe("by default, with no scopes option", () => {
    it("refuses a key whose scopes do not grant api_keys:read and api_keys:write, and lets unrestricted keys do everything", async () => {
      const app = createAdminApp("express5", db.service);
      const orders = await secret("orders", { scopes: ["orders:read"] });
      const reader = await secret("reader", { scopes: ["api_keys:read"] });
      const before = await snapshot();
      assertForbidden(await client(app, orders.token).get("/"), /api_keys:read/);
      assertForbidden(await client(app, orders.token).post("/", { title: "x", type: "secret", scopes: ["*"] }), /api_keys:read, api_keys:write/);
      assertForbidden(await client(app, orders.token).post(`/${orders.id}`, { scopes: ["*"] }), /api_keys:read, api_keys:write/);
      assert.equal((await client(app, reader.token).get("/")).status, 200);
      assertForbidden(await client(app, reader.token).post("/", { title: "x", type: "publishable" }), /scope api_keys:write$/);
      assert.deepEqual(await snapshot(), before, "nothing changed");

      const root = client(app, admin.token);
      const minted = await root.post("/", { title: "second root", type: "secret", scopes: ["*"] });
      assert.equal(minted.status, 200, JSON.stringify(minted.body));
      assert.equal((await root.post(`/${orders.id}/roll`)).status, 200);
    });

    it("refuses the dashboard to such a key, and lets an administrator there do only what it holds", async () => {
      const app = expressApp("express5");
      app.use("/admin/keys", withExpress("express5", () => apiKeyDashboard({ service: db.service })));
      const orders = await secret("orders", { scopes: ["orders:read"] });
      const signIn = (token: string) => request(app).post("/admin/keys/session").send({ secret_key: token });
      assertForbidden(await signIn(orders.token), /api_keys:read/);

      const manager = await secret("manager", { scopes: MANAGER_SCOPES });
      const session = await signIn(manager.token);
      assert.equal(session.status, 200, session.text);
      const cookie = (session.headers["set-cookie"] as unknown as string[])[0]!.split(";")[0]!;
      const post = (path: string, body: object) =>
        request(app).post(`/admin/keys/api${path}`).set("Cookie", cookie).set("x-csrf-token", session.body.csrf_token).send(body);
      const before = await snapshot();
      assertForbidden(await post("/", { title: "root", type: "secret", scopes: ["*"] }), /scope \*/);
      assertForbidden(await post(`/${manager.id}`, { scopes: ["*"] }), /scope \*/);
      assertForbidden(await post(`/${admin.id}/roll`, {}), new RegExp(admin.id));
      assert.deepEqual(await snapshot(), before, "nothing changed");
    });
  });

  describe("the service's actingKey", () => {
    it("holds a service caller to what the acting key holds, judged on the key as it stands", async () => {
      const manager = await secret("manager", { scopes: ["orders:*"] });
      await assert.rejects(db.service.createApiKeys({ title: "x", type: "secret", created_by: manager.id, scopes: ["*"] }, { actingKey: manager.id }), {
        type: "forbidden",
        status: 403,
      });
      const created = await db.service.createApiKeys({ title: "x", type: "secret", created_by: manager.id, scopes: ["orders:read"] }, { actingKey: manager.id });
      assert.deepEqual(created.scopes, ["orders:read"]);
      await assert.rejects(db.service.roll(admin.id, { revoked_by: manager.id }, { actingKey: manager.id }), { type: "forbidden" });
      await assert.rejects(db.service.updateApiKeys({ title: "root" }, { title: "mine" }, { actingKey: manager.id }), { type: "forbidden" });
      assert.equal((await db.service.retrieveApiKey(admin.id)).title, "root", "a selector that takes in a key it cannot manage changes nothing");

      // Narrowed since: it no longer holds orders:*.
      await db.service.updateApiKeys(manager.id, { scopes: ["orders:read"] });
      await assert.rejects(db.service.createApiKeys({ title: "y", type: "secret", created_by: manager.id, scopes: ["orders:write"] }, { actingKey: manager.id }), { type: "forbidden" });
      await db.service.revoke(manager.id, { revoked_by: "u" });
      await assert.rejects(db.service.revoke(created.id, { revoked_by: manager.id }, { actingKey: manager.id }), { type: "unauthorized", status: 401 });
      await assert.rejects(db.service.createApiKeys({ title: "z", type: "publishable", created_by: "u" }, { actingKey: "apk_unknown" }), { type: "unauthorized" });
      await assert.rejects(db.service.createApiKeys({ title: "z", type: "publishable", created_by: "u" }, { actingKey: 42 as never }), { type: "invalid_data" });
    });
  });
});

import assert from "node:assert/strict";
import type { Server } from "node:http";
import request from "supertest";
import type { ApiKeyDTO } from "../../lib/types";
import { forEachBackend } from "../helpers/backends";
import { EXPRESS_VERSIONS, adminRouterOn, createAdminApp, expressApp } from "../helpers/create-app";

for (const version of EXPRESS_VERSIONS) forEachBackend(
  `admin router on ${version}`,
  (db) => {
    let app: Server;
    let admin: ApiKeyDTO;
    let auth: string;

    beforeEach(async () => {
      admin = await db.service.createApiKeys({ title: "bootstrap", type: "secret", created_by: "user_1" });
      auth = `Basic ${Buffer.from(`${admin.token}:`).toString("base64")}`;
      app = createAdminApp(version, db.service, {
        findMissingSalesChannels: async (ids) => ids.filter((id) => !id.startsWith("sc_")),
      });
    });

    const api = () => ({
      get: (path: string) => request(app).get(`/admin/api-keys${path}`).set("Authorization", auth),
      post: (path: string, body?: unknown) => {
        const req = request(app).post(`/admin/api-keys${path}`).set("Authorization", auth);
        return body === undefined ? req : req.send(body as object);
      },
      delete: (path: string) => request(app).delete(`/admin/api-keys${path}`).set("Authorization", auth),
    });

    it("creates, lists, reads, renames, links, rolls, revokes and deletes keys", async () => {
      const created = await api().post("/", { title: "Storefront", type: "publishable" });
      assert.equal(created.status, 200);
      const store = created.body.api_key;
      assert.match(store.token, /^pk_[0-9A-Za-z]{50}$/);
      assert.equal(store.created_by, admin.id, "the acting key is the creator, as in the reference");

      const secret = await api().post("/", { title: "CI", type: "secret" });
      assert.match(secret.body.api_key.token, /^sk_[0-9A-Za-z]{50}$/, "the plaintext, this once, tagged");
      assert.equal((await api().get(`/${secret.body.api_key.id}`)).body.api_key.token, "");

      const list = await api().get("/?type=publishable&limit=5&order=-created_at");
      assert.equal(list.status, 200);
      assert.deepEqual([list.body.count, list.body.offset, list.body.limit], [1, 0, 5]);
      assert.equal(list.body.api_keys[0].id, store.id);
      const page = await api().get("/?offset=1&limit=1&order=created_at&fields=id,title");
      assert.deepEqual(page.body, { api_keys: [{ id: store.id, title: "Storefront" }], count: 3, offset: 1, limit: 1 });
      const search = await api().get(`/?q=store&created_at[$lte]=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}&revoked_at[$exists]=false`);
      assert.deepEqual(search.body.api_keys.map((k: ApiKeyDTO) => k.id), [store.id]);
      const either = await api().get("/?$or[0][title]=CI&$or[1][title]=Storefront&order=title");
      assert.deepEqual(either.body.api_keys.map((k: ApiKeyDTO) => k.title), ["CI", "Storefront"]);

      assert.equal((await api().post(`/${store.id}`, { title: "Web store" })).body.api_key.title, "Web store");
      const linked = await api().post(`/${store.id}/sales-channels`, { add: ["sc_1", "sc_2"] });
      assert.deepEqual(linked.body.api_key.sales_channels, [{ id: "sc_1" }, { id: "sc_2" }]);
      const unlinked = await api().post(`/${store.id}/sales-channels`, { remove: ["sc_1"] });
      assert.deepEqual(unlinked.body.api_key.sales_channels, [{ id: "sc_2" }]);
      assert.deepEqual((await api().get(`/${store.id}`)).body.api_key.sales_channels, [{ id: "sc_2" }]);

      const rolled = await api().post(`/${secret.body.api_key.id}/roll`, { revoke_in: 60 });
      assert.match(rolled.body.api_key.token, /^sk_[0-9A-Za-z]{50}$/);
      assert.equal(rolled.body.api_key.title, "CI");
      const old = (await api().get(`/${secret.body.api_key.id}`)).body.api_key;
      assert.equal(old.revoked_by, admin.id);

      const revoked = await api().post(`/${store.id}/revoke`, {});
      assert.equal(revoked.status, 200);
      assert.equal(revoked.body.api_key.revoked_by, admin.id);
      assert.ok(revoked.body.api_key.revoked_at);
      const deleted = await api().delete(`/${store.id}`);
      assert.deepEqual(deleted.body, { id: store.id, object: "api_key", deleted: true });
      assert.equal((await api().get(`/${store.id}`)).status, 404);
    });

    it("refuses every request without an authenticated actor", async () => {
      const open = expressApp(version);
      open.use("/keys", adminRouterOn(version, { service: db.service }));
      const res = await request(open).get("/keys");
      assert.equal(res.status, 401);
      assert.equal(res.body.type, "unauthorized");
      assert.equal((await request(app).get("/admin/api-keys")).status, 401);
    });

    it(`answers over 30 malformed requests with exact 4xx errors, changing nothing`, async () => {
      const publishable = await db.service.createApiKeys({ title: "p", type: "publishable", created_by: "u" });
      const secret = await db.service.createApiKeys({ title: "s", type: "secret", created_by: "u" });
      const revoked = await db.service.createApiKeys({ title: "r", type: "secret", created_by: "u" });
      await db.service.revoke(revoked.id, { revoked_by: "u" });
      const before = await db.service.listApiKeys();
      const missing = "apk_01ARZ3NDEKTSV4RRFFQ69G5FAV";
      const a = api();
      const cases: [string, () => request.Test, number, string, string | RegExp][] = [
        ["empty create", () => a.post("/", {}), 400, "invalid_data", "Invalid request: Field 'title' is required; Field 'type' is required"],
        ["numeric title", () => a.post("/", { title: 5, type: "secret" }), 400, "invalid_data", "Invalid request: Expected type: 'string' for field 'title', got: 'number'"],
        ["unknown type", () => a.post("/", { title: "x", type: "admin" }), 400, "invalid_data", "Invalid request: Expected: 'publishable, secret' for field 'type', but got: 'admin'"],
        ["created_by in the body", () => a.post("/", { title: "x", type: "secret", created_by: "me" }), 400, "invalid_data", "Invalid request: Unrecognized fields: 'created_by'"],
        ["an array body", () => a.post("/", [{ title: "x" }]), 400, "invalid_data", /^Invalid request: Expected an object/],
        ["malformed JSON", () => a.post("/").set("Content-Type", "application/json").send('{"title":'), 400, "invalid_data", "Invalid request: the body is not valid JSON"],
        ["a body over 16 kb", () => a.post("/", { title: "x".repeat(20_000), type: "secret" }), 413, "invalid_data", "Invalid request: the body is larger than 16kb"],
        ["limit not a number", () => a.get("/?limit=abc"), 400, "invalid_data", "Invalid request: 'limit' must be an integer from 0 to 1000"],
        ["negative limit", () => a.get("/?limit=-1"), 400, "invalid_data", /'limit'/],
        ["limit too large", () => a.get("/?limit=100000"), 400, "invalid_data", /'limit'/],
        ["negative offset", () => a.get("/?offset=-5"), 400, "invalid_data", /'offset'/],
        ["fractional offset", () => a.get("/?offset=1.5"), 400, "invalid_data", /'offset'/],
        ["order by an unknown field", () => a.get("/?order=salt"), 400, "invalid_data", /'order'/],
        ["order with two dashes", () => a.get("/?order=--title"), 400, "invalid_data", /'order'/],
        ["unknown fields", () => a.get("/?fields=id,salt"), 400, "invalid_data", /'fields'/],
        ["an unknown parameter", () => a.get("/?foo=bar"), 400, "invalid_data", "Invalid request: Unrecognized fields: 'foo'"],
        ["a bad date", () => a.get("/?created_at[$gt]=yesterday"), 400, "invalid_data", /Invalid request: Invalid filter 'created_at.\$gt'/],
        ["$like on a date", () => a.get("/?created_at[$like]=2024"), 400, "invalid_data", /operator not supported/],
        ["an unknown key type", () => a.get("/?type=admin"), 400, "invalid_data", /'publishable' or 'secret'/],
        ["a bad regular expression", () => a.get("/?title[$re]=("), 400, "invalid_data", /regular expression/],
        ["$or as a string", () => a.get("/?$or=x"), 400, "invalid_data", /'\$or'/],
        ["a malformed parameter name", () => a.get("/?a[b=1"), 400, "invalid_data", /malformed query parameter/],
        ["with_deleted not a boolean", () => a.get("/?with_deleted=maybe"), 400, "invalid_data", /'with_deleted'/],
        ["a list with a gap", () => a.get("/?id[0]=a&id[2]=b"), 400, "invalid_data", "Invalid request: query parameter 'id' has no index 1: list indexes must run from 0 without gaps"],
        ["a list that starts late", () => a.get("/?id[5]=a"), 400, "invalid_data", /^Invalid request: query parameter 'id' has no index 0/],
        ["an $or with a gap", () => a.get("/?$or[1][title]=a"), 400, "invalid_data", /^Invalid request: query parameter '\$or' has no index 0/],
        ["an $in with a gap", () => a.get("/?title[$in][0]=a&title[$in][3]=b"), 400, "invalid_data", /^Invalid request: query parameter 'title\[\$in\]' has no index 1/],
        ["an unknown id", () => a.get(`/${missing}`), 404, "not_found", `API Key with id: ${missing} was not found`],
        ["a malformed id", () => a.get("/bad%20id!"), 400, "invalid_data", /'id' must be an api key id/],
        ["a malformed read parameter", () => a.get(`/${secret.id}?a[b=1`), 400, "invalid_data", /^Invalid request: malformed query parameter/],
        ["an unknown read parameter", () => a.get(`/${secret.id}?expand=all`), 400, "invalid_data", "Invalid request: Unrecognized fields: 'expand'"],
        ["a numeric new title", () => a.post(`/${secret.id}`, { title: 5 }), 400, "invalid_data", /field 'title'/],
        ["an empty update", () => a.post(`/${secret.id}`, {}), 400, "invalid_data", /^Invalid request: Give at least one field to update: title, /],
        ["updating the type", () => a.post(`/${secret.id}`, { title: "x", type: "publishable" }), 400, "invalid_data", "Invalid request: Unrecognized fields: 'type'"],
        ["renaming an unknown key", () => a.post(`/${missing}`, { title: "x" }), 404, "not_found", `ApiKey with id "${missing}" not found`],
        ["revoke_in as a string", () => a.post(`/${secret.id}/revoke`, { revoke_in: "60" }), 400, "invalid_data", "Invalid request: Expected type: 'number' for field 'revoke_in', got: '60'"],
        ["revoke_in too large", () => a.post(`/${secret.id}/revoke`, { revoke_in: 1e300 }), 400, "invalid_data", /too large/],
        ["revoking twice", () => a.post(`/${revoked.id}/revoke`, {}), 400, "invalid_data", "There are 1 secret keys that are already revoked."],
        ["revoking an unknown key", () => a.post(`/${missing}/revoke`, {}), 404, "not_found", `ApiKey with id "${missing}" not found`],
        ["revoking with a reason", () => a.post(`/${secret.id}/revoke`, { reason: "x" }), 400, "invalid_data", "Invalid request: Unrecognized fields: 'reason'"],
        ["deleting an unrevoked key", () => a.delete(`/${secret.id}`), 400, "not_allowed", `Cannot delete api keys that are not revoked - ${secret.id}`],
        ["deleting an unknown key", () => a.delete(`/${missing}`), 404, "not_found", `API Key with id: ${missing} was not found`],
        ["channels on a secret key", () => a.post(`/${secret.id}/sales-channels`, { add: ["sc_1"] }), 400, "invalid_data", "Sales channels can only be associated with publishable API keys"],
        ["add as a string", () => a.post(`/${publishable.id}/sales-channels`, { add: "sc_1" }), 400, "invalid_data", /^Invalid request: .*field 'add'/],
        ["add with numbers", () => a.post(`/${publishable.id}/sales-channels`, { add: [1] }), 400, "invalid_data", /field 'add'/],
        ["an unknown channel field", () => a.post(`/${publishable.id}/sales-channels`, { channels: [] }), 400, "invalid_data", "Invalid request: Unrecognized fields: 'channels'"],
        ["channels that do not exist", () => a.post(`/${publishable.id}/sales-channels`, { add: ["sc_1", "nope", "gone"] }), 400, "invalid_data", "Sales channels with IDs nope, gone do not exist"],
        ["channels for an unknown key", () => a.post(`/${missing}/sales-channels`, { add: ["sc_1"] }), 404, "not_found", /was not found/],
        ["revoke_in not a number on roll", () => a.post(`/${secret.id}/roll`, { revoke_in: "x" }), 400, "invalid_data", /revoke_in/],
        ["rolling a revoked key", () => a.post(`/${revoked.id}/roll`, {}), 400, "not_allowed", /already revoked or scheduled/],
        ["rolling an unknown key", () => a.post(`/${missing}/roll`, {}), 404, "not_found", /not found/],
      ];
      assert.ok(cases.length >= 30);
      for (const [label, send, status, type, message] of cases) {
        const res = await send();
        assert.equal(res.status, status, `${label}: ${JSON.stringify(res.body)}`);
        assert.equal(res.body.type, type, label);
        if (typeof message === "string") assert.equal(res.body.message, message, label);
        else assert.match(res.body.message, message, label);
      }
      assert.deepEqual(await db.service.listApiKeys(), before);
    });
  },
  // The middleware and the router sit above the store: PostgreSQL, and SQLite and MariaDB for
  // what differs below them (dates, case, links).
  ["postgres", "sqlite", "mariadb"],
);

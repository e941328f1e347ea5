// The admin router's audit log and usage routes: the calling key recorded as the actor, filters
// and pages, and a key's verifications by hour or day; every answer checked against the
// OpenAPI document on the way out (adminRouterOn).
import assert from "node:assert/strict";
import type { Server } from "node:http";
import request from "supertest";
import type { ApiKeyDTO } from "../../lib/types";
import { forEachBackend } from "../helpers/backends";
import { createAdminApp } from "../helpers/create-app";

forEachBackend(
  "admin router: audit log and usage",
  (db) => {
    let app: Server;
    let admin: ApiKeyDTO;
    let auth: string;

    beforeEach(async () => {
      admin = await db.service.createApiKeys({ title: "admin", type: "secret", created_by: "user_1" });
      auth = `Basic ${Buffer.from(`${admin.token}:`).toString("base64")}`;
      app = createAdminApp("express5", db.service);
    });
    const get = (path: string) => request(app).get(`/admin/api-keys${path}`).set("Authorization", auth);
    const post = (path: string, body: object) => request(app).post(`/admin/api-keys${path}`).set("Authorization", auth).send(body);

    it("records the calling key as the actor of every change, and lists the log by key, actor and action", async () => {
      const created = await post("/", { title: "Storefront", type: "publishable" });
      const id = created.body.api_key.id as string;
      await post(`/${id}`, { title: "Web store" });
      await post(`/${id}/revoke`, {});
      const log = await get(`/audit-log?key_id=${id}`);
      assert.equal(log.status, 200);
      assert.deepEqual(
        log.body.events.map((event: { action: string; actor_id: string }) => [event.action, event.actor_id]),
        [["created", admin.id], ["updated", admin.id], ["revoked", admin.id]],
      );
      assert.deepEqual(log.body.events[1].changes, { title: { before: "Storefront", after: "Web store" } });
      assert.deepEqual([log.body.count, log.body.offset, log.body.limit], [3, 0, 20]);
      const page = await get(`/audit-log?actor_id=${admin.id}&action[]=updated&action[]=revoked&offset=1&limit=1`);
      assert.deepEqual([page.body.events.map((event: { action: string }) => event.action), page.body.count], [["revoked"], 2]);
      assert.equal(JSON.stringify(log.body).includes(created.body.api_key.token), false, "no token in the log");
    });

    it("answers a key's verifications by hour and by day, and 404 for an unknown key", async () => {
      const key = await db.service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
      const app2 = await db.open();
      await app2.verifyApiKey(key.token);
      await app2.verifyApiKey(key.token, { scopes: ["x:y"] });
      await app2.close();
      const hourly = await get(`/${key.id}/usage`);
      assert.equal(hourly.status, 200);
      assert.deepEqual(
        hourly.body.usage.map((row: { time: string; valid: number; forbidden: number }) => [row.valid, row.forbidden]),
        [[1, 1]],
      );
      const daily = await get(`/${key.id}/usage?granularity=day&from=${encodeURIComponent(new Date(db.clock.now().getTime() - 86_400_000).toISOString())}`);
      assert.equal(daily.body.usage[0].time, `${db.clock.now().toISOString().slice(0, 10)}T00:00:00.000Z`);
      assert.equal((await get("/apk_unknown/usage")).status, 404);
    });

    it("refuses malformed queries with 400 and changes nothing", async () => {
      for (const path of ["/audit-log?action=exploded", "/audit-log?limit=-1", "/audit-log?nope=1", "/apk_x/usage?granularity=week", "/apk_x/usage?from=yesterday", "/apk_x/usage?key_id=other"]) {
        const answer = await get(path);
        assert.equal(answer.status, 400, path);
        assert.equal(answer.body.type, "invalid_data", path);
      }
    });
  },
  ["postgres", "sqlite"],
);

// IP allow-lists on every surface: stored canonical on every backend, checked on every
// verification (cached keys too, with no I/O), through the middleware with Express's `trust
// proxy`, on a bare node:http server and with IPv4-mapped addresses; a key may not widen its own.
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import express from "express";
import request from "supertest";
import { apiKeyAuth } from "../../middleware/api-key-auth";
import { rejectsWith } from "../helpers/assertions";
import { forEachBackend } from "../helpers/backends";
import { createAdminApp } from "../helpers/create-app";

forEachBackend("IP allow-lists", (db) => {
  const secret = (allowed_ips?: string[]) => db.service.createApiKeys({ title: "k", type: "secret", created_by: "u", ...(allowed_ips ? { allowed_ips } : {}) });

  it("stores lists in canonical form, defaults to none, clears with [], and refuses bad or too many entries", async () => {
    const key = await secret(["10.0.0.0/8", "2001:DB8::1", "::ffff:192.0.2.1", "10.0.0.0/8"]);
    assert.deepEqual(key.allowed_ips, ["10.0.0.0/8", "2001:db8::1", "192.0.2.1"]);
    assert.deepEqual((await db.service.retrieveApiKey(key.id)).allowed_ips, key.allowed_ips);
    assert.deepEqual((await secret()).allowed_ips, []);
    assert.deepEqual((await db.service.updateApiKeys(key.id, { allowed_ips: ["203.0.113.0/24"] })).allowed_ips, ["203.0.113.0/24"]);
    assert.deepEqual((await db.service.updateApiKeys(key.id, { allowed_ips: [] })).allowed_ips, []);
    await rejectsWith(secret(["10.0.0.0/33"]), "invalid_data", /allowed_ips.*10\.0\.0\.0\/33/);
    await rejectsWith(secret(["localhost"]), "invalid_data", /allowed_ips/);
    await rejectsWith(secret("10.0.0.1" as never), "invalid_data", /allowed_ips/);
    await rejectsWith(secret(Array.from({ length: 101 }, (_, i) => `10.0.0.${i}`)), "invalid_data", /at most 100/);
    const rolled = await db.service.roll((await secret(["10.0.0.0/8"])).id, { revoked_by: "u" });
    assert.deepEqual(rolled.allowed_ips, ["10.0.0.0/8"], "a successor keeps the list");
  });

  it("refuses a key with a list for any address outside it, or none, on every verification, cached or not", async () => {
    const key = await secret(["10.0.0.0/8", "2001:db8::/32"]);
    const open = await secret();
    const code = async (ip?: string) => (await db.service.verifyApiKey(key.token, ip === undefined ? {} : { ip })).code;
    assert.equal(await code("10.1.2.3"), "valid");
    assert.equal(await code("192.0.2.1"), "ip_not_allowed", "the key is cached now: checked all the same");
    assert.equal(await code("::ffff:10.9.9.9"), "valid");
    assert.equal(await code("2001:db8:ab::1"), "valid");
    assert.equal(await code(undefined), "ip_not_allowed");
    assert.equal(await code("garbage"), "ip_not_allowed");
    assert.equal((await db.service.verifyApiKey(open.token, { ip: "198.51.100.1" })).code, "valid");
    assert.equal((await db.service.verifyApiKey(open.token)).code, "valid");
    await rejectsWith(db.service.verifyApiKey(key.token, { ip: 42 as never }), "invalid_data", /ip/);
    // The allow-list is checked before scopes: a caller from elsewhere learns nothing more.
    assert.equal((await db.service.verifyApiKey(key.token, { ip: "192.0.2.1", scopes: ["x:y"] })).code, "ip_not_allowed");
  });

  it("refuses a key that would widen or remove its own list, and lets it narrow it", async () => {
    const admin = await secret(["10.0.0.0/8"]);
    const as = { actingKey: admin.id };
    for (const allowed_ips of [[], ["10.0.0.0/7"], ["10.0.0.0/8", "192.0.2.1"]]) {
      await rejectsWith(db.service.updateApiKeys(admin.id, { allowed_ips }, as), "forbidden", /allowed_ips/);
    }
    assert.deepEqual((await db.service.updateApiKeys(admin.id, { allowed_ips: ["10.1.0.0/16"] }, as)).allowed_ips, ["10.1.0.0/16"]);
    // Another key's list is the acting key's to set, as its other policy fields are.
    const other = await secret(["10.0.0.0/8"]);
    assert.deepEqual((await db.service.updateApiKeys(other.id, { allowed_ips: [] }, as)).allowed_ips, []);
  });
});

forEachBackend(
  "IP allow-lists over HTTP",
  (db) => {
    it("judges req.ip on Express, honouring X-Forwarded-For only behind `trust proxy`", async () => {
      const key = await db.service.createApiKeys({ title: "k", type: "secret", created_by: "u", allowed_ips: ["203.0.113.0/24"] });
      const local = await db.service.createApiKeys({ title: "l", type: "secret", created_by: "u", allowed_ips: ["127.0.0.1"] });
      const appWith = (trust: boolean) => {
        const app = express();
        if (trust) app.set("trust proxy", "loopback");
        app.get("/", apiKeyAuth({ service: db.service }), (_req, res) => void res.json({ ok: true }));
        return app;
      };
      const get = (app: express.Express, token: string, forwarded?: string) => {
        const req = request(app).get("/").auth(token, "");
        return forwarded ? req.set("X-Forwarded-For", forwarded) : req;
      };
      const trusted = appWith(true);
      assert.equal((await get(trusted, key.token, "203.0.113.9")).status, 200);
      const refused = await get(trusted, key.token, "198.51.100.7");
      assert.deepEqual([refused.status, refused.body], [403, { type: "forbidden", message: "Forbidden: the API key is not accepted from this address" }]);
      assert.ok(!refused.text.includes("203.0.113"), "the list is not revealed");
      const untrusting = appWith(false);
      assert.equal((await get(untrusting, key.token, "203.0.113.9")).status, 403, "a forwarded address counts only behind trust proxy");
      assert.equal((await get(untrusting, local.token, "203.0.113.9")).status, 200, "the socket's address: 127.0.0.1");
    });

    it("judges the socket's address on a bare node:http server, an IPv4-mapped one as IPv4", async () => {
      const key = await db.service.createApiKeys({ title: "k", type: "secret", created_by: "u", allowed_ips: ["127.0.0.0/8"] });
      const elsewhere = await db.service.createApiKeys({ title: "e", type: "secret", created_by: "u", allowed_ips: ["192.0.2.1"] });
      const server = http.createServer((req, res) =>
        apiKeyAuth({ service: db.service })(req, res, () => {
          res.end(req.socket.remoteAddress);
        }),
      );
      // Listening on every IPv6 address: an IPv4 client arrives as ::ffff:127.0.0.1.
      await new Promise<void>((resolve) => server.listen(0, "::", resolve));
      try {
        const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
        const basic = (token: string) => ({ authorization: `Basic ${Buffer.from(`${token}:`).toString("base64")}` });
        const ok = await fetch(url, { headers: basic(key.token) });
        assert.deepEqual([ok.status, await ok.text()], [200, "::ffff:127.0.0.1"]);
        assert.equal((await fetch(url, { headers: basic(elsewhere.token) })).status, 403);
      } finally {
        server.close();
      }
    });

    it("sets, shows and clears a list through the admin router", async () => {
      const admin = await db.service.createApiKeys({ title: "admin", type: "secret", created_by: "u" });
      const app = createAdminApp("express5", db.service);
      const auth = `Basic ${Buffer.from(`${admin.token}:`).toString("base64")}`;
      const created = await request(app).post("/admin/api-keys/").set("Authorization", auth).send({ title: "k", type: "secret", allowed_ips: ["10.0.0.0/8"] });
      assert.deepEqual(created.body.api_key.allowed_ips, ["10.0.0.0/8"]);
      const cleared = await request(app).post(`/admin/api-keys/${created.body.api_key.id}`).set("Authorization", auth).send({ allowed_ips: [] });
      assert.deepEqual(cleared.body.api_key.allowed_ips, []);
      const bad = await request(app).post("/admin/api-keys/").set("Authorization", auth).send({ title: "k", type: "secret", allowed_ips: ["nope"] });
      assert.deepEqual([bad.status, bad.body.type], [400, "invalid_data"]);
    });
  },
  ["postgres"],
);

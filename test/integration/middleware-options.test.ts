import assert from "node:assert/strict";
import http from "node:http";
import express from "express";
import request from "supertest";
import { ApiKeyError } from "../../lib/errors";
import { apiKeyAuth } from "../../middleware/api-key-auth";
import type { AuthenticatedRequest } from "../../middleware/request-context";
import { forEachBackend } from "../helpers/backends";

forEachBackend(
  "apiKeyAuth options",
  (db) => {
    it("works mounted with router.use and app.use as well as per route", async () => {
      const key = await db.service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
      const app = express();
      const router = express.Router();
      router.use(apiKeyAuth({ service: db.service }));
      router.get("/thing", (req, res) => {
        res.json({ actor: (req as AuthenticatedRequest).auth_context?.actor_id });
      });
      app.use("/admin", router);
      app.use(apiKeyAuth({ service: db.service, type: "publishable", required: false }));
      app.get("/open", (_req, res) => {
        res.json({ ok: true });
      });
      assert.deepEqual((await request(app).get("/admin/thing").set("Authorization", `Basic ${key.token}`)).body, { actor: key.id });
      assert.equal((await request(app).get("/admin/thing")).status, 401);
      assert.deepEqual((await request(app).get("/open")).body, { ok: true });
    });

    it("getToken reads the key from wherever the app keeps it", async () => {
      const key = await db.service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
      const app = express();
      app.get("/", apiKeyAuth({ service: db.service, getToken: (req) => new URL(req.url!, "http://x").searchParams.get("key") ?? undefined }), (req, res) => {
        res.json({ actor: (req as AuthenticatedRequest).auth_context?.actor_id });
      });
      assert.deepEqual((await request(app).get(`/?key=${key.token}`)).body, { actor: key.id });
      assert.equal((await request(app).get("/")).status, 401);
      assert.equal((await request(app).get("/?key=sk_nope")).status, 401);
    });

    it("onError can hand rejections to the app's own error handler", async () => {
      const app = express();
      app.get("/", apiKeyAuth({ service: db.service, onError: (error, _req, _res, next) => next(error) }), (_req, res) => {
        res.send("never");
      });
      app.use((error: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
        assert.ok(error instanceof ApiKeyError);
        res.status(418).json({ handled: error.type, status: error.status });
      });
      const res = await request(app).get("/");
      assert.equal(res.status, 418);
      assert.deepEqual(res.body, { handled: "unauthorized", status: 401 });
    });

    it("an error thrown downstream reaches the error handler once, not as an auth failure", async () => {
      const key = await db.service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
      const app = express();
      let handled = 0;
      app.get("/", apiKeyAuth({ service: db.service }), () => {
        throw new Error("route bug");
      });
      app.use((error: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
        handled++;
        res.status(500).json({ message: error.message });
      });
      const res = await request(app).get("/").set("Authorization", `Basic ${key.token}`);
      assert.deepEqual([res.status, res.body, handled], [500, { message: "route bug" }, 1]);
    });

    it("without a service option, uses the latest initialize()", async () => {
      const key = await db.service.createApiKeys({ title: "k", type: "publishable", created_by: "u" });
      const latest = await db.open();
      const server = http.createServer((req, res) =>
        apiKeyAuth({ type: "publishable" })(req, res, () => res.end((req as AuthenticatedRequest).api_key?.id)),
      );
      assert.equal((await request(server).get("/").set("x-publishable-api-key", key.token)).text, key.id);
      await latest.close();
      await db.service.close();
      const res = await request(server).get("/").set("x-publishable-api-key", key.token);
      assert.equal(res.status, 503);
      assert.deepEqual(res.body, {
        type: "unavailable",
        message: "No API key service: await initialize() before serving requests, or pass `service`",
      });
    });
  },
  ["postgres"],
);

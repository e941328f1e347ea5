import assert from "node:assert/strict";
import type { Server } from "node:http";
import { gzipSync } from "node:zlib";
import request from "supertest";
import { UNKNOWN_ERROR_MESSAGE } from "../../lib/errors";
import type { ApiKeyService } from "../../lib/service";
import type { ApiKeyDTO } from "../../lib/types";
import type { AdminRouterOptions } from "../../middleware/admin-router";
import { forEachBackend } from "../helpers/backends";
import { EXPRESS_VERSIONS, adminRouterOn, createAdminApp, expressApp } from "../helpers/create-app";

const JSON_ONLY =
  "Invalid request: send the body as JSON, with the header Content-Type: application/json ({} when there is nothing to send)";

/** An error response as the contract has it: JSON with exactly `type` and `message`, never cached. */
function assertJsonError(res: request.Response, status: number, type: string, message: string | RegExp, label: string): void {
  assert.equal(res.status, status, `${label}: ${res.status} ${res.text.slice(0, 200)}`);
  assert.match(res.headers["content-type"] ?? "", /^application\/json/, label);
  assert.deepEqual(Object.keys(res.body as object).sort(), ["message", "type"], label);
  assert.equal(res.body.type, type, label);
  if (typeof message === "string") assert.equal(res.body.message, message, label);
  else assert.match(res.body.message, message, label);
  assert.equal(res.headers["cache-control"], "no-store", label);
}

/** A JSON post whose body is sent as these bytes, declared gzip-compressed. */
function gzipped(req: request.Test, bytes: Buffer): request.Test {
  // Without a serializer superagent would JSON-encode the Buffer; it sends one as it is, whatever its types say.
  const asIs = (body: Buffer) => body as unknown as string;
  return req.set("Content-Type", "application/json").set("Content-Encoding", "gzip").serialize(asIs).send(bytes);
}

function captureLogger() {
  const errors: unknown[] = [];
  return { errors, logger: { warn: () => {}, error: (_message: string, cause?: unknown) => void errors.push(cause) } };
}

for (const version of EXPRESS_VERSIONS) {
  forEachBackend(
    `admin router hardening on ${version}`,
    (db) => {
      let admin: ApiKeyDTO;
      let secret: ApiKeyDTO;
      let publishable: ApiKeyDTO;
      let auth: string;

      beforeEach(async () => {
        [admin, secret, publishable] = (await db.service.createApiKeys([
          { title: "admin", type: "secret", created_by: "u" },
          { title: "s", type: "secret", created_by: "u" },
          { title: "p", type: "publishable", created_by: "u" },
        ])) as [ApiKeyDTO, ApiKeyDTO, ApiKeyDTO];
        auth = `Basic ${admin.token}`;
      });

      const appWith = (service: ApiKeyService, options: AdminRouterOptions = {}): Server => createAdminApp(version, service, options);
      const as = (app: Server) => ({
        get: (path: string) => request(app).get(`/admin/api-keys${path}`).set("Authorization", auth),
        delete: (path: string) => request(app).delete(`/admin/api-keys${path}`).set("Authorization", auth),
        post: (path: string) => request(app).post(`/admin/api-keys${path}`).set("Authorization", auth),
        json: (path: string, body: unknown = {}) =>
          request(app).post(`/admin/api-keys${path}`).set("Authorization", auth).set("Content-Type", "application/json").send(JSON.stringify(body)),
      });

      it("answers malformed paths and bodies with JSON errors and their 4xx status, never an HTML page", async () => {
        const a = as(appWith(db.service));
        const before = await db.service.listApiKeys();
        const percent = /^Invalid request: the path holds malformed percent-encoding$/;
        const cases: [string, () => request.Test, number, string | RegExp][] = [
          ["a truncated UTF-8 escape in the id", () => a.get("/%E0%A4%A"), 400, percent],
          ["a bad escape before /revoke", () => a.json("/%zz/revoke"), 400, percent],
          ["a bad escape before /roll", () => a.json("/%zz/roll"), 400, percent],
          ["a bad escape before /sales-channels", () => a.json("/%E0%A4%A/sales-channels", { add: ["sc_1"] }), 400, percent],
          ["a bad escape in an update", () => a.json("/%zz", { title: "x" }), 400, percent],
          ["a bad escape in a delete", () => a.delete("/%zz"), 400, percent],
          ["malformed JSON", () => a.post(`/${secret.id}`).set("Content-Type", "application/json").send('{"title":'), 400, "Invalid request: the body is not valid JSON"],
          ["a JSON string", () => a.post(`/${secret.id}`).set("Content-Type", "application/json").send('"title"'), 400, "Invalid request: the body is not valid JSON"],
          ["a body over 16 kb", () => a.json("/", { title: "x".repeat(20_000), type: "secret" }), 413, "Invalid request: the body is larger than 16kb"],
          ["an unsupported charset", () => a.post(`/${secret.id}`).set("Content-Type", "application/json; charset=latin1").send('{"title":"x"}'), 415, "Invalid request: the body's charset is not supported: send UTF-8"],
          ["an unknown Content-Encoding", () => a.post(`/${secret.id}`).set("Content-Type", "application/json").set("Content-Encoding", "zstd-9").send('{"title":"x"}'), 415, /^Invalid request: the body's Content-Encoding is not supported/],
          ["a gzip body over 16 kb once inflated", () => gzipped(a.post("/"), gzipSync(JSON.stringify({ title: "x".repeat(50_000), type: "secret" }))), 413, "Invalid request: the body is larger than 16kb"],
          ["a gzip header on a plain body", () => gzipped(a.post("/"), Buffer.from('{"title":"x","type":"secret"}')), 400, /^Invalid request: /],
        ];
        for (const [label, send, status, message] of cases) assertJsonError(await send(), status, "invalid_data", message, label);
        assert.deepEqual(await db.service.listApiKeys(), before);
      });

      it("keeps the 4xx status of any error a hook throws, as invalid_data JSON", async () => {
        const conflict = Object.assign(new Error("sales channel sc_1 is being migrated"), { status: 409 });
        const a = as(appWith(db.service, { findMissingSalesChannels: async () => Promise.reject(conflict) }));
        assertJsonError(await a.json(`/${publishable.id}/sales-channels`, { add: ["sc_1"] }), 409, "invalid_data", "Invalid request: sales channel sc_1 is being migrated", "409");
        assert.deepEqual(await db.service.listLinks(publishable.id), []);
      });

      it("answers an unexpected exception as a 500 unknown_error JSON, its cause logged once and never shown", async () => {
        const { errors, logger } = captureLogger();
        const service = await db.open({ logger });
        const bug = new TypeError("Cannot read properties of undefined (reading 'map')");
        const channels = as(appWith(service, { findMissingSalesChannels: async () => Promise.reject(bug) }));
        const res = await channels.json(`/${publishable.id}/sales-channels`, { add: ["sc_1"] });
        assertJsonError(res, 500, "unknown_error", UNKNOWN_ERROR_MESSAGE, "a rejecting hook");
        assert.equal(res.text.includes("map"), false);
        assert.deepEqual(errors, [bug]);

        const actorBug = new RangeError("actor lookup failed");
        const actor = as(appWith(service, { actor: () => { throw actorBug; } }));
        assertJsonError(await actor.get("/"), 500, "unknown_error", UNKNOWN_ERROR_MESSAGE, "a throwing actor");
        assert.deepEqual(errors, [bug, actorBug]);
      });

      it("takes writes only as application/json: forms, text and typeless posts are 415 and change nothing", async () => {
        const a = as(appWith(db.service));
        const before = await db.service.listApiKeys();
        const routes: [string, Record<string, string>][] = [
          ["/", { title: "x", type: "secret" }],
          [`/${secret.id}`, { title: "renamed" }],
          [`/${secret.id}/revoke`, {}],
          [`/${secret.id}/roll`, {}],
          [`/${publishable.id}/sales-channels`, {}],
        ];
        for (const [path, fields] of routes) {
          const form = new URLSearchParams(fields).toString();
          const sends: [string, () => request.Test][] = [
            ["a urlencoded form", () => a.post(path).type("form").send(form)],
            ["a multipart form", () => Object.entries({ x: "1", ...fields }).reduce((req, [name, value]) => req.field(name, value), a.post(path))],
            ["a text/plain form carrying JSON", () => a.post(path).set("Content-Type", "text/plain").send(JSON.stringify(fields))],
            ["no body and no type", () => a.post(path)],
            ["a JSON suffix type", () => a.post(path).set("Content-Type", "application/merge-patch+json").send(JSON.stringify(fields))],
          ];
          for (const [label, send] of sends) assertJsonError(await send(), 415, "invalid_data", JSON_ONLY, `${label} to ${path}`);
        }
        assert.deepEqual(await db.service.listApiKeys(), before);

        // What is accepted: the type in any case, with any charset, and an empty object for no fields.
        const renamed = await a.post(`/${secret.id}`).set("Content-Type", "Application/JSON; charset=UTF-8").send('{"title":"renamed"}');
        assert.equal(renamed.status, 200, renamed.text);
        const revoked = await a.post(`/${secret.id}/revoke`).set("Content-Type", "application/json").send("{}");
        assert.equal(revoked.status, 200, revoked.text);
        assert.equal((await db.service.retrieveApiKey(secret.id)).revoked_by, admin.id);
      });

      it("never quotes a secret token back in an error, wherever the client put it", async () => {
        const a = as(appWith(db.service));
        const token = secret.token;
        const leaks = (text: string) => Array.from({ length: token.length - 10 }, (_, i) => token.slice(3 + i, 11 + i)).some((part) => text.toLowerCase().includes(part.toLowerCase()));
        const responses: [string, request.Test][] = [
          ["a parameter name", a.get(`/?x${token}=1`)],
          ["a parameter name cut at 40", a.get(`/?${"p".repeat(30)}${token}=1`)],
          ["a malformed parameter name", a.get(`/?${token}[a=1`)],
          ["a gap after a token name", a.get(`/?${token}[3]=1`)],
          ["an id", a.get(`/x${token}`)],
          ["a renamed id", a.json(`/k${token}`, { title: "t" })],
          ["a body value cut at 40", a.json("/", { title: "t", type: `${"a".repeat(28)}${token}` })],
          ["a body field name", a.json("/", { title: "t", type: "secret", [`x${token}`]: 1 })],
          ["a link id", a.json(`/${publishable.id}/sales-channels`, { add: `token=${token}` })],
          ["a charset", a.post(`/${secret.id}`).set("Content-Type", `application/json; charset=x${token}`).send("{}")],
        ];
        for (const [label, send] of responses) {
          const res = await send;
          assert.ok(res.status >= 400 && res.status < 500, `${label}: ${res.status}`);
          assert.equal(leaks(res.text), false, `${label}: ${res.text}`);
        }
      });

      it("marks every admin response Cache-Control: no-store, above all those with a plaintext token", async () => {
        const a = as(appWith(db.service));
        const created = await a.json("/", { title: "new", type: "secret" });
        const rolled = await a.json(`/${secret.id}/roll`, { revoke_in: 60 });
        for (const res of [created, rolled]) {
          assert.equal(res.status, 200);
          assert.match(res.body.api_key.token, /^sk_/);
          assert.equal(res.headers["cache-control"], "no-store");
        }
        const responses: [string, request.Response][] = [
          ["list", await a.get("/")],
          ["read", await a.get(`/${publishable.id}`)],
          ["update", await a.json(`/${publishable.id}`, { title: "p2" })],
          ["links", await a.json(`/${publishable.id}/sales-channels`, { add: ["sc_1"] })],
          ["revoke", await a.json(`/${publishable.id}/revoke`)],
          ["delete", await a.delete(`/${publishable.id}`)],
          ["not found", await a.get(`/${publishable.id}`)],
          ["bad query", await a.get("/?limit=x")],
          ["unsupported type", await a.post("/")],
        ];
        for (const [label, res] of responses) {
          assert.ok(res.status === 200 || res.status >= 400, label);
          assert.equal(res.headers["cache-control"], "no-store", `${label}: ${res.status}`);
        }
        const open = expressApp(version);
        open.use("/keys", adminRouterOn(version, { service: db.service }));
        const anonymous = await request(open).get("/keys");
        assert.deepEqual([anonymous.status, anonymous.headers["cache-control"]], [401, "no-store"]);
      });
    },
    ["postgres"],
  );
}

import assert from "node:assert/strict";
import express from "express";
import fc from "fast-check";
import request from "supertest";
import { ApiKeyError } from "../../lib/errors";
import type { ApiKeyDTO } from "../../lib/types";
import { apiKeyAuth } from "../../middleware/api-key-auth";
import { readSecretCredential } from "../../middleware/credentials";
import { forEachBackend } from "../helpers/backends";
import { adminRouterOn } from "../helpers/create-app";

/** Each property runs for at most this long, so the suite stays a few seconds. */
const TIME_LIMIT_MS = 4000;
const settings = { numRuns: 300, interruptAfterTimeLimit: TIME_LIMIT_MS };

const printable = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((code) => String.fromCharCode(code)), maxLength: 120 });

/** A real token, changed by a few random edits: the near misses an attacker or a typo produce. */
function mutated(token: string) {
  const edit = fc.oneof(
    fc.record({ kind: fc.constant("replace"), at: fc.nat(), char: fc.constantFrom(..."aZ09_-+/=:. ") }),
    fc.record({ kind: fc.constant("insert"), at: fc.nat(), char: fc.constantFrom(..."aZ09_:") }),
    fc.record({ kind: fc.constant("delete"), at: fc.nat(), char: fc.constant("") }),
  );
  return fc.array(edit, { minLength: 1, maxLength: 3 }).map((edits) =>
    edits.reduce((text, { kind, at, char }) => {
      const index = at % (text.length + 1);
      if (kind === "insert") return text.slice(0, index) + char + text.slice(index);
      return text.slice(0, index) + (kind === "replace" ? char : "") + text.slice(index + 1);
    }, token),
  );
}

function isJsonError(body: unknown): boolean {
  const error = body as { type?: unknown; message?: unknown };
  return typeof error?.type === "string" && typeof error.message === "string" && Object.keys(error).length === 2;
}

forEachBackend(
  "fuzzing",
  (db) => {
    let app: express.Express;
    let admin: ApiKeyDTO;
    let store: ApiKeyDTO;
    let auth: string;

    beforeEach(async () => {
      admin = await db.service.createApiKeys({ title: "admin", type: "secret", created_by: "u" });
      store = await db.service.createApiKeys({ title: "store", type: "publishable", created_by: "u" });
      auth = `Basic ${Buffer.from(`${admin.token}:`).toString("base64")}`;
      app = express();
      app.get("/store", apiKeyAuth({ service: db.service, type: "publishable" }), (_req, res) => void res.json({ ok: true }));
      app.use("/admin/api-keys", apiKeyAuth({ service: db.service }), adminRouterOn("express5", { service: db.service }));
    });

    it("credential headers: never a 5xx, always JSON, never a false accept", async function () {
      this.timeout(30_000);
      const secretHeader = fc.oneof(
        printable,
        mutated(admin.token).map((token) => `Basic ${token}`),
        mutated(`${admin.token}:`).map((text) => `Basic ${Buffer.from(text).toString("base64")}`),
        mutated(auth),
        fc.tuple(fc.constantFrom("Basic ", "basic ", "Bearer ", ""), printable).map(([scheme, value]) => scheme + value),
      );
      await fc.assert(
        fc.asyncProperty(secretHeader, async (header) => {
          const res = await request(app).get("/admin/api-keys?limit=0").set("Authorization", header);
          if (res.status === 200) {
            // Only the real key, in one of its accepted spellings, may get through. HTTP drops
            // the spaces and tabs around a header value before the middleware sees it.
            const delivered = header.replace(/^[ \t]+|[ \t]+$/g, "");
            const credential = readSecretCredential(delivered);
            assert.equal(credential.kind === "token" && credential.token, admin.token, header);
            return;
          }
          assert.equal(res.status, 401, `${header}: ${res.status}`);
          assert.ok(isJsonError(res.body), JSON.stringify(res.body));
        }),
        settings,
      );
      await fc.assert(
        fc.asyncProperty(fc.oneof(printable, mutated(store.token)), async (value) => {
          const res = await request(app).get("/store").set("x-publishable-api-key", value);
          if (res.status === 200) return assert.equal(value.trim(), store.token);
          assert.equal(res.status, 400, `${value}: ${res.status}`);
          assert.ok(isJsonError(res.body));
        }),
        settings,
      );
    });

    it("admin bodies: never a 5xx, and a rejected write changes nothing", async function () {
      this.timeout(30_000);
      const route = fc.constantFrom("/", `/${store.id}`, `/${store.id}/revoke`, `/${store.id}/sales-channels`, `/${store.id}/roll`, `/${admin.id}/sales-channels`);
      await fc.assert(
        fc.asyncProperty(route, fc.jsonValue({ maxDepth: 3 }), async (path, body) => {
          const before = await db.service.listApiKeys();
          const res = await request(app)
            .post(`/admin/api-keys${path}`)
            .set("Authorization", auth)
            .set("Content-Type", "application/json")
            .send(JSON.stringify(body));
          assert.ok(res.status < 500, `${path} ${JSON.stringify(body)}: ${res.status} ${JSON.stringify(res.body)}`);
          if (res.status >= 400) {
            assert.ok(isJsonError(res.body), JSON.stringify(res.body));
            assert.deepEqual(await db.service.listApiKeys(), before, `${path} ${JSON.stringify(body)} changed the keys`);
          }
        }),
        { ...settings, numRuns: 150 },
      );
    });

    it("admin paths and content types: every error is JSON with a 4xx status, and nothing changes", async function () {
      this.timeout(30_000);
      const hex = fc.constantFrom(..."0123456789abcdefAFgz%");
      const escape = fc.tuple(hex, hex).map(([high, low]) => `%${high}${low}`);
      const segment = fc
        .array(fc.oneof(fc.constantFrom(..."aZ09_-~!*'()"), escape, fc.constantFrom("%E0%A4%A", "%C3", "%", "%25", "%2F", `${store.id}`)), { minLength: 1, maxLength: 6 })
        .map((parts) => parts.join(""))
        // The real id alone is no malformed path: a revoke of it would rightly change the key.
        .filter((id) => id !== store.id);
      const target = fc.oneof(
        fc.tuple(fc.constantFrom("get", "post", "delete"), segment).map(([method, id]) => [method, `/${id}`] as const),
        fc.tuple(segment, fc.constantFrom("revoke", "roll", "sales-channels")).map(([id, action]) => ["post", `/${id}/${action}`] as const),
      );
      const contentType = fc.oneof(
        fc.constant(undefined),
        fc.constantFrom("application/json", "Application/JSON; charset=utf-8", "application/json; charset=latin1", "application/json; charset=utf-16", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/problem+json"),
        printable.filter((text) => text.trim() !== ""),
      );
      const body = fc.oneof(fc.constant(undefined), printable, fc.jsonValue({ maxDepth: 2 }).map((value) => JSON.stringify(value)));
      const before = await db.service.listApiKeys();
      await fc.assert(
        fc.asyncProperty(target, contentType, body, async ([method, path], type, payload) => {
          let req = request(app)[method](`/admin/api-keys${path}`).set("Authorization", auth);
          if (type !== undefined) req = req.set("Content-Type", type);
          if (payload !== undefined) req = req.send(payload);
          const res = await req;
          const label = `${method} ${path} ${type} ${payload}: ${res.status} ${res.text.slice(0, 200)}`;
          assert.ok(res.status === 200 || (res.status >= 400 && res.status < 500), label);
          assert.equal(res.headers["cache-control"], "no-store", label);
          if (res.status >= 400) assert.ok(isJsonError(res.body), label);
        }),
        settings,
      );
      // Random ids name no key, so every write was refused: the keys are as they were.
      assert.deepEqual(await db.service.listApiKeys(), before);
    });

    it("admin query strings: 200 or a 400 JSON error, never a 5xx", async function () {
      this.timeout(30_000);
      const name = fc.constantFrom("q", "id", "title", "token", "type", "created_at", "revoked_at", "$or", "$and", "limit", "offset", "order", "fields", "with_deleted", "foo", "__proto__");
      const suffix = fc.constantFrom("", "[]", "[$gt]", "[$in][]", "[$re]", "[$exists]", "[0][title]", "[1][title]", "[0][type]", "[5]", "[$in][2]", "[$not][$eq]", "[", "]", "[a][b][c][d][e][f]");
      const value = fc.oneof(printable, fc.constantFrom("true", "2026-01-01", "-created_at", "id,title", "secret", "(", "9".repeat(30)));
      const pair = fc.tuple(name, suffix, value).map(([n, s, v]) => `${encodeURIComponent(n + s)}=${encodeURIComponent(v)}`);
      await fc.assert(
        fc.asyncProperty(fc.constantFrom("", `/${store.id}`), fc.array(pair, { maxLength: 6 }), async (path, pairs) => {
          const res = await request(app).get(`/admin/api-keys${path}?${pairs.join("&")}`).set("Authorization", auth);
          assert.ok(res.status === 200 || res.status === 400, `${path}?${pairs.join("&")}: ${res.status} ${JSON.stringify(res.body)}`);
          if (res.status === 400) assert.ok(isJsonError(res.body));
        }),
        settings,
      );
    });
  },
  ["postgres"],
);

forEachBackend("fuzzing the filter language", (db) => {
  it("any value as filters or config either lists or is invalid_data", async function () {
    this.timeout(30_000);
    await db.service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
    const field = fc.constantFrom("q", "id", "title", "token", "type", "revoked_at", "created_at", "created_by", "$and", "$or", "salt");
    const operator = fc.constantFrom("$eq", "$ne", "$in", "$nin", "$gt", "$lt", "$like", "$ilike", "$re", "$exists", "$not", "$foo");
    const leaf = fc.oneof(fc.string({ maxLength: 12 }), fc.integer(), fc.boolean(), fc.constant(null), fc.date({ noInvalidDate: false }), fc.constantFrom("secret", "2026-01-01", "(", "%_"));
    const filter = fc.letrec((tie) => ({
      value: fc.oneof({ depthSize: "small" }, leaf, fc.array(leaf, { maxLength: 3 }), fc.dictionary(operator, fc.oneof(leaf, fc.array(leaf, { maxLength: 2 })), { maxKeys: 2 })),
      filters: fc.dictionary(field, fc.oneof({ depthSize: "small" }, tie("value"), fc.array(tie("filters"), { maxLength: 2 })), { maxKeys: 3 }),
    }));
    await fc.assert(
      fc.asyncProperty(fc.oneof(filter.filters, fc.anything()), fc.oneof(fc.constant(undefined), fc.anything()), async (filters, config) => {
        try {
          const rows = await db.service.listApiKeys(filters as never, config as never);
          assert.ok(Array.isArray(rows));
        } catch (error) {
          assert.ok(error instanceof ApiKeyError && error.type === "invalid_data", `${String(error)} for ${JSON.stringify(filters)}`);
        }
      }),
      settings,
    );
  });
});

import assert from "node:assert/strict";
import http from "node:http";
import request from "supertest";
import type { ApiKeyService } from "../../lib/service";
import type { ApiKeyDTO } from "../../lib/types";
import { type DashboardOptions, apiKeyDashboard } from "../../middleware/dashboard";
import { forEachBackend } from "../helpers/backends";
import { type ExpressVersion, expressApp, withExpress } from "../helpers/create-app";

const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

interface AppSetup {
  /** Where the dashboard is mounted. Default: `/admin/keys`. */
  mount?: string;
  /** The app's own middleware in front of the mount. */
  before?: (req: http.IncomingMessage, res: http.ServerResponse, next: () => void) => void;
  /** Express's `trust proxy` setting: X-Forwarded-Proto, -Host and -For are believed. */
  trustProxy?: boolean;
}

function dashboardApp(version: ExpressVersion, service: ApiKeyService, options: DashboardOptions = {}, setup: AppSetup = {}): http.Server {
  const { mount = "/admin/keys", before, trustProxy = false } = setup;
  const app = expressApp(version);
  app.set("trust proxy", trustProxy);
  if (before) app.use(mount, before as never);
  app.use(mount, withExpress(version, () => apiKeyDashboard({ service, ...options })));
  return http.createServer(app);
}

/** The attributes of a Set-Cookie header, after its name=value. */
function attributesOf(res: request.Response): string[] {
  const header = res.headers["set-cookie"] as unknown as string[] | undefined;
  assert.equal(header?.length, 1, "one Set-Cookie header");
  return header[0]!.split("; ").slice(1);
}

/** The session cookie (name=value) from a sign-in answer. */
function cookieOf(res: request.Response): string {
  const header = res.headers["set-cookie"] as unknown as string[] | undefined;
  assert.ok(header?.[0], "a Set-Cookie header");
  return header[0].split(";")[0]!;
}

for (const version of ["express5", "express4"] as const) forEachBackend(
  `dashboard over HTTP on ${version}`,
  (db) => {
    let admin: ApiKeyDTO;
    let app: http.Server;

    beforeEach(async () => {
      admin = await db.service.createApiKeys({ title: "Ops admin", type: "secret", created_by: "user_1" });
      app = dashboardApp(version, db.service);
    });

    async function signIn(server = app, token = admin.token) {
      const res = await request(server).post("/admin/keys/session").send({ secret_key: token });
      assert.equal(res.status, 200, res.text);
      return { cookie: cookieOf(res), csrf: res.body.csrf_token as string };
    }

    it("serves the page with a strict CSP, no caching, and its assets gzipped for good", async () => {
      const bare = await request(app).get("/admin/keys?x=1");
      assert.equal(bare.status, 308);
      assert.equal(bare.headers.location, "/admin/keys/?x=1", "relative links need the trailing slash");

      const page = await request(app).get("/admin/keys/");
      assert.equal(page.status, 200);
      assert.match(page.headers["content-type"]!, /^text\/html/);
      assert.equal(page.headers["content-security-policy"], CSP);
      assert.equal(page.headers["x-content-type-options"], "nosniff");
      assert.equal(page.headers["referrer-policy"], "no-referrer");
      assert.equal(page.headers["cache-control"], "no-store");
      assert.doesNotMatch(page.text, /<script>|<script [^>]*>[^<]+<\/script>|\son[a-z]+=/i, "no inline script or handler");

      const script = /src="(assets\/[^"]+\/app\.js)"/.exec(page.text)?.[1];
      assert.ok(script, page.text);
      // supertest decompresses the body; the header says what travelled.
      const asset = await request(app).get(`/admin/keys/${script}`).set("Accept-Encoding", "gzip");
      assert.equal(asset.status, 200);
      assert.match(asset.headers["content-type"]!, /^text\/javascript/);
      assert.equal(asset.headers["content-encoding"], "gzip");
      assert.equal(asset.headers["cache-control"], "public, max-age=31536000, immutable");
      assert.match(asset.text, /from "\.\/vendor\/preact\.js"/);
      const plain = await request(app).get(`/admin/keys/${script}`).set("Accept-Encoding", "identity");
      assert.equal(plain.headers["content-encoding"], undefined);
      assert.ok(Number(asset.headers["content-length"]) < Number(plain.headers["content-length"]));
      assert.equal((await request(app).get(`/admin/keys/${script.replace("app.js", "vendor/preact.js")}`)).status, 200);
      assert.equal((await request(app).get(`/admin/keys/${script.replace("app.js", "nope.js")}`)).status, 404);
    });

    it("signs in with a secret key: an HttpOnly, SameSite=Strict cookie on the mount, without the key in it", async () => {
      const res = await request(app).post("/admin/keys/session").send({ secret_key: ` ${admin.token}\n` });
      assert.equal(res.status, 200, res.text);
      const header = (res.headers["set-cookie"] as unknown as string[])[0]!;
      assert.match(header, /; Path=\/admin\/keys\/; Max-Age=28800; HttpOnly; SameSite=Strict$/);
      assert.ok(!header.includes(admin.token) && !header.includes(admin.token.slice(3, 20)));
      assert.deepEqual(res.body.key, { id: admin.id, title: "Ops admin", redacted: admin.redacted });
      assert.match(res.body.csrf_token, /^[A-Za-z0-9_-]{43}$/);
      assert.ok(!JSON.stringify(res.body).includes(admin.token));

      const session = await request(app).get("/admin/keys/session").set("Cookie", cookieOf(res));
      assert.equal(session.status, 200);
      assert.equal(session.body.csrf_token, res.body.csrf_token);
      const list = await request(app).get("/admin/keys/api/?q=ops").set("Cookie", cookieOf(res));
      assert.equal(list.status, 200, list.text);
      assert.deepEqual(list.body.api_keys.map((key: ApiKeyDTO) => key.id), [admin.id]);
    });

    it("refuses a wrong, revoked, publishable or malformed key with a message, and no cookie", async () => {
      const publishable = await db.service.createApiKeys({ title: "Web", type: "publishable", created_by: "user_1" });
      const revoked = await db.service.createApiKeys({ title: "Old", type: "secret", created_by: "user_1" });
      await db.service.revoke(revoked.id, { revoked_by: "user_1" });
      const wrong = `${admin.token.slice(0, -1)}${admin.token.endsWith("a") ? "b" : "a"}`;
      for (const token of [wrong, revoked.token, publishable.token, "sk_", "", "x".repeat(5000).slice(0, 150)]) {
        const res = await request(app).post("/admin/keys/session").send({ secret_key: token });
        assert.equal(res.status, 401, token);
        assert.equal(res.body.type, "unauthorized");
        assert.match(res.body.message, /^That secret key is not valid/);
        assert.equal(res.headers["set-cookie"], undefined);
        assert.equal(res.headers["www-authenticate"], undefined, "no browser password prompt");
      }
      for (const send of [
        (r: request.Test) => r.send({ secret_key: 42 }),
        (r: request.Test) => r.send({}),
        (r: request.Test) => r.send([admin.token]),
        (r: request.Test) => r.type("form").send({ secret_key: admin.token }),
        (r: request.Test) => r.type("json").send("{nope"),
        (r: request.Test) => r.send({ secret_key: "s".repeat(300) }),
      ]) {
        const res = await send(request(app).post("/admin/keys/session"));
        assert.equal(res.status, 400, res.text);
        assert.equal(res.body.type, "invalid_data");
        assert.equal(res.headers["set-cookie"], undefined);
      }
      const large = await request(app).post("/admin/keys/session").type("json").send(JSON.stringify({ secret_key: "s".repeat(10_000) }));
      assert.deepEqual([large.status, large.body.type], [413, "invalid_data"]);
      const latin = await request(app).post("/admin/keys/session").set("Content-Type", "application/json; charset=latin9").send('{"secret_key":"x"}');
      assert.deepEqual([latin.status, latin.body.type], [415, "invalid_data"]);
    });

    it("refuses a key with a usage quota, which a session would not count, and spends none of it", async () => {
      const metered = await db.service.createApiKeys({ title: "Metered", type: "secret", created_by: "user_1", remaining: 2 });
      const res = await request(app).post("/admin/keys/session").send({ secret_key: metered.token });
      assert.equal(res.status, 403, res.text);
      assert.equal(res.body.type, "forbidden");
      assert.match(res.body.message, /usage quota/);
      assert.equal(res.headers["set-cookie"], undefined);
      assert.equal((await db.service.retrieveApiKey(metered.id)).remaining, 2);
    });

    it("refuses signing in, and each request of a session, from outside the key's IP allow-list", async () => {
      const proxied = dashboardApp(version, db.service, {}, { trustProxy: true });
      const fenced = await db.service.createApiKeys({ title: "Fenced", type: "secret", created_by: "user_1", allowed_ips: ["198.51.100.0/24"] });
      const outside = await request(proxied).post("/admin/keys/session").set("X-Forwarded-For", "203.0.113.5").send({ secret_key: fenced.token });
      assert.deepEqual([outside.status, outside.body.type, outside.headers["set-cookie"]], [403, "forbidden", undefined]);
      assert.match(outside.body.message, /not accepted from this address/);
      const inside = await request(proxied).post("/admin/keys/session").set("X-Forwarded-For", "198.51.100.9").send({ secret_key: fenced.token });
      assert.equal(inside.status, 200, inside.text);
      const cookie = cookieOf(inside);
      assert.equal((await request(proxied).get("/admin/keys/api/").set("Cookie", cookie).set("X-Forwarded-For", "198.51.100.9")).status, 200);
      const carried = await request(proxied).get("/admin/keys/api/").set("Cookie", cookie).set("X-Forwarded-For", "203.0.113.5");
      assert.equal(carried.status, 403, "the cookie carried elsewhere is refused");
      assert.equal((await request(proxied).get("/admin/keys/api/").set("Cookie", cookie).set("X-Forwarded-For", "198.51.100.9")).status, 200, "and ends no session");
    });

    it("refuses every change without the session's CSRF token, and changes nothing", async () => {
      const { cookie, csrf } = await signIn();
      const count = async () => (await db.service.listAndCountApiKeys({}, { take: 0 }))[1];
      const before = await count();
      const attempts = [
        request(app).post("/admin/keys/api/").set("Cookie", cookie).send({ title: "x", type: "secret" }),
        request(app).post("/admin/keys/api/").set("Cookie", cookie).set("x-csrf-token", "nope").send({ title: "x", type: "secret" }),
        request(app).post("/admin/keys/api/").set("Cookie", cookie).set("x-csrf-token", `${csrf.slice(0, -1)}${csrf.endsWith("A") ? "B" : "A"}`).send({ title: "x", type: "secret" }),
        // As long as the token in characters, longer in UTF-8 bytes (with no body, Node sends the header as Latin-1).
        request(app).delete(`/admin/keys/api/${admin.id}`).set("Cookie", cookie).set("x-csrf-token", "\u00e9".repeat(csrf.length)),
        request(app).post(`/admin/keys/api/${admin.id}/revoke`).set("Cookie", cookie).send({}),
        request(app).delete(`/admin/keys/api/${admin.id}`).set("Cookie", cookie),
        request(app).post("/admin/keys/api/").set("Cookie", cookie).set("x-csrf-token", csrf).set("Origin", "https://evil.example").send({ title: "x", type: "secret" }),
      ];
      for (const res of await Promise.all(attempts)) {
        assert.equal(res.status, 403, res.text);
        assert.equal(res.body.type, "forbidden");
      }
      assert.equal(await count(), before);
      assert.equal((await db.service.retrieveApiKey(admin.id)).revoked_at, null);

      const signOut = await request(app).delete("/admin/keys/session").set("Cookie", cookie);
      assert.equal(signOut.status, 403, "signing out takes the token too");
      const latin = await request(app).delete("/admin/keys/session").set("Cookie", cookie).set("x-csrf-token", "\u00e9".repeat(csrf.length));
      assert.deepEqual([latin.status, latin.body.type], [403, "forbidden"]);
      assert.equal((await request(app).get("/admin/keys/session").set("Cookie", cookie)).status, 200);

      const created = await request(app).post("/admin/keys/api/").set("Cookie", cookie).set("x-csrf-token", csrf).send({ title: "CI", type: "secret" });
      assert.equal(created.status, 200, created.text);
      assert.equal(created.body.api_key.created_by, admin.id, "the signed-in key acts");
      assert.equal(await count(), before + 1);
    });

    it("takes a change or a sign-in only from its own origin: scheme, host and port alike", async () => {
      const { cookie, csrf } = await signIn();
      const count = async () => (await db.service.listAndCountApiKeys({}, { take: 0 }))[1];
      const before = await count();
      const host = "127.0.0.1:8080";
      const create = (origin: string) =>
        request(app).post("/admin/keys/api/").set("Host", host).set("Origin", origin).set("Cookie", cookie).set("x-csrf-token", csrf).send({ title: "x", type: "secret" });
      const signInFrom = (origin: string) => request(app).post("/admin/keys/session").set("Host", host).set("Origin", origin).send({ secret_key: admin.token });
      for (const origin of ["http://127.0.0.1:1", "https://127.0.0.1:8080", "http://127.0.0.1", "http://127.0.0.1.evil.example:8080", "null", "nonsense"]) {
        const changed = await create(origin);
        assert.deepEqual([changed.status, changed.body.type], [403, "forbidden"], origin);
        const signedIn = await signInFrom(origin);
        assert.deepEqual([signedIn.status, signedIn.body.type], [403, "forbidden"], origin);
        assert.match(signedIn.body.message, /another origin/);
        assert.equal(signedIn.headers["set-cookie"], undefined);
      }
      assert.equal(await count(), before);
      assert.equal((await create("http://127.0.0.1:8080")).status, 200, "its own origin");
      assert.equal((await signInFrom("http://127.0.0.1:8080")).status, 200, "its own origin");
    });

    it("behind a proxy it trusts, takes its origin from X-Forwarded-Proto and X-Forwarded-Host; otherwise ignores them", async () => {
      const proxied = (trustProxy: boolean) => dashboardApp(version, db.service, {}, { trustProxy });
      const signInVia = (server: http.Server, origin: string) =>
        request(server)
          .post("/admin/keys/session")
          .set("Host", "10.0.0.5:3000")
          .set("X-Forwarded-Proto", "https")
          .set("X-Forwarded-Host", "keys.example.com, proxy.internal")
          .set("Origin", origin)
          .send({ secret_key: admin.token });
      const trusted = proxied(true);
      assert.equal((await signInVia(trusted, "https://keys.example.com")).status, 200);
      for (const origin of ["http://keys.example.com", "https://keys.example.com:8443", "http://10.0.0.5:3000"]) {
        assert.equal((await signInVia(trusted, origin)).status, 403, origin);
      }
      const untrusted = proxied(false);
      assert.equal((await signInVia(untrusted, "https://keys.example.com")).status, 403, "forwarded headers from an untrusted peer");
      assert.equal((await signInVia(untrusted, "http://10.0.0.5:3000")).status, 200);
    });

    it("ends the session when its key is revoked, and on sign-out", async () => {
      const { cookie, csrf } = await signIn();
      await db.service.revoke(admin.id, { revoked_by: "someone_else" });
      for (const path of ["/admin/keys/api/", "/admin/keys/session"]) {
        const res = await request(app).get(path).set("Cookie", cookie);
        assert.equal(res.status, 401, path);
        assert.match(res.body.message, /session has ended|not signed in/);
      }

      const other = await db.service.createApiKeys({ title: "Second", type: "secret", created_by: "user_1" });
      const second = await signIn(app, other.token);
      const out = await request(app).delete("/admin/keys/session").set("Cookie", second.cookie).set("x-csrf-token", second.csrf);
      assert.equal(out.status, 204);
      assert.match((out.headers["set-cookie"] as unknown as string[])[0]!, /^api_key_dashboard=; Path=\/admin\/keys\/; Max-Age=0/);
      const after = await request(app).get("/admin/keys/api/").set("Cookie", second.cookie);
      assert.equal(after.status, 401);
      assert.equal(after.body.message, "You are not signed in: sign in with a secret key");
      assert.equal(csrf.length, 43);
    });

    it("ends every session of a key that may no longer use the dashboard at its next request, whatever changed", async () => {
      const scoped = dashboardApp(version, db.service, { scopes: { read: ["api_keys:read"], write: ["api_keys:write"] } });
      const changes: [string, (id: string) => Promise<unknown>, RegExp][] = [
        ["a quota given", (id) => db.service.updateApiKeys(id, { remaining: 1 }), /has a usage quota/],
        ["its read scope taken away", (id) => db.service.updateApiKeys(id, { scopes: ["orders:read"] }), /lacks the scope api_keys:read\./],
        ["made to expire", async (id) => (await db.service.updateApiKeys(id, { expires_at: new Date(db.clock.now().getTime() + 60_000) }), db.clock.advance(60_000)), /has expired/],
        ["revoked", (id) => db.service.revoke(id, { revoked_by: "user_1" }), /was revoked/],
        ["soft-deleted", (id) => db.service.softDeleteApiKeys([id]), /was deleted/],
      ];
      for (const [what, change, reason] of changes) {
        const key = await db.service.createApiKeys({ title: what, type: "secret", created_by: "user_1", scopes: ["api_keys:read", "api_keys:write"] });
        const first = await signIn(scoped, key.token);
        const second = await signIn(scoped, key.token);
        assert.equal((await request(scoped).get("/admin/keys/api/").set("Cookie", first.cookie)).status, 200, what);
        await change(key.id);

        const ended = await request(scoped).get("/admin/keys/api/").set("Cookie", first.cookie);
        assert.deepEqual([ended.status, ended.body.type], [401, "unauthorized"], what);
        assert.match(ended.body.message, /^Your session has ended: the key that opened it /, what);
        assert.match(ended.body.message, reason, what);
        assert.deepEqual(attributesOf(ended), ["Path=/admin/keys/", "Max-Age=0", "HttpOnly", "SameSite=Strict"], what);
        // Every session of the key ended with the first refusal: the second has no key left to check.
        const other = await request(scoped).get("/admin/keys/session").set("Cookie", second.cookie);
        assert.deepEqual([other.status, other.body.message], [401, "You are not signed in: sign in with a secret key"], what);
        if (what === "a quota given") assert.equal((await db.service.retrieveApiKey(key.id)).remaining, 1, "no use spent");
      }
    });

    it("keeps the session of a key that may still read: without its write scope, it reads and is refused changes", async () => {
      const scoped = dashboardApp(version, db.service, { scopes: { read: ["api_keys:read"], write: ["api_keys:write"] } });
      const key = await db.service.createApiKeys({ title: "Narrowed", type: "secret", created_by: "user_1", scopes: ["api_keys:read", "api_keys:write"] });
      const { cookie, csrf } = await signIn(scoped, key.token);
      await db.service.updateApiKeys(key.id, { scopes: ["api_keys:read"] });
      assert.equal((await request(scoped).get("/admin/keys/session").set("Cookie", cookie)).status, 200);
      assert.equal((await request(scoped).get("/admin/keys/api/").set("Cookie", cookie)).status, 200);
      const write = await request(scoped).post("/admin/keys/api/").set("Cookie", cookie).set("x-csrf-token", csrf).send({ title: "x", type: "secret" });
      assert.deepEqual([write.status, write.body.type], [403, "forbidden"]);
      assert.equal((await request(scoped).get("/admin/keys/api/").set("Cookie", cookie)).status, 200, "still signed in");
    });

    it("caps the sessions of one key: signing in again and again ends that key's oldest, and nobody else's", async () => {
      const plenty = { limit: 100, duration: 60 };
      const capped = dashboardApp(version, db.service, { maxSessions: 5, maxSessionsPerKey: 2, signInsPerKey: plenty, signInsPerAddress: plenty });
      const reader = await db.service.createApiKeys({ title: "Reader", type: "secret", created_by: "user_1" });
      const adminSession = await signIn(capped);
      const readerSessions = [];
      for (let i = 0; i < 8; i++) readerSessions.push(await signIn(capped, reader.token));
      const status = async (cookie: string) => (await request(capped).get("/admin/keys/api/").set("Cookie", cookie)).status;
      assert.equal(await status(adminSession.cookie), 200, "another key's session is untouched");
      assert.deepEqual(await Promise.all(readerSessions.map((session) => status(session.cookie))), [401, 401, 401, 401, 401, 401, 200, 200], "the key's two newest live on");
    });

    it("throttles sign-ins per key: 429 rate_limited with Retry-After, no session, and no use of the key spent", async () => {
      const throttledApp = dashboardApp(version, db.service, { signInsPerKey: { limit: 2, duration: 600 } });
      const limited = await db.service.createApiKeys({ title: "Limited", type: "secret", created_by: "user_1", rate_limits: [{ name: "api", limit: 3, duration: 3600 }] });
      await signIn(throttledApp, limited.token);
      await signIn(throttledApp, limited.token);
      const refused = await request(throttledApp).post("/admin/keys/session").send({ secret_key: limited.token });
      assert.deepEqual([refused.status, refused.body.type], [429, "rate_limited"], refused.text);
      assert.match(refused.body.message, /^Too many sign-ins with this key: try again in \d+ seconds?$/);
      assert.ok(Number(refused.headers["retry-after"]) >= 1 && Number(refused.headers["retry-after"]) <= 600, refused.headers["retry-after"]);
      assert.equal(refused.headers["set-cookie"], undefined);
      assert.ok(!refused.text.includes(limited.token));
      await signIn(throttledApp, admin.token);

      // Sign-ins are one verification at no cost: the key's three uses are all left.
      for (let use = 0; use < 3; use++) assert.equal((await db.service.verifyApiKey(limited.token)).code, "valid");
      assert.equal((await db.service.verifyApiKey(limited.token)).code, "rate_limited");
    });

    it("throttles sign-in attempts per client address, right keys or wrong, before any key is checked", async () => {
      const behindProxy = dashboardApp(version, db.service, { signInsPerAddress: { limit: 2, duration: 600 } }, { trustProxy: true });
      const limited = await db.service.createApiKeys({ title: "One use an hour", type: "secret", created_by: "user_1", rate_limits: [{ name: "api", limit: 1, duration: 3600 }] });
      const attempt = (address: string, token: string) => request(behindProxy).post("/admin/keys/session").set("X-Forwarded-For", address).send({ secret_key: token });
      const wrong = `${admin.token.slice(0, -1)}${admin.token.endsWith("a") ? "b" : "a"}`;
      assert.equal((await attempt("203.0.113.7", wrong)).status, 401);
      assert.equal((await attempt("203.0.113.7", wrong)).status, 401);
      const refused = await attempt("203.0.113.7", limited.token);
      assert.deepEqual([refused.status, refused.body.type], [429, "rate_limited"], refused.text);
      assert.match(refused.body.message, /^Too many sign-ins from this address: try again in \d+ seconds?$/);
      assert.ok(Number(refused.headers["retry-after"]) >= 1, refused.headers["retry-after"]);
      assert.equal(refused.headers["set-cookie"], undefined);
      // Another address signs in, with the key's one use an hour: the throttled attempt spent none.
      assert.equal((await attempt("203.0.113.8", limited.token)).status, 200);
    });

    it("keeps the cookie to its mount: a crafted path segment adds no attribute, and no Domain is ever sent", async () => {
      const tenants = dashboardApp(version, db.service, {}, { mount: "/tenants/:tenant/keys" });
      const crafted: [string, string][] = [
        ["acme;Path=", "/tenants/acme%3BPath=/keys/"],
        ["acme;Domain=evil.example;x=", "/tenants/acme%3BDomain=evil.example%3Bx=/keys/"],
        ["acme;SameSite=None;Secure;Max-Age=99999999;x=", "/tenants/acme%3BSameSite=None%3BSecure%3BMax-Age=99999999%3Bx=/keys/"],
        ["acme%3Bx", "/tenants/acme%3Bx/keys/"],
      ];
      for (const [tenant, path] of crafted) {
        const res = await request(tenants).post(`/tenants/${tenant}/keys/session`).send({ secret_key: admin.token });
        assert.equal(res.status, 200, res.text);
        assert.deepEqual(attributesOf(res), [`Path=${path}`, "Max-Age=28800", "HttpOnly", "SameSite=Strict"], tenant);
      }
      const res = await request(tenants).post("/tenants/acme/keys/session").send({ secret_key: admin.token });
      assert.deepEqual(attributesOf(res), ["Path=/tenants/acme/keys/", "Max-Age=28800", "HttpOnly", "SameSite=Strict"]);
      assert.equal((await request(tenants).get("/tenants/acme/keys/api/").set("Cookie", cookieOf(res))).status, 200);

      // An answer from under `api/` clears the cookie on the mount, not on `api/`.
      await db.service.revoke(admin.id, { revoked_by: "user_1" });
      const ended = await request(tenants).get("/tenants/acme/keys/api/").set("Cookie", cookieOf(res));
      assert.equal(ended.status, 401);
      assert.deepEqual(attributesOf(ended), ["Path=/tenants/acme/keys/", "Max-Age=0", "HttpOnly", "SameSite=Strict"]);
    });

    it("over HTTPS, names the cookie __Host- with a hash of its mount, so each mount reads back only its own", async () => {
      // Behind a proxy that terminates TLS: X-Forwarded-Proto makes req.secure true.
      const tenants = dashboardApp(version, db.service, {}, { mount: "/tenants/:tenant/keys", trustProxy: true });
      const https = (test: request.Test) => test.set("X-Forwarded-Proto", "https");
      const signInAt = (tenant: string) => https(request(tenants).post(`/tenants/${tenant}/keys/session`)).send({ secret_key: admin.token });

      const acme = await signInAt("acme");
      assert.equal(acme.status, 200, acme.text);
      assert.match(cookieOf(acme), /^__Host-api_key_dashboard-[A-Za-z0-9_-]{16}=[A-Za-z0-9_-]{43}$/);
      assert.deepEqual(attributesOf(acme), ["Path=/", "Max-Age=28800", "HttpOnly", "SameSite=Strict", "Secure"]);
      const crafted = await signInAt("acme;Domain=evil.example;x=");
      assert.deepEqual(attributesOf(crafted), ["Path=/", "Max-Age=28800", "HttpOnly", "SameSite=Strict", "Secure"]);
      const globex = await signInAt("globex");
      assert.notEqual(cookieOf(globex).split("=")[0], cookieOf(acme).split("=")[0], "one cookie name per mount");

      // The browser sends every __Host- cookie of the host to every path: each mount reads its own.
      const both = `${cookieOf(globex)}; ${cookieOf(acme)}`;
      assert.equal((await https(request(tenants).get("/tenants/acme/keys/session")).set("Cookie", both)).body.csrf_token, acme.body.csrf_token);
      assert.equal((await https(request(tenants).get("/tenants/globex/keys/session")).set("Cookie", both)).body.csrf_token, globex.body.csrf_token);
      assert.equal((await https(request(tenants).get("/tenants/initech/keys/api/")).set("Cookie", both)).status, 401, "no cookie of its name");

      const out = await https(request(tenants).delete("/tenants/acme/keys/session")).set("Cookie", cookieOf(acme)).set("x-csrf-token", acme.body.csrf_token);
      assert.equal(out.status, 204);
      assert.equal((out.headers["set-cookie"] as unknown as string[])[0], `${cookieOf(acme).split("=")[0]}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict; Secure`);
    });

    it("ends a session at its maximum age and after the idle timeout, by the service's clock", async () => {
      const short = dashboardApp(version, db.service, { sessionMaxAge: 600, sessionIdleTimeout: 120 });
      const first = await signIn(short);
      db.clock.advance(100_000);
      assert.equal((await request(short).get("/admin/keys/api/").set("Cookie", first.cookie)).status, 200);
      db.clock.advance(100_000);
      assert.equal((await request(short).get("/admin/keys/api/").set("Cookie", first.cookie)).status, 200, "active, so not idle");
      db.clock.advance(120_000);
      assert.equal((await request(short).get("/admin/keys/api/").set("Cookie", first.cookie)).status, 401, "idle");

      const second = await signIn(short);
      for (let i = 0; i < 6; i++) {
        db.clock.advance(100_000);
        const res = await request(short).get("/admin/keys/api/").set("Cookie", second.cookie);
        assert.equal(res.status, i < 5 ? 200 : 401, `after ${(i + 1) * 100} s`);
      }
    });

    it("applies the admin router's scopes: read to sign in and list, write to change", async () => {
      const scoped = dashboardApp(version, db.service, { scopes: { read: ["api_keys:read"], write: ["api_keys:write"] } });
      const none = await db.service.createApiKeys({ title: "Orders", type: "secret", created_by: "u", scopes: ["orders:read"] });
      const reader = await db.service.createApiKeys({ title: "Reader", type: "secret", created_by: "u", scopes: ["api_keys:read"] });
      const refused = await request(scoped).post("/admin/keys/session").send({ secret_key: none.token });
      assert.equal(refused.status, 403);
      assert.match(refused.body.message, /lacks the scope api_keys:read/);
      const { cookie, csrf } = await signIn(scoped, reader.token);
      assert.equal((await request(scoped).get("/admin/keys/api/").set("Cookie", cookie)).status, 200);
      const write = await request(scoped).post("/admin/keys/api/").set("Cookie", cookie).set("x-csrf-token", csrf).send({ title: "x", type: "secret" });
      assert.equal(write.status, 403);
      assert.match(write.body.message, /api_keys:write/);
    });

    it("without sign-in, acts as the app's own authenticated user, still CSRF-safe", async () => {
      const open = dashboardApp(version, db.service, { signIn: false }, {
        before: (req, _res, next) => {
          const user = req.headers["x-test-user"];
          if (typeof user === "string") Object.assign(req, { auth_context: { actor_id: user } });
          next();
        },
      });
      assert.equal((await request(open).post("/admin/keys/session").send({ secret_key: admin.token })).status, 404, "no sign-in route");
      const anonymous = await request(open).get("/admin/keys/api/");
      assert.deepEqual([anonymous.status, anonymous.body.sign_in], [401, false], "no app user, no access, and no sign-in form either");
      const session = await request(open).get("/admin/keys/session").set("x-test-user", "user_7");
      assert.deepEqual(session.body, { sign_in: false, key: null, actor: "user_7", csrf_token: "same-origin" });
      const noHeader = await request(open).post("/admin/keys/api/").set("x-test-user", "user_7").send({ title: "x", type: "secret" });
      assert.equal(noHeader.status, 403);
      const created = await request(open).post("/admin/keys/api/").set("x-test-user", "user_7").set("x-csrf-token", "same-origin").send({ title: "x", type: "secret" });
      assert.equal(created.status, 200, created.text);
      assert.equal(created.body.api_key.created_by, "user_7");
    });
  },
  ["postgres", "pglite"],
);

describe("apiKeyDashboard page weight", () => {
  it("keeps what the browser downloads under 24 KiB gzipped (the README states the figure)", async () => {
    const app = expressApp("express5");
    app.use("/keys", apiKeyDashboard());
    const server = http.createServer(app);
    const page = await request(server).get("/keys/").set("Accept-Encoding", "gzip");
    const files = [...page.text.matchAll(/(?:href|src)="(assets\/[^"]+)"/g)].map((match) => match[1]!);
    assert.equal(files.length, 5, "stylesheet, Preact, htm, the page's script and its charts");
    let total = Number(page.headers["content-length"]);
    for (const file of files) {
      const res = await request(server).get(`/keys/${file}`).set("Accept-Encoding", "gzip");
      assert.equal(res.headers["content-encoding"], "gzip");
      total += Number(res.headers["content-length"]);
    }
    console.log(`      dashboard download: ${(total / 1024).toFixed(1)} KiB gzipped`);
    assert.ok(total < 24 * 1024, `${total} bytes`);
  });
});

describe("apiKeyDashboard options", () => {
  it("throws at construction on a misused or unknown option, in a sentence", () => {
    const bad: [unknown, RegExp][] = [
      ["x", /takes an object/],
      [{ signin: false }, /unknown option `signin`/],
      [{ signIn: "no" }, /`signIn` must be a boolean/],
      [{ sessionMaxAge: 0 }, /`sessionMaxAge` must be a whole number/],
      [{ sessionIdleTimeout: 1.5 }, /`sessionIdleTimeout`/],
      [{ maxSessions: -1 }, /`maxSessions`/],
      [{ maxSessionsPerKey: 0 }, /`maxSessionsPerKey` must be a whole number of sessions/],
      [{ signInsPerKey: 10 }, /`signInsPerKey` must be \{ limit, duration \}/],
      [{ signInsPerKey: { limit: 0, duration: 60 } }, /`signInsPerKey`/],
      [{ signInsPerAddress: { limit: 10 } }, /`signInsPerAddress` must be \{ limit, duration \}/],
      [{ signInsPerAddress: null }, /`signInsPerAddress`/],
      [{ actor: () => "u" }, /`actor` applies with `signIn: false` only/],
      [{ scopes: { read: ["*"] } }, /`scopes.read`/],
      [{ service: {} }, /`service` must be/],
    ];
    for (const [options, message] of bad) {
      assert.throws(() => apiKeyDashboard(options as DashboardOptions), (error: Error) => error instanceof TypeError && message.test(error.message), String(message));
    }
    assert.throws(() => (apiKeyDashboard as (a: unknown) => unknown)(new http.IncomingMessage(null as never)), /not app\.use\(apiKeyDashboard\)/);
    for (const same of [undefined, {}, Object.create(null) as DashboardOptions, { sessionMaxAge: undefined }]) apiKeyDashboard(same);
  });
});

// The GitHub secret scanning receiver: nothing is read, let alone revoked, unless GitHub's
// ECDSA P-256 signature over the exact body holds; a secret token of ours is revoked everywhere
// with an audit event naming the report; publishable tokens are public and never revoked.
import assert from "node:assert/strict";
import { generateKeyPairSync, sign } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import express from "express";
import request from "supertest";
import { apiKeyLeakReceiver, githubPublicKeys, type LeakReportKey } from "../../middleware/leak-receiver";
import { forEachBackend } from "../helpers/backends";
import { REDIS_URL, connectRedis, deletePrefix, testPrefix } from "../helpers/redis";

function signingPair() {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  return { privateKey, pem: publicKey.export({ type: "spki", format: "pem" }).toString() };
}

const github = signingPair();
const stranger = signingPair();
const KEY_ID = "bcb53661c06b4728e59d897fb6165d5c9cda0fd9cdf9d09ead458168deb7518c";
const publicKeys = async (): Promise<LeakReportKey[]> => [{ key_identifier: KEY_ID, key: github.pem, is_current: true }];

function signed(body: string, privateKey = github.privateKey) {
  return sign("sha256", Buffer.from(body), privateKey).toString("base64");
}

forEachBackend(
  "leak receiver",
  (db) => {
    let app: express.Express;
    const build = (options: Parameters<typeof apiKeyLeakReceiver>[0] = {}) => {
      app = express();
      app.use("/leaks", apiKeyLeakReceiver({ service: db.service, publicKeys, ...options }));
      return app;
    };
    beforeEach(() => {
      build();
    });
    const post = (body: string, headers: Record<string, string> = { "Github-Public-Key-Identifier": KEY_ID, "Github-Public-Key-Signature": signed(body) }) =>
      request(app).post("/leaks").set("Content-Type", "application/json").set(headers).send(body);

    it("revokes a reported secret key, labels every match, and records the report in the audit log", async () => {
      const secret = await db.service.createApiKeys({ title: "leaked", type: "secret", created_by: "u" });
      const publishable = await db.service.createApiKeys({ title: "storefront", type: "publishable", created_by: "u" });
      const unknown = await db.unissuedToken("secret");
      const body = JSON.stringify([
        { token: secret.token, type: "express_api_keys_secret", url: "https://github.com/o/r/blob/x/.env", source: "content" },
        { token: publishable.token, type: "express_api_keys_publishable", url: "https://github.com/o/r/blob/x/app.js", source: "content" },
        { token: unknown, type: "express_api_keys_secret", url: "https://gist.github.com/x", source: "gist" },
      ]);
      const answer = await post(body);
      assert.equal(answer.status, 200, answer.text);
      assert.deepEqual(answer.body, [
        { token_raw: secret.token, token_type: "express_api_keys_secret", label: "true_positive" },
        { token_raw: publishable.token, token_type: "express_api_keys_publishable", label: "false_positive" },
        { token_raw: unknown, token_type: "express_api_keys_secret", label: "false_positive" },
      ]);
      assert.equal((await db.service.verifyApiKey(secret.token)).code, "revoked");
      assert.equal((await db.service.verifyApiKey(publishable.token)).code, "valid", "a publishable key is never revoked");
      const [, revoked] = await db.service.listAuditEvents({ key_id: secret.id });
      assert.equal(revoked!.actor_id, "github-secret-scanning");
      assert.deepEqual(revoked!.details, { report_url: "https://github.com/o/r/blob/x/.env", report_source: "content" });
      // Reported again (GitHub retries): still a true positive, and nothing more changes.
      const again = await post(JSON.stringify([{ token: secret.token, type: "t", url: "u", source: "s" }]));
      assert.deepEqual(again.body.map((match: { label: string }) => match.label), ["true_positive"]);
      assert.equal((await db.service.listAuditEvents({ key_id: secret.id })).length, 2);
    });

    it("gives secret scanners a pattern that finds this service's secret tokens in text, and nothing else", async () => {
      const pattern = new RegExp(db.service.tokenPattern, "g");
      const secret = await db.service.createApiKeys({ title: "s", type: "secret", created_by: "u" });
      const publishable = await db.service.createApiKeys({ title: "p", type: "publishable", created_by: "u" });
      const text = `API_KEY=${secret.token}\nPUBLIC=${publishable.token}\nOTHER=sk_${"a".repeat(60)} sk_short`;
      assert.deepEqual(text.match(pattern), [secret.token]);
    });

    it("with action report, labels the key and leaves it working", async () => {
      build({ action: "report" });
      const secret = await db.service.createApiKeys({ title: "leaked", type: "secret", created_by: "u" });
      const answer = await post(JSON.stringify([{ token: secret.token, type: "t", url: "u", source: "s" }]));
      assert.equal(answer.body[0].label, "true_positive");
      assert.equal((await db.service.verifyApiKey(secret.token)).code, "valid");
    });

    it("refuses, with 401 and no change, a forged signature, a body changed after signing, an unknown key and missing headers", async () => {
      const secret = await db.service.createApiKeys({ title: "leaked", type: "secret", created_by: "u" });
      const body = JSON.stringify([{ token: secret.token, type: "t", url: "u", source: "s" }]);
      const reserialized = JSON.stringify(JSON.parse(body), null, 2);
      const attempts: [string, string, Record<string, string>][] = [
        ["forged", body, { "Github-Public-Key-Identifier": KEY_ID, "Github-Public-Key-Signature": signed(body, stranger.privateKey) }],
        ["re-serialized after signing", reserialized, { "Github-Public-Key-Identifier": KEY_ID, "Github-Public-Key-Signature": signed(body) }],
        ["unknown key id", body, { "Github-Public-Key-Identifier": "0".repeat(64), "Github-Public-Key-Signature": signed(body) }],
        ["no signature", body, { "Github-Public-Key-Identifier": KEY_ID }],
        ["no key id", body, { "Github-Public-Key-Signature": signed(body) }],
        ["garbage signature", body, { "Github-Public-Key-Identifier": KEY_ID, "Github-Public-Key-Signature": "not base64 at all!" }],
        ["empty body signed for another", "", { "Github-Public-Key-Identifier": KEY_ID, "Github-Public-Key-Signature": signed(body) }],
      ];
      for (const [what, sent, headers] of attempts) {
        const answer = await post(sent, headers);
        assert.equal(answer.status, 401, what);
        assert.equal(answer.body.type, "unauthorized", what);
        assert.ok(!answer.text.includes(secret.token), `${what}: the token is not echoed`);
      }
      assert.equal((await db.service.verifyApiKey(secret.token)).code, "valid", "nothing was revoked");
    });

    it("refuses a body an app parsed first, a body that is not an array, and too many matches", async () => {
      app = express();
      app.use(express.json());
      app.use("/leaks", apiKeyLeakReceiver({ service: db.service, publicKeys }));
      const body = JSON.stringify([{ token: "sk_x", type: "t", url: "u", source: "s" }]);
      const parsedFirst = await post(body);
      assert.equal(parsedFirst.status, 400);
      assert.match(parsedFirst.body.message, /before any body parser/);
      build();
      const notArray = JSON.stringify({ token: "sk_x" });
      assert.equal((await post(notArray)).status, 400);
      const many = JSON.stringify(Array.from({ length: 1001 }, () => ({ token: "sk_x" })));
      assert.equal((await post(many)).status, 400);
    });
  },
  ["postgres"],
);

forEachBackend(
  "leak receiver across instances",
  (db) => {
    it("a revoked leak is refused by another instance within 100 ms", async function () {
      const redis = await connectRedis(this);
      if (!redis) return;
      const prefix = testPrefix();
      try {
        const options = { redis: REDIS_URL, cache: { redisPrefix: prefix }, now: () => new Date() };
        const [receiving, serving] = [await db.open(options), await db.open(options)];
        const secret = await receiving.createApiKeys({ title: "leaked", type: "secret", created_by: "u" });
        assert.equal((await serving.verifyApiKey(secret.token)).code, "valid", "cached on the other instance");
        const app = express();
        app.use("/leaks", apiKeyLeakReceiver({ service: receiving, publicKeys }));
        const body = JSON.stringify([{ token: secret.token, type: "t", url: "u", source: "s" }]);
        await request(app).post("/leaks").set({ "Github-Public-Key-Identifier": KEY_ID, "Github-Public-Key-Signature": signed(body) }).send(body);
        const start = Date.now();
        while ((await serving.verifyApiKey(secret.token)).code !== "revoked") {
          assert.ok(Date.now() - start < 100, "refused within 100 ms");
          await new Promise((resolve) => setTimeout(resolve, 2));
        }
      } finally {
        await deletePrefix(redis, prefix);
        redis.disconnect();
      }
    });
  },
  ["postgres"],
);

describe("githubPublicKeys", () => {
  it("fetches GitHub's keys once, again for an unknown id, and serves the last ones while GitHub fails", async () => {
    let served = 0;
    let failing = false;
    const server = http.createServer((_req, res) => {
      served++;
      if (failing) {
        res.statusCode = 429;
        res.end();
        return;
      }
      res.setHeader("Content-Type", "application/json");
      res.end(JSON.stringify({ public_keys: [{ key_identifier: KEY_ID, key: github.pem, is_current: true }] }));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      let now = 0;
      const keys = githubPublicKeys(`http://127.0.0.1:${(server.address() as AddressInfo).port}/keys`, () => now);
      assert.equal((await keys(KEY_ID))[0]!.key_identifier, KEY_ID);
      now += 30_000;
      await keys(KEY_ID);
      await keys("unknown");
      assert.equal(served, 1, "cached, and an unknown id fetches at most once a minute");
      now += 60_000;
      failing = true;
      assert.equal((await keys("unknown")).length, 1, "an unknown id fetches again; the old keys stand in while GitHub fails");
      assert.equal(served, 2);
      now += 2 * 3_600_000;
      assert.equal((await keys(KEY_ID)).length, 1, "past an hour, a failed refresh keeps the old keys too");
      assert.equal(served, 3);
    } finally {
      server.close();
    }
  });
});

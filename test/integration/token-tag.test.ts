// The keyed tag in tokens (format 2) and the rule for format-1 tokens, issued before it: what
// costs no I/O, what still works, and what another deployment's tokens get here.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { crc32 } from "node:zlib";
import type { Redis } from "ioredis";
import { KEY_PURPOSES, deriveKey } from "../../lib/deployment-secret";
import { initialize } from "../../setup/initialize";
import type { ApiKeyRecord } from "../../lib/store";
import { TOKEN_LENGTH, generateToken, hasValidTag, redactToken, storedTokenValue } from "../../lib/tokens";
import type { ApiKeyType } from "../../lib/types";
import { MemoryApiKeyStore } from "../../testing/memory-store";
import { KnexApiKeyStore } from "../../store/knex-store";
import { forEachBackend } from "../helpers/backends";
import { REDIS_URL, redisPerTest } from "../helpers/redis";

const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const QUIET = { warn: () => {}, error: () => {} };

/** A token with a valid public checksum and random everything else, as anyone who knows the format can make. */
function forged(type: ApiKeyType, length = TOKEN_LENGTH): string {
  const body = `${type === "secret" ? "sk" : "pk"}_${Array.from(randomBytes(length - 9), (byte) => ALPHABET[byte % 62]).join("")}`;
  let value = crc32(body);
  let sum = "";
  for (let i = 0; i < 6; i++) {
    sum = ALPHABET[value % 62] + sum;
    value = Math.floor(value / 62);
  }
  return body + sum;
}

async function keysUnder(redis: Redis, prefix: string): Promise<string[]> {
  return (await redis.keys(`${prefix}*`)).sort();
}

forEachBackend("token tag", (db) => {
  const shared = redisPerTest();

  /** Writes a key as a release before tags did: a format-1 token, `token_format` null. */
  async function legacyKey(type: ApiKeyType, id: string): Promise<string> {
    const token = generateToken(type);
    const at = db.clock.now();
    const record = {
      id, token: storedTokenValue(token, type), redacted: redactToken(token), title: id, type, last_used_at: null,
      created_by: "u", created_at: at, updated_at: at, deleted_at: null, revoked_by: null, revoked_at: null,
      expires_at: null, owner_id: null, scopes: [], metadata: {}, rate_limits: [], remaining: null, refill: null, allowed_ips: [], token_format: 1,
    } satisfies ApiKeyRecord;
    await new KnexApiKeyStore(db.knex, db.schema).insert([record]);
    await db.table("api_key").where({ id }).update({ token_format: null });
    return token;
  }

  it("issues 53-character tagged tokens, secret and publishable, that authenticate", async () => {
    const [secret, publishable] = await db.service.createApiKeys([
      { title: "s", type: "secret", created_by: "u" },
      { title: "p", type: "publishable", created_by: "u" },
    ]);
    for (const key of [secret!, publishable!]) {
      assert.equal(key.token.length, 53);
      assert.equal(key.token_format, 2);
      assert.equal((await db.service.retrieveApiKey(key.id)).token_format, 2);
    }
    assert.equal((await db.service.authenticate(secret!.token) || undefined)?.id, secret!.id);
    assert.equal((await db.service.authenticatePublishable(publishable!.token) || undefined)?.api_key.id, publishable!.id);
  });

  it("refuses checksum-valid forged tokens with no query and no cache entry, in memory or in Redis", async () => {
    const service = await db.open({ redis: REDIS_URL, cache: { redisPrefix: shared.prefix, negativeMax: 1 }, logger: QUIET });
    const known = await service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
    assert.ok(await service.authenticate(known.token));
    // One unknown token in the negative tier (room for one): a forgery that took a place would push it out.
    const unknown = await db.unissuedToken("secret", { service });
    assert.equal((await db.countQueries(() => service.authenticate(unknown))).queries.length, 1);
    const before = await keysUnder(shared.client, shared.prefix);
    const { result, queries } = await db.countQueries(async () => {
      const answers = [];
      for (let i = 0; i < 200; i++) {
        answers.push(await service.verifyApiKey(forged("secret")), await service.verifyApiKey(forged("publishable")));
      }
      return answers;
    });
    assert.ok(result.every((answer) => !answer.valid && answer.code === "not_found"));
    assert.deepEqual(queries, [], "no store query");
    assert.deepEqual(await keysUnder(shared.client, shared.prefix), before, "nothing written to Redis");
    assert.equal((await db.countQueries(() => service.authenticate(unknown))).queries.length, 0, "the negative tier kept its one entry");
  });

  it("refuses a token another deployment issued (its own database and secret) with no query", async () => {
    const scratch = await db.scratch();
    const other = await initialize({ database: scratch.knex, schema: scratch.schema, redis: false, logger: QUIET });
    try {
      const theirs = await other.createApiKeys([
        { title: "s", type: "secret", created_by: "u" },
        { title: "p", type: "publishable", created_by: "u" },
      ]);
      assert.ok(await other.authenticate(theirs[0]!.token));
      await db.unissuedToken("secret");
      const { result, queries } = await db.countQueries(() =>
        Promise.all([db.service.authenticate(theirs[0]!.token), db.service.authenticatePublishable(theirs[1]!.token)]),
      );
      assert.deepEqual([result, queries], [[false, false], []]);
    } finally {
      await other.close();
      await scratch.drop();
    }
  });

  it("keeps keys issued before tags working, and refuses format-1 tokens with no query once none is left", async () => {
    const secretToken = await legacyKey("secret", "apk_legacy_secret");
    const publishableToken = await legacyKey("publishable", "apk_legacy_pub");
    // A service started after these keys existed, as an upgraded deployment is.
    const service = await db.open({ cache: false });
    const found = await service.authenticate(secretToken);
    assert.equal(found && [found.id, found.token_format].join(), "apk_legacy_secret,1");
    assert.ok(await service.authenticatePublishable(publishableToken));
    const probe = await db.countQueries(() => service.authenticate(forged("secret", 45)));
    assert.deepEqual([probe.result, probe.queries.length], [false, 1], "while format-1 keys remain, format 1 is looked up");

    // Rolling a format-1 key issues a tagged token; the old one works until its revocation.
    const successor = await service.roll("apk_legacy_secret", { revoked_by: "u", revoke_in: 60 });
    assert.deepEqual([successor.token.length, successor.token_format], [53, 2]);
    assert.ok(await service.authenticate(successor.token));
    assert.ok(await service.authenticate(secretToken));
    await service.revoke("apk_legacy_pub", { revoked_by: "u" });
    assert.equal((await db.countQueries(() => service.authenticate(forged("secret", 45)))).queries.length, 1, "a scheduled revocation still counts");

    db.clock.advance(60_000);
    await service.deleteApiKeys("apk_legacy_pub");
    for (const token of [forged("secret", 45), secretToken, publishableToken]) {
      const { result, queries } = await db.countQueries(() => service.verifyApiKey(token));
      assert.deepEqual([result.code, queries], ["not_found", []], token.slice(0, 6));
    }
    // Another instance learns it when it next asks (at start here; every minute otherwise), and
    // meanwhile refuses the same tokens after a lookup.
    const later = await db.open({ cache: false });
    await db.unissuedToken("secret", { service: later });
    assert.deepEqual((await db.countQueries(() => later.authenticate(secretToken))).queries, []);
  });

  it("counts a soft-deleted or expired format-1 key as left, since it can come back", async () => {
    const token = await legacyKey("secret", "apk_legacy");
    const store = new KnexApiKeyStore(db.knex, db.schema);
    await store.update(["apk_legacy"], { deleted_at: db.clock.now(), expires_at: db.clock.now() });
    assert.equal(await store.hasLegacyTokens(db.clock.now()), true);
    const service = await db.open({ cache: false });
    assert.deepEqual(await service.restoreApiKeys("apk_legacy"), { api_key_id: ["apk_legacy"] });
    await service.updateApiKeys("apk_legacy", { expires_at: null });
    assert.ok(await service.authenticate(token));
  });

  it("with a pepper, tags under the key derived from the pepper", async () => {
    const pepper = "a pepper of this deployment";
    const peppered = await db.open({ pepper });
    const key = await peppered.createApiKeys({ title: "k", type: "publishable", created_by: "u" });
    assert.equal(hasValidTag(key.token, deriveKey(pepper, KEY_PURPOSES.tokenTag)), true);
    assert.ok(await peppered.authenticatePublishable(key.token));
    // The same database without the pepper tags under the deployment secret: the token is not one of its own.
    await db.unissuedToken("secret");
    const { result, queries } = await db.countQueries(() => db.service.authenticatePublishable(key.token));
    assert.deepEqual([result, queries], [false, []]);
  });

  it("property: flipping any one character of a valid token never authenticates", async () => {
    const key = await db.service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
    for (let i = 0; i < key.token.length; i++) {
      const pool = ALPHABET.replace(key.token[i]!, "");
      const char = pool[randomBytes(1)[0]! % pool.length]!;
      const flipped = key.token.slice(0, i) + char + key.token.slice(i + 1);
      assert.equal(await db.service.authenticate(flipped), false, `position ${i}`);
    }
    assert.ok(await db.service.authenticate(key.token));
  });
});

describe("token tag with a store that keeps no secret", () => {
  it("issues format-1 tokens and keeps accepting them, when there is no pepper either", async () => {
    const store = new MemoryApiKeyStore();
    Object.defineProperty(store, "loadSecret", { value: undefined });
    const service = await initialize({ store, cache: false, redis: false });
    try {
      const key = await service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
      assert.deepEqual([key.token.length, key.token_format], [45, 1]);
      assert.ok(await service.authenticate(key.token));
      assert.equal(await service.authenticate(forged("secret")), false);
    } finally {
      await service.close();
    }
  });
});

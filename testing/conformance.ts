// The store conformance suite: the service's contract, checked through any ApiKeyStore. Store
// authors run it in their own test runner; this package runs it on every store it ships.
//
//   import { apiKeyStoreConformance } from "express-api-keys/testing";
//   for (const check of apiKeyStoreConformance({ openStore: async () => new MyStore() })) {
//     it(check.title, check.run);
//   }
//
// Each check opens a fresh, empty store, builds a service on it with no cache (so every call
// reaches the store) and a clock that moves only when the check moves it.
import assert from "node:assert/strict";
import { ApiKeyError, type ApiKeyErrorType } from "../lib/errors";
import { importedHashValue } from "../lib/imported-keys";
import { initialize } from "../setup/initialize";
import type { ApiKeyService } from "../lib/service";
import type { ApiKeyStore } from "../lib/store";
import { generateToken, redactToken, storedTokenValue } from "../lib/tokens";
import type { ApiKeyDTO, FilterableApiKeyProps, FindConfig } from "../lib/types";

export interface ConformanceOptions {
  /** Returns a store holding no keys, ready to use (migrated). Called once per check. */
  openStore(): Promise<ApiKeyStore>;
  /** Releases a store after its check. Default: `store.close?.()`. */
  closeStore?(store: ApiKeyStore): Promise<void>;
  /** Checks to leave out, by title, each with the reason (say, an operator the store refuses). */
  skip?: Record<string, string>;
  /**
   * For a store with `within`: opens a transaction of the kind the store takes in
   * `{ transaction }` (for the Knex store, `knex.transaction()`), with its commit and rollback.
   * A store with `within` and no `appTransaction` fails the transaction check, naming this option.
   */
  appTransaction?: (store: ApiKeyStore) => Promise<AppTransaction>;
}

export interface AppTransaction {
  transaction: unknown;
  commit(): Promise<void>;
  rollback(): Promise<void>;
}

export interface ConformanceCheck {
  title: string;
  run: () => Promise<void>;
}

interface Harness {
  service: ApiKeyService;
  store: ApiKeyStore;
  /** Moves the service's clock forward. */
  advance: (ms: number) => void;
  now: () => Date;
  /** Another service on the same store (a second app instance). */
  open: () => Promise<ApiKeyService>;
  appTransaction: ConformanceOptions["appTransaction"];
}

const DAY_MS = 86_400_000;

/** A quota's fields when the store counts quotas (it has `consumeQuota`); none otherwise, since such a store refuses them. */
function quotaIfCounted<T extends object>(store: ApiKeyStore, quota: T): T | Record<string, never> {
  return store.consumeQuota ? quota : {};
}

/** Verifies `token` `count` times at once, spread over `services`, and counts the valid answers and the codes of the rest. */
async function verifyConcurrently(services: ApiKeyService[], token: string, count: number): Promise<{ valid: number; codes: Set<string> }> {
  const results = await Promise.all(Array.from({ length: count }, (_, i) => services[i % services.length]!.verifyApiKey(token)));
  return { valid: results.filter((result) => result.valid).length, codes: new Set(results.filter((result) => !result.valid).map((result) => result.code)) };
}

async function rejectsWith(promise: Promise<unknown>, type: ApiKeyErrorType, message?: string | RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof ApiKeyError, `expected an ApiKeyError, got ${String(error)}`);
    assert.equal(error.type, type, `type of "${error.message}"`);
    if (typeof message === "string") assert.equal(error.message, message);
    else if (message) assert.match(error.message, message);
    return true;
  });
}

const checks: [string, (h: Harness) => Promise<void>][] = [
  ["creates keys and hands out a secret key's plaintext only once", async ({ service }) => {
    const secret = await service.createApiKeys({ title: "Admin", type: "secret", created_by: "user_1" });
    assert.match(secret.token, /^sk_/);
    const read = await service.retrieveApiKey(secret.id);
    assert.equal(read.token, "");
    assert.deepEqual({ ...read, token: secret.token }, secret);
    const publishable = await service.createApiKeys({ title: "Store", type: "publishable", created_by: "user_1" });
    assert.equal((await service.retrieveApiKey(publishable.id)).token, publishable.token);
  }],

  ["keeps dates exactly, to the millisecond", async ({ service, advance }) => {
    advance(123);
    const key = await service.createApiKeys({ title: "t", type: "secret", created_by: "u" });
    const read = await service.retrieveApiKey(key.id);
    assert.ok(read.created_at instanceof Date);
    assert.equal(read.created_at.getTime(), key.created_at.getTime());
    assert.equal(read.updated_at.getTime(), key.updated_at.getTime());
  }],

  ["mirrors its input and creates a batch in order", async ({ service }) => {
    const keys = await service.createApiKeys([
      { title: "one", type: "secret", created_by: "u" },
      { title: "two", type: "publishable", created_by: "u" },
    ]);
    assert.deepEqual(keys.map((key) => key.title), ["one", "two"]);
    assert.deepEqual(await service.createApiKeys([]), []);
    assert.deepEqual((await service.listApiKeys()).map((key) => key.title), ["one", "two"]);
  }],

  ["answers not_found for an unknown id", async ({ service }) => {
    await rejectsWith(service.retrieveApiKey("apk_missing"), "not_found", "ApiKey with id: apk_missing was not found");
    await rejectsWith(service.updateApiKeys("apk_missing", { title: "x" }), "not_found");
  }],

  ["filters by values, arrays, null and operator maps", async ({ service, advance }) => {
    const [a, b, c] = (await service.createApiKeys([
      { title: "Storefront Web", type: "publishable", created_by: "alice" },
      { title: "Storefront App", type: "publishable", created_by: "bob" },
      { title: "CI deploy", type: "secret", created_by: "alice" },
    ])) as [ApiKeyDTO, ApiKeyDTO, ApiKeyDTO];
    advance(1000);
    await service.revoke(c.id, { revoked_by: "bob" });
    const titles = async (filters: FilterableApiKeyProps, config?: FindConfig) =>
      (await service.listApiKeys(filters, config)).map((key) => key.title);
    assert.deepEqual(await titles({ type: "publishable" }), ["Storefront Web", "Storefront App"]);
    assert.deepEqual(await titles({ id: [c.id, b.id] }), ["Storefront App", "CI deploy"]);
    assert.deepEqual(await titles({ id: [] }), []);
    assert.deepEqual(await titles({ revoked_at: null }), ["Storefront Web", "Storefront App"]);
    assert.deepEqual(await titles({ revoked_at: { $ne: null } }), ["CI deploy"]);
    assert.deepEqual(await titles({ created_by: { $ne: "alice" } }), ["Storefront App"]);
    assert.deepEqual(await titles({ created_by: { $nin: ["alice"] } }), ["Storefront App"]);
    assert.deepEqual(await titles({ revoked_by: { $ne: "bob" } }), [], "NULLs never equal or differ from a value");
    assert.deepEqual(await titles({ revoked_at: { $exists: true } }), ["CI deploy"]);
    assert.deepEqual(await titles({ revoked_at: { $gt: a.created_at } }), ["CI deploy"]);
    assert.deepEqual(await titles({ created_at: { $lte: a.created_at } }), ["Storefront Web", "Storefront App", "CI deploy"]);
    assert.deepEqual(await titles({ title: { $gte: "Storefront" } }), ["Storefront Web", "Storefront App"]);
    assert.deepEqual(await titles({ created_by: { $not: { $eq: "alice" } } }), ["Storefront App"]);
    assert.deepEqual(await titles({ token: a.token }), ["Storefront Web"]);
    assert.deepEqual(await titles({ token: c.token }), ["CI deploy"]);
  }],

  ["combines filters with $and and $or, nested", async ({ service }) => {
    await service.createApiKeys([
      { title: "alpha", type: "publishable", created_by: "alice" },
      { title: "beta", type: "secret", created_by: "bob" },
      { title: "gamma", type: "secret", created_by: "alice" },
    ]);
    const titles = async (filters: FilterableApiKeyProps) => (await service.listApiKeys(filters)).map((key) => key.title);
    assert.deepEqual(await titles({ $or: [{ title: "alpha" }, { created_by: "bob" }] }), ["alpha", "beta"]);
    assert.deepEqual(await titles({ $and: [{ type: "secret" }, { $or: [{ created_by: "alice" }, { title: "zzz" }] }] }), ["gamma"]);
  }],

  ["searches with q: every word, case-insensitively, in the title or the redacted token", async ({ service }) => {
    const [web] = (await service.createApiKeys([
      { title: "Storefront Web", type: "publishable", created_by: "u" },
      { title: "Storefront App", type: "publishable", created_by: "u" },
      { title: "100%_sync", type: "secret", created_by: "u" },
    ])) as [ApiKeyDTO];
    const titles = async (q: string) => (await service.listApiKeys({ q })).map((key) => key.title);
    assert.deepEqual(await titles("storefront"), ["Storefront Web", "Storefront App"]);
    assert.deepEqual(await titles("STOREFRONT web"), ["Storefront Web"]);
    assert.deepEqual(await titles("%_"), ["100%_sync"], "LIKE wildcards match literally");
    assert.ok((await titles(web.redacted.slice(3, 6))).includes("Storefront Web"));
  }],

  ["matches $like case-sensitively and $ilike case-insensitively", async ({ service }) => {
    await service.createApiKeys([
      { title: "Storefront", type: "publishable", created_by: "u" },
      { title: "storeroom", type: "publishable", created_by: "u" },
    ]);
    const titles = async (filters: FilterableApiKeyProps) => (await service.listApiKeys(filters)).map((key) => key.title);
    assert.deepEqual(await titles({ title: { $like: "Store%" } }), ["Storefront"]);
    assert.deepEqual(await titles({ title: { $like: "store_oom" } }), ["storeroom"]);
    assert.deepEqual(await titles({ title: { $ilike: "STORE%" } }), ["Storefront", "storeroom"]);
  }],

  ["matches $re as a case-sensitive regular expression", async ({ service }) => {
    await service.createApiKeys([
      { title: "key-2024", type: "secret", created_by: "u" },
      { title: "Key-2025", type: "secret", created_by: "u" },
    ]);
    const titles = async (filters: FilterableApiKeyProps) => (await service.listApiKeys(filters)).map((key) => key.title);
    assert.deepEqual(await titles({ title: { $re: "^key-[0-9]+$" } }), ["key-2024"]);
  }],

  ["orders, pages and counts", async ({ service }) => {
    await service.createApiKeys(["c", "a", "d", "b"].map((title) => ({ title, type: "secret" as const, created_by: "u" })));
    const page = await service.listApiKeys({}, { order: { title: "DESC" }, skip: 1, take: 2 });
    assert.deepEqual(page.map((key) => key.title), ["c", "b"]);
    const [rows, count] = await service.listAndCountApiKeys({ type: "secret" }, { take: 1 });
    assert.equal(rows.length, 1);
    assert.equal(count, 4);
    const [selected] = await service.listApiKeys({ title: "a" }, { select: ["title"] });
    assert.deepEqual(Object.keys(selected!).sort(), ["id", "title"]);
  }],

  ["renames by id and by selector", async ({ service }) => {
    const [a, b] = (await service.createApiKeys([
      { title: "a", type: "secret", created_by: "u" },
      { title: "b", type: "secret", created_by: "u" },
    ])) as [ApiKeyDTO, ApiKeyDTO];
    assert.equal((await service.updateApiKeys(a.id, { title: "a2" })).title, "a2");
    const updated = await service.updateApiKeys({ id: [b.id] }, { title: "b2" });
    assert.deepEqual(updated.map((key) => key.title), ["b2"]);
    assert.deepEqual((await service.listApiKeys()).map((key) => key.title), ["a2", "b2"]);
    await rejectsWith(service.updateApiKeys({}, { title: "all" }), "invalid_data");
  }],

  ["revokes now or later; a scheduled key authenticates until that instant", async ({ service, advance }) => {
    const [now, later] = (await service.createApiKeys([
      { title: "now", type: "secret", created_by: "u" },
      { title: "later", type: "secret", created_by: "u" },
    ])) as [ApiKeyDTO, ApiKeyDTO];
    await service.revoke(now.id, { revoked_by: "admin" });
    assert.equal(await service.authenticate(now.token), false);
    await service.revoke(later.id, { revoked_by: "admin", revoke_in: 60 });
    assert.ok(await service.authenticate(later.token));
    advance(59_999);
    assert.ok(await service.authenticate(later.token));
    advance(1);
    assert.equal(await service.authenticate(later.token), false);
    await rejectsWith(service.revoke(now.id, { revoked_by: "admin" }), "invalid_data", /already revoked/);
  }],

  ["deletes only revoked keys, with their links", async ({ service }) => {
    const [live, gone] = (await service.createApiKeys([
      { title: "live", type: "publishable", created_by: "u" },
      { title: "gone", type: "publishable", created_by: "u" },
    ])) as [ApiKeyDTO, ApiKeyDTO];
    await service.updateLinks(gone.id, { add: ["sc_1"] });
    await rejectsWith(service.deleteApiKeys([live.id]), "not_allowed", `Cannot delete api keys that are not revoked - ${live.id}`);
    await service.revoke(gone.id, { revoked_by: "u" });
    await service.deleteApiKeys([gone.id, "apk_unknown"]);
    assert.deepEqual((await service.listApiKeys({}, { withDeleted: true })).map((key) => key.id), [live.id]);
    const successor = await service.createApiKeys({ title: "new", type: "publishable", created_by: "u" });
    assert.deepEqual(await service.listLinks(successor.id), []);
  }],

  ["authenticates secret keys only, and never a soft-deleted one", async ({ service, store }) => {
    const [secret, publishable] = (await service.createApiKeys([
      { title: "s", type: "secret", created_by: "u" },
      { title: "p", type: "publishable", created_by: "u" },
    ])) as [ApiKeyDTO, ApiKeyDTO];
    const found = await service.authenticate(secret.token);
    assert.ok(found);
    assert.equal(found.id, secret.id);
    assert.equal(found.token, "");
    assert.equal(await service.authenticate(publishable.token), false);
    assert.equal(await service.authenticate(`${secret.token.slice(0, -1)}${secret.token.endsWith("x") ? "y" : "x"}`), false);
    await store.update([secret.id], { deleted_at: new Date() });
    assert.equal(await service.authenticate(secret.token), false);
    assert.deepEqual(await service.listApiKeys({ id: secret.id }), []);
    assert.equal((await service.listApiKeys({ id: secret.id }, { withDeleted: true })).length, 1);
  }],

  ["authenticates publishable keys with their sales channels, sorted", async ({ service }) => {
    const key = await service.createApiKeys({ title: "p", type: "publishable", created_by: "u" });
    assert.deepEqual(await service.authenticatePublishable(key.token).then((match) => match && match.sales_channel_ids), []);
    await service.updateLinks(key.id, { add: ["sc_b", "sc_a"] });
    await service.updateLinks(key.id, { resource_type: "region", add: ["reg_1"] });
    const match = await service.authenticatePublishable(key.token);
    assert.ok(match);
    assert.deepEqual(match.sales_channel_ids, ["sc_a", "sc_b"]);
    assert.equal(match.api_key.id, key.id);
  }],

  ["adds and removes links idempotently, on publishable keys only", async ({ service }) => {
    const [key, secret] = (await service.createApiKeys([
      { title: "p", type: "publishable", created_by: "u" },
      { title: "s", type: "secret", created_by: "u" },
    ])) as [ApiKeyDTO, ApiKeyDTO];
    assert.deepEqual(await service.updateLinks(key.id, { add: ["sc_1", "sc_2"] }), ["sc_1", "sc_2"]);
    assert.deepEqual(await service.updateLinks(key.id, { add: ["sc_1"], remove: ["sc_2", "sc_9"] }), ["sc_1"]);
    assert.deepEqual(await service.listLinks(key.id, "region"), []);
    await rejectsWith(service.updateLinks(secret.id, { add: ["sc_1"] }), "invalid_data", /publishable/);
  }],

  ["rolls a key atomically into one successor with the same links", async ({ service, open }) => {
    const old = await service.createApiKeys({ title: "Storefront", type: "publishable", created_by: "alice" });
    await service.updateLinks(old.id, { add: ["sc_1"] });
    const other = await open();
    const results = await Promise.allSettled(
      Array.from({ length: 4 }, (_, i) => (i % 2 ? other : service).roll(old.id, { revoked_by: `r${i}` })),
    );
    const won = results.filter((result): result is PromiseFulfilledResult<ApiKeyDTO> => result.status === "fulfilled");
    assert.equal(won.length, 1, "exactly one concurrent roll succeeds");
    const successor = won[0]!.value;
    assert.deepEqual([successor.title, successor.type, successor.created_by], ["Storefront", "publishable", "alice"]);
    assert.deepEqual(await service.listLinks(successor.id), ["sc_1"]);
    assert.notEqual((await service.retrieveApiKey(old.id)).revoked_at, null);
  }],

  ["serialises concurrent revocations: each key is revoked once", async ({ service, open }) => {
    const key = await service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
    const other = await open();
    const results = await Promise.allSettled(
      Array.from({ length: 4 }, (_, i) => (i % 2 ? other : service).revoke(key.id, { revoked_by: `r${i}` })),
    );
    assert.equal(results.filter((result) => result.status === "fulfilled").length, 1);
  }],

  ["records last use in the background, never going back in time", async ({ service, store, advance, now }) => {
    const key = await service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
    advance(5000);
    assert.ok(await service.authenticate(key.token));
    const used = now();
    await store.recordLastUsed([[key.id, new Date(used.getTime() - 1000)]]);
    await service.close();
    const [row] = await store.find(
      { kind: "compare", field: "id", op: "=", value: key.id },
      { order: [["id", "asc"]], withDeleted: false },
    );
    assert.equal(row!.last_used_at?.getTime(), used.getTime());
  }],

  ["runs store transactions all or nothing", async ({ service, store }) => {
    const key = await service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
    await assert.rejects(
      store.transaction(async (inner) => {
        await inner.update([key.id], { title: "changed" });
        throw new Error("rolled back");
      }),
      /rolled back/,
    );
    assert.equal((await service.retrieveApiKey(key.id)).title, "k");
  }],

  ["stores every policy field and reads it back as given, with defaults for the rest", async ({ service, store, now }) => {
    const policy = {
      expires_at: new Date(now().getTime() + 3_600_000),
      scopes: ["orders:read", "orders:*"],
      owner_id: "org_1",
      metadata: { plan: "pro", nested: { list: [1, "two", null, true, { deep: 1.5 }] }, unicode: "\u00e9\u6f22" },
      rate_limits: [{ name: "per_minute", limit: 60, duration: 60 }],
      ...quotaIfCounted(store, { remaining: 0, refill: { amount: 10, interval: "month" as const } }),
    };
    const key = await service.createApiKeys({ title: "k", type: "secret", created_by: "u", ...policy });
    const read = await service.retrieveApiKey(key.id);
    for (const [field, value] of Object.entries(policy)) assert.deepEqual(read[field as keyof ApiKeyDTO], value, field);
    assert.ok(read.expires_at instanceof Date);
    const [listed] = await service.listApiKeys({ id: key.id });
    assert.deepEqual(listed, read);
    const plain = await service.createApiKeys({ title: "p", type: "publishable", created_by: "u" });
    const defaults = { expires_at: null, owner_id: null, scopes: [], metadata: {}, rate_limits: [], remaining: null, refill: null };
    for (const [field, value] of Object.entries(defaults)) assert.deepEqual((await service.retrieveApiKey(plain.id))[field as keyof ApiKeyDTO], value, field);
    // A read is the caller's own copy: changing it changes nothing stored.
    read.scopes.push("users:write");
    (read.metadata as Record<string, unknown>).plan = "free";
    assert.deepEqual((await service.retrieveApiKey(key.id)).scopes, policy.scopes);
    assert.deepEqual((await service.retrieveApiKey(key.id)).metadata, policy.metadata);
  }],

  ["updates each policy field, and clears expiry and owner with null", async ({ service, store, now }) => {
    const key = await service.createApiKeys({ title: "k", type: "secret", created_by: "u", owner_id: "org_1", expires_in: 60 });
    const later = new Date(now().getTime() + 7_200_000);
    const changes = {
      expires_at: later,
      scopes: ["*"],
      owner_id: "org_2",
      metadata: { a: [1] },
      rate_limits: [{ name: "day", limit: 1000, duration: 86_400 }],
      ...quotaIfCounted(store, { remaining: 7, refill: { amount: 7, interval: "day" as const } }),
    };
    for (const [field, value] of Object.entries(changes)) {
      await service.updateApiKeys(key.id, { [field]: value });
      assert.deepEqual((await service.retrieveApiKey(key.id))[field as keyof ApiKeyDTO], value, field);
    }
    await service.updateApiKeys(key.id, { expires_at: null, owner_id: null, remaining: null, refill: null });
    const read = await service.retrieveApiKey(key.id);
    assert.deepEqual([read.expires_at, read.owner_id, read.remaining, read.refill, read.title], [null, null, null, null, "k"]);
    assert.deepEqual(read.scopes, ["*"]);
  }],

  ["filters on owner_id and expires_at", async ({ service, now }) => {
    const t = now().getTime();
    await service.createApiKeys([
      { title: "a", type: "secret", created_by: "u", owner_id: "org_1", expires_at: new Date(t + 1000) },
      { title: "b", type: "secret", created_by: "u", owner_id: "org_2", expires_at: new Date(t + 5000) },
      { title: "c", type: "publishable", created_by: "u" },
    ]);
    const titles = async (filters: FilterableApiKeyProps, config?: FindConfig) => (await service.listApiKeys(filters, config)).map((key) => key.title);
    assert.deepEqual(await titles({ owner_id: "org_1" }), ["a"]);
    assert.deepEqual(await titles({ owner_id: ["org_2", "org_9"] }), ["b"]);
    assert.deepEqual(await titles({ owner_id: { $like: "org%" } }), ["a", "b"]);
    assert.deepEqual(await titles({ owner_id: null }), ["c"]);
    assert.deepEqual(await titles({ owner_id: { $ne: "org_1" } }), ["b"], "NULLs never differ from a value");
    assert.deepEqual(await titles({ expires_at: { $lt: new Date(t + 5000) } }), ["a"]);
    assert.deepEqual(await titles({ expires_at: { $gte: new Date(t + 1000).toISOString() } }), ["a", "b"]);
    assert.deepEqual(await titles({ expires_at: { $exists: true } }, { order: { expires_at: "DESC" } }), ["b", "a"]);
    assert.deepEqual(await titles({ $or: [{ expires_at: null }, { owner_id: "org_2" }] }), ["b", "c"]);
  }],

  ["rolls a key into a successor with every policy field", async ({ service, store, now }) => {
    const policy = {
      expires_at: new Date(now().getTime() + 3_600_000),
      scopes: ["orders:read"],
      owner_id: "org_9",
      metadata: { k: "v" },
      rate_limits: [{ name: "burst", limit: 5, duration: 1 }],
      ...quotaIfCounted(store, { remaining: 1, refill: null }),
    };
    const old = await service.createApiKeys({ title: "k", type: "secret", created_by: "u", ...policy });
    const successor = await service.roll(old.id, { revoked_by: "u" });
    const read = await service.retrieveApiKey(successor.id);
    for (const [field, value] of Object.entries(policy)) assert.deepEqual(read[field as keyof ApiKeyDTO], value, field);
    assert.equal((await service.verifyApiKey(successor.token, { scopes: ["orders:read"] })).code, "valid");
  }],

  ["soft-deletes and restores keys: hidden and refused meanwhile, working again after", async ({ service, advance }) => {
    const [a, b] = (await service.createApiKeys([
      { title: "a", type: "secret", created_by: "u" },
      { title: "b", type: "publishable", created_by: "u", expires_in: 60 },
    ])) as [ApiKeyDTO, ApiKeyDTO];
    await service.updateLinks(b.id, { add: ["sc_1"] });
    assert.deepEqual(await service.softDeleteApiKeys([b.id, "apk_unknown", a.id]), { api_key_id: [b.id, a.id] });
    assert.equal((await service.verifyApiKey(a.token)).code, "not_found");
    assert.equal(await service.authenticatePublishable(b.token), false);
    assert.deepEqual(await service.listApiKeys(), []);
    assert.equal(await service.listAndCountApiKeys().then(([, count]) => count), 0);
    assert.deepEqual((await service.listApiKeys({}, { withDeleted: true })).map((key) => key.title), ["a", "b"]);
    await rejectsWith(service.retrieveApiKey(a.id), "not_found");
    assert.deepEqual(await service.softDeleteApiKeys(a.id), { api_key_id: [] });
    advance(60_000);
    assert.deepEqual(await service.restoreApiKeys([a.id, b.id]), { api_key_id: [a.id, b.id] });
    assert.equal((await service.retrieveApiKey(a.id)).deleted_at, null);
    assert.ok(await service.authenticate(a.token));
    assert.equal((await service.verifyApiKey(b.token)).code, "expired", "it expired while deleted");
    assert.deepEqual(await service.listLinks(b.id), ["sc_1"], "links survive a soft delete");
  }],

  ["verifies with a code for every outcome", async ({ service, advance, now }) => {
    const [live, revoked, expiring, pub] = (await service.createApiKeys([
      { title: "live", type: "secret", created_by: "u", scopes: ["orders:*"] },
      { title: "revoked", type: "secret", created_by: "u" },
      { title: "expiring", type: "secret", created_by: "u", expires_at: new Date(now().getTime() + 1000) },
      { title: "pub", type: "publishable", created_by: "u" },
    ])) as [ApiKeyDTO, ApiKeyDTO, ApiKeyDTO, ApiKeyDTO];
    await service.revoke(revoked.id, { revoked_by: "u" });
    const ok = await service.verifyApiKey(live.token, { type: "secret", scopes: ["orders:read"] });
    assert.deepEqual([ok.valid, ok.code, ok.api_key?.id], [true, "valid", live.id]);
    const forbidden = await service.verifyApiKey(live.token, { scopes: ["users:read"] });
    assert.deepEqual([forbidden.valid, forbidden.code, forbidden.missing_scopes], [false, "forbidden", ["users:read"]]);
    assert.equal((await service.verifyApiKey(revoked.token)).code, "revoked");
    assert.equal((await service.verifyApiKey(expiring.token)).code, "valid");
    advance(1000);
    assert.equal((await service.verifyApiKey(expiring.token)).code, "expired");
    assert.equal((await service.verifyApiKey(pub.token, { type: "secret" })).code, "not_found");
    assert.equal((await service.verifyApiKey(pub.token)).code, "valid");
    assert.equal((await service.verifyApiKey(`${live.token.slice(0, -1)}${live.token.endsWith("x") ? "y" : "x"}`)).code, "not_found");
  }],

  ["counts a usage quota exactly under concurrency, refills it once per interval, and takes nothing for a refused use", async ({ service, store, open, advance }) => {
    if (!store.consumeQuota) {
      // A store that cannot count a quota refuses one when a key is given it, not at every use.
      await rejectsWith(service.createApiKeys({ title: "q", type: "secret", created_by: "u", remaining: 5 }), "invalid_data", /consumeQuota/);
      return;
    }
    const key = await service.createApiKeys({ title: "q", type: "secret", created_by: "u", remaining: 20, refill: { amount: 20, interval: "day" } });
    assert.equal((await service.verifyApiKey(key.token, { cost: 15 })).remaining, 5);
    const refused = await service.verifyApiKey(key.token, { cost: 6 });
    assert.deepEqual([refused.valid, refused.code], [false, "usage_exceeded"]);
    assert.equal((await service.retrieveApiKey(key.id)).remaining, 5, "a refused use takes nothing");
    const other = await open();
    const spent = await verifyConcurrently([service, other], key.token, 30);
    assert.deepEqual([spent.valid, [...spent.codes]], [5, ["usage_exceeded"]], "exactly what was left, across two services");
    advance(DAY_MS);
    const refilled = await verifyConcurrently([service, other], key.token, 30);
    assert.equal(refilled.valid, 20, "refilled once, not once per service or per use");
    assert.equal((await service.retrieveApiKey(key.id)).remaining, 0);
  }],

  ["commits with the app's transaction, and leaves nothing after its rollback", async ({ service, store, appTransaction }) => {
    if (!store.within) {
      await rejectsWith(service.createApiKeys({ title: "t", type: "secret", created_by: "u" }, { transaction: {} }), "invalid_data", /transaction/);
      return;
    }
    assert.ok(appTransaction, "this store takes app transactions (within): pass `appTransaction` to the conformance suite so that it can open one");
    const before = await service.createApiKeys({ title: "before", type: "secret", created_by: "u" });
    const kept = await appTransaction(store);
    const inside = await service.createApiKeys({ title: "kept", type: "secret", created_by: "u" }, { transaction: kept.transaction });
    assert.deepEqual((await service.listApiKeys({}, {}, { transaction: kept.transaction })).map((key) => key.title), ["before", "kept"]);
    await kept.commit();
    const dropped = await appTransaction(store);
    const gone = await service.createApiKeys({ title: "dropped", type: "secret", created_by: "u" }, { transaction: dropped.transaction });
    await service.revoke(before.id, { revoked_by: "u" }, { transaction: dropped.transaction });
    await dropped.rollback();
    if (store.settled) {
      await store.settled(kept.transaction);
      await store.settled(dropped.transaction);
    }
    assert.deepEqual((await service.listApiKeys()).map((key) => key.title), ["before", "kept"]);
    assert.equal((await service.authenticate(inside.token) || undefined)?.id, inside.id);
    assert.equal((await service.authenticate(before.token) || undefined)?.id, before.id, "the revocation rolled back");
    assert.equal(await service.authenticate(gone.token), false);
  }],

  ["keeps an audit log: an event per change, found by key, actor, action and time, in order, and none for a change rolled back", async ({ service, store, advance, now }) => {
    if (!store.insertAuditEvents) {
      await rejectsWith(service.listAuditEvents(), "not_allowed", /audit log/);
      return;
    }
    const start = now();
    const key = await service.createApiKeys({ title: "a", type: "secret", created_by: "u" }, { actor: "alice" });
    advance(1000);
    await service.updateApiKeys(key.id, { title: "b" }, { actor: "bob" });
    advance(1000);
    await service.revoke(key.id, { revoked_by: "bob" });
    await rejectsWith(service.updateApiKeys(key.id, { title: "c" }, { actor: "" }), "invalid_data", /actor/);
    const trail = await service.listAuditEvents({ key_id: key.id });
    assert.deepEqual(trail.map((event) => [event.action, event.actor_id]), [["created", "alice"], ["updated", "bob"], ["revoked", null]]);
    assert.deepEqual(trail[1]!.changes, { title: { before: "a", after: "b" } });
    assert.equal((await service.retrieveApiKey(key.id)).title, "b", "the change whose event failed rolled back");
    assert.deepEqual((await service.listAuditEvents({ actor_id: "bob" })).map((event) => event.action), ["updated"]);
    assert.deepEqual((await service.listAuditEvents({ action: ["revoked", "created"] }, { order: { at: "DESC" } })).map((event) => event.action), ["revoked", "created"]);
    assert.deepEqual((await service.listAuditEvents({ at: { $gt: start, $lte: new Date(start.getTime() + 1000) } })).map((event) => event.action), ["updated"]);
    assert.deepEqual(await service.listAndCountAuditEvents({}, { skip: 2, take: 5 }).then(([events, count]) => [events.length, count]), [1, 3]);
  }],

  ["adds up verification counts from several services, per key, hour and code, and deletes them past their retention", async ({ service, store, open, advance, now }) => {
    if (!store.recordUsage) {
      await rejectsWith(service.getUsage(), "not_allowed", /verification counts/);
      return;
    }
    const key = await service.createApiKeys({ title: "counted", type: "secret", created_by: "u" });
    const [a, b] = [await open(), await open()];
    await a.verifyApiKey(key.token);
    await b.verifyApiKey(key.token);
    await b.verifyApiKey(key.token, { scopes: ["x:y"] });
    await a.verifyApiKey(generateToken("secret"));
    await Promise.all([a.close(), b.close()]);
    const rows = await service.getUsage();
    const hour = new Date(Math.floor(now().getTime() / 3_600_000) * 3_600_000).toISOString();
    assert.deepEqual(
      rows.map((row) => [row.key_id, row.time, row.valid, row.forbidden, row.not_found]),
      [[null, hour, 0, 0, 1], [key.id, hour, 2, 1, 0]].sort((x, y) => String(x[0] ?? "").localeCompare(String(y[0] ?? ""))),
    );
    advance(100 * DAY_MS);
    await store.deleteUsageBefore!(new Date(now().getTime() - DAY_MS));
    assert.deepEqual(await service.getUsage({ from: new Date(0) }), []);
  }],

  ["finds a publishable key with its links as findByToken and linkedIds together do", async ({ service, store }) => {
    const key = await service.createApiKeys({ title: "shop", type: "publishable", created_by: "u" });
    await service.updateLinks(key.id, { add: ["sc_b", "sc_a"] });
    await service.updateLinks(key.id, { add: ["x_1"], resource_type: "warehouse" });
    const bare = await service.createApiKeys({ title: "bare", type: "publishable", created_by: "u" });
    const secret = await service.createApiKeys({ title: "s", type: "secret", created_by: "u" });
    const twoSteps = async (token: string) => {
      const record = await store.findByToken(token, "publishable");
      return record && { ...record, sales_channel_ids: (await store.linkedIds(record.id, "sales_channel")).sort() };
    };
    for (const token of [key.token, bare.token, secret.token, generateToken("publishable")]) {
      const expected = await twoSteps(token);
      const found = store.findPublishable ? await store.findPublishable(token) : expected;
      assert.deepEqual(found && { ...found, sales_channel_ids: [...found.sales_channel_ids].sort() }, expected, token.slice(0, 3));
    }
    assert.deepEqual((await twoSteps(key.token))?.sales_channel_ids, ["sc_a", "sc_b"]);
    const match = await service.authenticatePublishable(key.token);
    assert.deepEqual(match && [...match.sales_channel_ids].sort(), ["sc_a", "sc_b"]);
  }],

  ["tags new tokens, keeps a key issued before tags working, and tells when no such key is left", async ({ service, store, now, advance, open }) => {
    const key = await service.createApiKeys({ title: "new", type: "secret", created_by: "u" });
    // Tagged (53 characters) when the store keeps a secret; format 1 (45) when it does not.
    assert.deepEqual([key.token.length, key.token_format], store.loadSecret ? [53, 2] : [45, 1]);
    assert.ok(await service.authenticate(key.token));
    // A key issued before tags, written as a release before them wrote it.
    const token = generateToken("secret");
    const old = { ...(await service.retrieveApiKey(key.id)), id: "apk_format_one", title: "old", token: storedTokenValue(token, "secret"), redacted: redactToken(token), token_format: 1 as const };
    await store.insert([old]);
    if (store.hasLegacyTokens) assert.equal(await store.hasLegacyTokens(now()), true);
    const upgraded = await open();
    assert.equal((await upgraded.authenticate(token) || undefined)?.id, old.id);
    await upgraded.revoke(old.id, { revoked_by: "u", revoke_in: 1 });
    if (store.hasLegacyTokens) {
      assert.equal(await store.hasLegacyTokens(now()), true, "until its revocation takes effect");
      assert.equal(await store.hasLegacyTokens(new Date(now().getTime() + 1000)), false);
    }
    advance(1000);
    assert.equal(await upgraded.authenticate(token), false);
    assert.ok(await upgraded.authenticate(key.token));
  }],

  ["counts imported keys, and those awaiting their first use, until they are revoked", async ({ service, store, now }) => {
    if (!store.importedKeys) return;
    const base = await service.createApiKeys({ title: "base", type: "secret", created_by: "u" });
    assert.deepEqual(await store.importedKeys(now()), { live: 0, awaiting: 0 });
    const record = await service.retrieveApiKey(base.id);
    const awaiting = { ...record, id: "apk_imported_secret", token: importedHashValue("0".repeat(32), "a".repeat(128)), redacted: "sk_abc***def", token_format: 3 as const };
    const publishable = { ...record, id: "apk_imported_store", type: "publishable" as const, token: `pk_${"b".repeat(64)}`, redacted: "pk_bbb***bbb", token_format: 3 as const };
    await store.insert([awaiting, publishable]);
    assert.deepEqual(await store.importedKeys(now()), { live: 2, awaiting: 1 });
    await store.update([awaiting.id], { token: "c".repeat(64) });
    assert.deepEqual(await store.importedKeys(now()), { live: 2, awaiting: 0 }, "a first use replaces Medusa's hash");
    await store.update([publishable.id, awaiting.id], { revoked_at: now(), revoked_by: "u" });
    assert.deepEqual(await store.importedKeys(now()), { live: 0, awaiting: 0 });
  }],
];

export function apiKeyStoreConformance(options: ConformanceOptions): ConformanceCheck[] {
  const skip = options.skip ?? {};
  return checks
    .filter(([title]) => !(title in skip))
    .map(([title, body]) => ({
      title,
      async run() {
        const store = await options.openStore();
        let time = Date.UTC(2026, 0, 1);
        const now = () => new Date(time);
        const services: ApiKeyService[] = [];
        const open = async () => {
          const service = await initialize({ store, now, cache: false, redis: false, runMigrations: false });
          services.push(service);
          return service;
        };
        try {
          await body({ service: await open(), store, advance: (ms) => (time += ms), now, open, appTransaction: options.appTransaction });
        } finally {
          await Promise.all(services.map((service) => service.close()));
          await (options.closeStore ? options.closeStore(store) : store.close?.());
        }
      },
    }));
}

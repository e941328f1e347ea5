// Keys imported from a database shaped exactly as Medusa's API key module leaves it (its
// migrations' final DDL), filled with rows computed the way Medusa computes them: every live
// token authenticates unchanged, a secret one through one scrypt check and then none.
import assert from "node:assert/strict";
import crypto, { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import type { Knex } from "knex";
import { FIRST_USE_PER_SECOND } from "../../lib/imported-keys";
import type { ApiKeyService } from "../../lib/service";
import request from "supertest";
import { initialize } from "../../setup/initialize";
import { createApp } from "../helpers/create-app";
import { forEachBackend } from "../helpers/backends";
import { REDIS_URL, redisPerTest } from "../helpers/redis";
import { runCli } from "../helpers/run-cli";
import { POSTGRES_URL, connectPostgres } from "../helpers/services";

const scrypt = promisify(crypto.scrypt);

/** Medusa's `redactKey`. */
const redact = (token: string): string => [token.slice(0, 6), token.slice(-3)].join("***");

/** The tables as Medusa's migrations leave them (api-key module, and the link module's table). */
async function createMedusaTables(knex: Knex, schema: string, createSchema = true): Promise<void> {
  if (createSchema) await knex.raw(`create schema ??`, [schema]);
  await knex.raw(`create table ??.api_key ("id" text not null, "token" text not null, "salt" text not null, "redacted" text not null, "title" text not null, "type" text not null, "last_used_at" timestamptz null, "created_by" text not null, "created_at" timestamptz not null default now(), "updated_at" timestamptz not null default now(), "revoked_by" text null, "revoked_at" timestamptz null, "deleted_at" timestamptz null, constraint "api_key_pkey" primary key ("id"), constraint "api_key_type_check" check ("type" in ('publishable', 'secret')))`, [schema]);
  await knex.raw(`create unique index on ??.api_key (token)`, [schema]);
  await knex.raw(`create index on ??.api_key (redacted) where deleted_at is null`, [schema]);
  await knex.raw(`create table ??.publishable_api_key_sales_channel ("publishable_key_id" varchar(255) not null, "sales_channel_id" varchar(255) not null, "id" varchar(255) not null, "created_at" timestamptz not null default CURRENT_TIMESTAMP, "updated_at" timestamptz not null default CURRENT_TIMESTAMP, "deleted_at" timestamptz null, constraint "publishable_api_key_sales_channel_pkey" primary key ("publishable_key_id", "sales_channel_id"))`, [schema]);
}

interface MedusaKey {
  id: string;
  token: string;
}

/** Writes a key as Medusa's service does (generatePublishableKey / generateSecretKey); answers its raw token. */
async function medusaKey(knex: Knex, schema: string, id: string, type: "publishable" | "secret", extra: Record<string, unknown> = {}): Promise<MedusaKey> {
  const token = `${type === "secret" ? "sk" : "pk"}_${randomBytes(32).toString("hex")}`;
  const salt = type === "secret" ? randomBytes(16).toString("hex") : "";
  const stored = type === "secret" ? ((await scrypt(token, salt, 64)) as Buffer).toString("hex") : token;
  await knex.withSchema(schema).table("api_key").insert({ id, token: stored, salt, redacted: redact(token), title: `Medusa ${id}`, type, created_by: "user_01", ...extra });
  return { id, token };
}

/** Counts calls of node:crypto's scrypt while `work` runs. */
async function countingScrypt<T>(work: () => Promise<T>): Promise<{ result: T; calls: number }> {
  const module = crypto as unknown as { scrypt: typeof crypto.scrypt };
  const original = module.scrypt;
  let calls = 0;
  module.scrypt = ((...args: Parameters<typeof crypto.scrypt>) => {
    calls++;
    return (original as (...a: unknown[]) => void)(...args);
  }) as typeof crypto.scrypt;
  try {
    return { result: await work(), calls };
  } finally {
    module.scrypt = original;
  }
}

forEachBackend("Medusa import", (db) => {
  let source: Knex | undefined;
  let schema: string;
  let keys: Record<string, MedusaKey>;
  const redis = redisPerTest();

  before(async function () {
    this.timeout(60_000);
    source = await connectPostgres(this);
  });

  after(async () => {
    await source?.destroy();
  });

  beforeEach(async function () {
    schema = `medusa_${randomBytes(4).toString("hex")}`;
    await createMedusaTables(source!, schema);
    const hourAgo = new Date(db.clock.now().getTime() - 3_600_000);
    const inAnHour = new Date(db.clock.now().getTime() + 3_600_000);
    keys = {
      storefront: await medusaKey(source!, schema, "apk_01STOREFRONT0000000000000", "publishable"),
      admin: await medusaKey(source!, schema, "apk_01ADMIN00000000000000000", "secret", { last_used_at: hourAgo }),
      revokedSecret: await medusaKey(source!, schema, "apk_01REVOKEDSECRET000000000", "secret", { revoked_at: hourAgo, revoked_by: "user_02" }),
      revokedStore: await medusaKey(source!, schema, "apk_01REVOKEDSTORE0000000000", "publishable", { revoked_at: hourAgo, revoked_by: "user_02" }),
      scheduled: await medusaKey(source!, schema, "apk_01SCHEDULED000000000000", "secret", { revoked_at: inAnHour, revoked_by: "user_02" }),
      deletedSecret: await medusaKey(source!, schema, "apk_01DELETEDSECRET00000000", "secret", { deleted_at: hourAgo }),
      deletedStore: await medusaKey(source!, schema, "apk_01DELETEDSTORE000000000", "publishable", { deleted_at: hourAgo }),
    };
    await source!.withSchema(schema).table("publishable_api_key_sales_channel").insert([
      { publishable_key_id: keys.storefront!.id, sales_channel_id: "sc_01EU", id: "pksc_1" },
      { publishable_key_id: keys.storefront!.id, sales_channel_id: "sc_01US", id: "pksc_2" },
      { publishable_key_id: keys.storefront!.id, sales_channel_id: "sc_01OLD", id: "pksc_3", deleted_at: hourAgo },
    ]);
  });

  afterEach(async () => {
    await source!.raw("drop schema if exists ?? cascade", [schema]);
  });

  /** A Knex on the Medusa schema, as an app would pass its own. */
  async function medusaKnex<T>(work: (knex: Knex) => Promise<T>): Promise<T> {
    const { default: knexFactory } = await import("knex");
    const knex = knexFactory({ client: "pg", connection: source!.client.config.connection, searchPath: [schema], pool: { min: 0, max: 2 } });
    try {
      return await work(knex);
    } finally {
      await knex.destroy();
    }
  }

  const importInto = (service: ApiKeyService, dryRun = false) => medusaKnex((knex) => service.importMedusaKeys(knex, { dryRun }));

  it("imports every key with its id, fields, state and live links; a second run adds nothing", async function () {
    this.timeout(30_000);
    const dry = await importInto(db.service, true);
    assert.equal(dry.dry_run, true);
    assert.equal(dry.imported, 7);
    assert.equal(Number((await db.table("api_key").count({ n: "*" }))[0]!.n), 0, "a dry run writes nothing");

    const report = await importInto(db.service);
    assert.deepEqual(
      { found: report.found, imported: report.imported, already_present: report.already_present, refused: report.refused, links: report.links },
      { found: 7, imported: 7, already_present: 0, refused: [], links: 2 },
    );
    assert.deepEqual(report.by_type, {
      publishable: { active: 1, revocation_scheduled: 0, revoked: 1, deleted: 1 },
      secret: { active: 1, revocation_scheduled: 1, revoked: 1, deleted: 1 },
    });
    const admin = await db.service.retrieveApiKey(keys.admin!.id);
    assert.equal(admin.title, `Medusa ${keys.admin!.id}`);
    assert.equal(admin.type, "secret");
    assert.equal(admin.token, "");
    assert.equal(admin.redacted, redact(keys.admin!.token));
    assert.equal(admin.created_by, "user_01");
    assert.equal(admin.token_format, 3);
    assert.ok(admin.last_used_at);
    const revoked = await db.service.retrieveApiKey(keys.revokedSecret!.id);
    assert.equal(revoked.revoked_by, "user_02");
    const [deleted] = await db.service.listApiKeys({ id: keys.deletedStore!.id }, { withDeleted: true });
    assert.ok(deleted?.deleted_at, "soft-deleted in Medusa, soft-deleted here");
    assert.deepEqual(await db.service.listLinks(keys.storefront!.id), ["sc_01EU", "sc_01US"]);
    const [events] = await db.service.listAndCountAuditEvents({ action: "imported" });
    assert.equal(events.length, 7);
    assert.equal(events[0]!.details?.source, "medusa");
    // Nothing stored anywhere holds a secret token, or Medusa's hash after a first use.
    const stored = JSON.stringify(await db.table("api_key").select());
    for (const key of Object.values(keys)) if (key.token.startsWith("sk_")) assert.ok(!stored.includes(key.token));

    const again = await importInto(db.service);
    assert.equal(again.imported, 0);
    assert.equal(again.already_present, 7);
    assert.equal(again.links, 0);
    assert.equal(Number((await db.table("api_key").count({ n: "*" }))[0]!.n), 7);
    assert.equal(Number((await db.table("api_key_link").count({ n: "*" }))[0]!.n), 2);
  });

  it("accepts every live Medusa token unchanged: a secret one with one scrypt check on first use, then none; refuses revoked and deleted ones", async function () {
    this.timeout(30_000);
    await importInto(db.service);
    assert.deepEqual(await db.service.importedKeysStatus(), { imported: 5, awaiting_first_use: 3 });

    // Through the middleware, as Medusa's clients send them: the header, and HTTP Basic.
    const app = createApp("express5", { service: db.service });
    const storefront = await request(app).get("/store").set("x-publishable-api-key", keys.storefront!.token);
    assert.equal(storefront.status, 200);
    assert.deepEqual(storefront.body.publishable_key_context.sales_channel_ids, ["sc_01EU", "sc_01US"]);

    const basic = `Basic ${Buffer.from(`${keys.admin!.token}:`).toString("base64")}`;
    const first = await countingScrypt(() => request(app).get("/admin").set("authorization", basic));
    assert.equal(first.result.status, 200);
    assert.equal(first.result.body.api_key.id, keys.admin!.id);
    assert.equal(first.calls, 1);
    const second = await countingScrypt(() => request(app).get("/admin").set("authorization", basic));
    assert.equal(second.result.status, 200);
    assert.equal(second.calls, 0);
    // A service that never saw the token (no cache): one indexed lookup by hash, no scrypt.
    const other = await db.open({ cache: false });
    const later = await countingScrypt(() => db.countQueries(() => other.verifyApiKey(keys.admin!.token)));
    assert.equal(later.result.result.code, "valid");
    assert.equal(later.calls, 0);
    assert.equal(later.result.queries.filter((sql) => /select/i.test(sql)).length, 1);
    assert.deepEqual(await db.service.importedKeysStatus(), { imported: 5, awaiting_first_use: 2 });

    assert.equal((await db.service.verifyApiKey(keys.scheduled!.token)).code, "valid", "a revocation scheduled for later has not taken effect");
    db.clock.advance(2 * 3_600_000);
    assert.equal((await db.service.verifyApiKey(keys.scheduled!.token)).code, "revoked");

    for (const key of [keys.revokedSecret!, keys.deletedSecret!, keys.deletedStore!]) {
      const { result, calls } = await countingScrypt(() => db.service.verifyApiKey(key.token));
      assert.equal(result.valid, false, key.id);
      assert.equal(calls, 0, `${key.id}: no scrypt for a key that cannot authenticate`);
    }
    assert.equal((await db.service.verifyApiKey(keys.revokedStore!.token)).code, "revoked");

    // Rolling an imported key issues a token of this package's own format.
    const rolled = await db.service.roll(keys.admin!.id, { revoked_by: "u" });
    assert.equal(rolled.token.length, 53);
  });

  it("keeps a flood of forged Medusa-shaped tokens within the scrypt budget, and never accepts one", async function () {
    this.timeout(30_000);
    await importInto(db.service);
    // No cache: what each forgery costs the store is seen, not hidden by a negative entry.
    const service = await db.open({ cache: false });
    // The worst case: forgeries that share the redacted text of a key awaiting its first use.
    const real = keys.admin!.token;
    const forged = Array.from({ length: 40 }, () => `${real.slice(0, 6)}${randomBytes(29).toString("hex")}${real.slice(-3)}`);
    const started = Date.now();
    const { result, calls } = await countingScrypt(() => Promise.allSettled(forged.map((token) => service.verifyApiKey(token))));
    const seconds = Math.ceil((Date.now() - started) / 1000) + 1;
    assert.ok(calls <= FIRST_USE_PER_SECOND * seconds, `${calls} scrypt calls in ${seconds} s`);
    for (const outcome of result) {
      if (outcome.status === "fulfilled") assert.equal(outcome.value.code, "not_found");
      else assert.equal((outcome.reason as { type?: string }).type, "unavailable");
    }
    assert.ok(result.some((outcome) => outcome.status === "rejected"), "beyond the budget, first uses are refused until the next second");

    // A forgery checked already is remembered: its lookup by hash, and no candidates, no scrypt.
    const checked = forged.find((_, index) => result[index]!.status === "fulfilled")!;
    const repeat = await countingScrypt(() => db.countQueries(() => service.verifyApiKey(checked)));
    assert.equal(repeat.result.result.code, "not_found");
    assert.equal(repeat.calls, 0);
    assert.equal(repeat.result.queries.length, 1);

    // Forgeries whose redacted text names no key cost no scrypt.
    const random = Array.from({ length: 20 }, () => `sk_${randomBytes(32).toString("hex")}`);
    const unmatched = await countingScrypt(() => Promise.all(random.map((token) => service.verifyApiKey(token))));
    assert.equal(unmatched.calls, 0);
    assert.ok(unmatched.result.every((answer) => answer.code === "not_found"));

    // The real token works once the flood has passed.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    assert.equal((await service.verifyApiKey(real)).code, "valid");
  });

  it("accepts the tokens of rows @medusajs/api-key itself made (test/fixtures/medusa-generated-keys.json)", async function () {
    this.timeout(30_000);
    const generated = JSON.parse(await readFile(path.join(__dirname, "../fixtures/medusa-generated-keys.json"), "utf8")) as {
      keys: { id: string; type: string; raw_token: string; token: string; salt: string; redacted: string }[];
    };
    await source!.withSchema(schema).table("api_key").insert(
      generated.keys.map(({ id, type, token, salt, redacted }) => ({ id, type, token, salt, redacted, title: id, created_by: "user_01" })),
    );
    assert.equal((await importInto(db.service)).imported, 7 + generated.keys.length);
    for (const key of generated.keys) {
      const result = await db.service.verifyApiKey(key.raw_token);
      assert.deepEqual([result.code, result.api_key?.id], ["valid", key.id]);
    }
  });

  it("revokes an imported key awaiting its first use without sending other instances a message they cannot read", async function () {
    this.timeout(30_000);
    // Two instances on one Redis, whose channel checks every message it hears.
    const shared = { redis: REDIS_URL, cache: { redisPrefix: redis.prefix } };
    const heard: string[] = [];
    const capture = (message: unknown) => void heard.push(String(message));
    const writer = await db.open(shared);
    await db.open({ ...shared, logger: { warn: capture, error: capture } });
    await importInto(writer);
    await writer.revoke(keys.admin!.id, { revoked_by: "u" });
    await writer.revoke(keys.storefront!.id, { revoked_by: "u" });
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(heard.filter((message) => /not one of ours/.test(message)), []);
  });

  it("refuses rows Medusa would not write, naming them, and imports the rest", async () => {
    await source!.withSchema(schema).table("api_key").insert({ id: "apk_BAD", token: "not-a-hash", salt: "zz", redacted: "sk_abc***def", title: "bad", type: "secret", created_by: "u" });
    const report = await importInto(db.service);
    assert.equal(report.imported, 7);
    assert.deepEqual(report.refused, [{ id: "apk_BAD", reason: "'token' and 'salt' are not a Medusa scrypt hash" }]);
  });

  it("accepts no Medusa-shaped token, at no I/O, where no key was imported", async () => {
    const token = `sk_${randomBytes(32).toString("hex")}`;
    await db.service.verifyApiKey(`pk_${randomBytes(32).toString("hex")}`);
    const { result, queries } = await db.countQueries(() => db.service.verifyApiKey(token));
    assert.equal(result.code, "not_found");
    assert.deepEqual(queries, []);
  });

  it("reads a source given as any MedusaKeySource, and says when a database is not Medusa's", async () => {
    await assert.rejects(db.service.importMedusaKeys(db.knex), (error: { type?: string; message?: string }) => {
      assert.equal(error.type, "invalid_data");
      assert.match(error.message!, /no API key tables as Medusa creates them/);
      return true;
    });
    await assert.rejects(db.service.importMedusaKeys(42), { type: "invalid_data" });
    const rows = await source!.withSchema(schema).table("api_key").select();
    const report = await db.service.importMedusaKeys({
      count: async () => rows.length,
      keys: async (afterId: string | undefined) => (afterId === undefined ? rows : []),
      salesChannels: async () => [],
      close: async () => {},
    });
    assert.equal(report.imported, 7);
  });
}, { backends: ["postgres", "pglite", "mariadb", "sqlite"] });

describe("CLI import-medusa", function () {
  this.timeout(60_000);
  let admin: Knex | undefined;
  let database = "";
  let dir = "";

  before(async function () {
    admin = await connectPostgres(this);
  });

  beforeEach(async () => {
    database = `medusa_cli_${randomBytes(4).toString("hex")}`;
    await admin!.raw("create database ??", [database]);
    dir = await mkdtemp(path.join(tmpdir(), "api-keys-medusa-"));
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
    await admin!.raw("drop database if exists ?? with (force)", [database]);
  });

  after(async () => {
    await admin?.destroy();
  });

  it("imports with a progress line and a report, adds nothing the second time, and `status` counts first uses awaited", async () => {
    const medusaUrl = POSTGRES_URL.replace(/\/[^/]*$/, `/${database}`);
    const { default: knexFactory } = await import("knex");
    const medusa = knexFactory({ client: "pg", connection: medusaUrl });
    let secret: MedusaKey;
    try {
      await createMedusaTables(medusa, "public", false);
      secret = await medusaKey(medusa, "public", "apk_01CLISECRET0000000000000", "secret");
      await medusaKey(medusa, "public", "apk_01CLISTORE00000000000000", "publishable");
      await medusaKey(medusa, "public", "apk_01CLIREVOKED000000000000", "secret", { revoked_at: new Date(Date.now() - 1000), revoked_by: "u" });
    } finally {
      await medusa.destroy();
    }
    const target = `sqlite://${path.join(dir, "keys.db")}`;
    const cli = (...args: string[]) => runCli({}, ["--database", target, ...args]);

    const dry = await cli("import-medusa", medusaUrl, "--dry-run");
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /^Would import 3 of 3 keys \(0 already here, 0 refused\) and 0 sales-channel links\./);
    assert.match(dry.stdout, /Dry run: nothing was written\./);
    assert.match(dry.stderr, /Read 3 of 3 keys/);

    const run = await cli("import-medusa", medusaUrl);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^Imported 3 of 3 keys/);
    assert.match(run.stdout, /secret\s+1\s+0\s+1\s+0/);
    const again = await cli("import-medusa", medusaUrl);
    assert.match(again.stdout, /^Imported 0 of 3 keys \(3 already here, 0 refused\)/);

    assert.match((await cli("status")).stdout, /Keys imported from Medusa: 2 can authenticate, 1 secret ones await their first use\./);
    const service = await initialize({ database: target, logger: { warn: () => {}, error: () => {} } });
    try {
      assert.equal((await service.verifyApiKey(secret.token)).code, "valid");
    } finally {
      await service.close();
    }
    assert.match((await cli("status")).stdout, /2 can authenticate, 0 secret ones await/);

    const unreachable = await cli("import-medusa", "postgres://postgres@127.0.0.1:1/none");
    assert.equal(unreachable.code, 1);
    assert.match(unreachable.stderr, /^error: The Medusa database, PostgreSQL at 127\.0\.0\.1:1 \(database "none"\), cannot be used: connect ECONNREFUSED 127\.0\.0\.1:1/);
    assert.equal(unreachable.stderr.trim().split("\n").length, 1, "one line");
  });
});

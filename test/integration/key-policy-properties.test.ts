// Properties of the key policy, with random clocks and random scope sets: no key ever verifies
// at or after its expires_at, while soft-deleted, or without every required scope. The
// services keep their in-process cache tier on, so cached answers are held to the same rules.
import assert from "node:assert/strict";
import fc from "fast-check";
import { MemoryApiKeyStore } from "../../testing/memory-store";
import { initialize } from "../../setup/initialize";
import type { ApiKeyService } from "../../lib/service";
import { TestClock, forEachBackend } from "../helpers/backends";

/** Each property runs for at most this long, so the suite stays a few seconds. */
const settings = { numRuns: 60, interruptAfterTimeLimit: 4000 };

/** A scope segment from a small vocabulary, so that random scopes often meet. */
const segment = fc.constantFrom("orders", "products", "read", "write", "own", "all");
const requiredScope = fc.array(segment, { minLength: 1, maxLength: 3 }).map((parts) => parts.join(":"));
const grantedScope = fc.array(fc.oneof(segment, fc.constant("*")), { minLength: 1, maxLength: 3 }).map((parts) => parts.join(":"));

/**
 * An oracle written apart from lib/scopes.ts: a key's scope as a regular expression, where a
 * `*` segment is any one segment and a trailing `*` any one or more.
 */
function oracleGrants(granted: string, required: string): boolean {
  const parts = granted.split(":");
  const source = parts
    .map((part, i) => (part === "*" ? (i === parts.length - 1 ? "[^:]+(?::[^:]+)*" : "[^:]+") : part))
    .join(":");
  return new RegExp(`^${source}$`).test(required);
}

interface Subject {
  service: ApiKeyService;
  clock: TestClock;
  close?: () => Promise<void>;
}

function policyProperties(label: string, setUp: () => Promise<Subject>): void {
  describe(label, () => {
    let service: ApiKeyService;
    let clock: TestClock;
    let close: (() => Promise<void>) | undefined;
    beforeEach(async () => {
      ({ service, clock, close } = await setUp());
    });
    afterEach(async () => {
      await close?.();
    });

    it("no key verifies at or after its expires_at, whatever the clock does", async () => {
      // A step moves the clock by a random amount, or to just before, at or just after the
      // expiry instant (when that is still ahead), where an off-by-one would show.
      const step = fc.oneof(
        fc.integer({ min: 0, max: 400_000_000 }).map((by) => ({ by })),
        fc.integer({ min: -1, max: 1 }).map((to) => ({ to })),
      );
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 1, max: 1_000_000 }), fc.array(step, { minLength: 1, maxLength: 8 }), async (expiresIn, steps) => {
          const key = await service.createApiKeys({ title: "k", type: "secret", created_by: "u", expires_in: expiresIn });
          const end = key.expires_at!.getTime();
          for (const move of steps) {
            if ("by" in move) clock.advance(move.by);
            else clock.advance(Math.max(0, end + move.to - clock.now().getTime()));
            const result = await service.verifyApiKey(key.token);
            const live = clock.now().getTime() < end;
            assert.equal(result.valid, live, `now ${clock.now().getTime() - end} ms from expiry: ${result.code}`);
            if (!live) assert.equal(result.code, "expired");
            assert.equal((await service.authenticate(key.token)) !== false, live);
          }
        }),
        settings,
      );
    });

    it("no key verifies while soft-deleted, and every restored key does again", async () => {
      const op = fc.constantFrom("softDelete", "restore", "verify", "advance");
      await fc.assert(
        fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 12 }), async (ops) => {
          const key = await service.createApiKeys({ title: "k", type: "secret", created_by: "u" });
          let deleted = false;
          for (const step of ops) {
            if (step === "softDelete") {
              assert.deepEqual((await service.softDeleteApiKeys(key.id)).api_key_id, deleted ? [] : [key.id]);
              deleted = true;
            } else if (step === "restore") {
              assert.deepEqual((await service.restoreApiKeys(key.id)).api_key_id, deleted ? [key.id] : []);
              deleted = false;
            } else if (step === "advance") {
              clock.advance(1000);
            }
            const result = await service.verifyApiKey(key.token);
            assert.equal(result.code, deleted ? "not_found" : "valid", `after ${step}`);
          }
        }),
        settings,
      );
    });

    it("no key verifies without every required scope, and wildcards grant what they should", async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.uniqueArray(grantedScope, { maxLength: 5 }),
          fc.array(requiredScope, { maxLength: 4 }),
          async (granted, required) => {
            const key = await service.createApiKeys({ title: "k", type: "secret", created_by: "u", scopes: granted });
            const result = await service.verifyApiKey(key.token, { scopes: required });
            const missing = [...new Set(required.filter((scope) => !granted.some((have) => oracleGrants(have, scope))))];
            assert.equal(result.valid, missing.length === 0, `${JSON.stringify(granted)} for ${JSON.stringify(required)}`);
            if (missing.length > 0) {
              assert.equal(result.code, "forbidden");
              assert.deepEqual(result.missing_scopes, missing);
            }
          },
        ),
        settings,
      );
    });
  });
}

policyProperties("key policy properties [memory store]", async () => {
  const clock = new TestClock();
  const service = await initialize({ store: new MemoryApiKeyStore(), now: clock.now, redis: false });
  return { service, clock, close: () => service.close() };
});

forEachBackend(
  "key policy properties",
  (db) => {
    policyProperties("on the SQL store", async () => ({ service: db.service, clock: db.clock }));
  },
  ["postgres", "sqlite"],
);

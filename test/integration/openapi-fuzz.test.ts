// Requests generated from the admin router's own OpenAPI document, sent over HTTP to a real
// router: whatever the document allows or forbids, the answer is never a 5xx, its status and
// body are ones the document gives for that operation, and a request the document allows is
// accepted. Seeded and bounded, so a failure replays and the suite stays fast.
import assert from "node:assert/strict";
import type { Server } from "node:http";
import fc from "fast-check";
import request from "supertest";
import { openApiDocument } from "../../middleware/openapi";
import { forEachBackend } from "../helpers/backends";
import { createAdminApp } from "../helpers/create-app";
import { checkAnswer, documentAjv, pointer } from "../helpers/openapi-conformance";

type Json = ReturnType<typeof JSON.parse>;

const document: Json = openApiDocument("/");
const ajv = documentAjv();
const SEED = 20260101;
const RUNS = 15;

/**
 * Values of a JSON schema of the document. Strings with a pattern or format come from the
 * document's own examples (`samples`); numbers stay near their minimum, so that an instant
 * `expires_in` seconds from now is a date.
 */
function arbitraryOf(schema: Json, samples: unknown[]): fc.Arbitrary<unknown> {
  if (schema.const !== undefined) return fc.constant(schema.const);
  if (schema.enum) return fc.constantFrom(...(schema.enum as unknown[]));
  const types = ([] as string[]).concat(schema.type ?? []);
  const options: fc.Arbitrary<unknown>[] = types.map((type) => {
    switch (type) {
      case "null":
        return fc.constant(null);
      case "boolean":
        return fc.boolean();
      case "integer": {
        const min = (schema.minimum as number | undefined) ?? 0;
        return fc.integer({ min, max: Math.min((schema.maximum as number | undefined) ?? min + 1_000_000, min + 1_000_000) });
      }
      case "number":
        return fc.integer({ min: 1, max: 1_000_000 });
      case "string":
        if (schema.pattern || schema.format) return fc.constantFrom(...samples.filter((sample) => typeof sample === "string"));
        return fc.string({ minLength: schema.minLength ?? 0, maxLength: Math.min(schema.maxLength ?? 20, 20) });
      case "array": {
        const itemSamples = samples.flatMap((sample) => (Array.isArray(sample) ? sample : []));
        return fc.uniqueArray(arbitraryOf(schema.items ?? {}, itemSamples), { maxLength: Math.min(schema.maxItems ?? 3, 3), selector: (item) => JSON.stringify(item) });
      }
      case "object":
        if (!schema.properties) return fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 });
        return objectOf(schema, () => samples.filter((sample) => typeof sample === "object" && sample !== null) as Json[]);
      default:
        return fc.constant(null);
    }
  });
  return options.length > 0 ? fc.oneof(...options) : fc.jsonValue({ maxDepth: 2 });
}

function objectOf(schema: Json, samples: () => Json[]): fc.Arbitrary<Record<string, unknown>> {
  const properties = schema.properties as Record<string, Json>;
  const record = Object.fromEntries(
    Object.entries(properties).map(([name, property]) => [name, arbitraryOf(property, [...(property.examples ?? []), ...samples().map((sample) => sample[name])])]),
  );
  return fc.record(record, { requiredKeys: (schema.required as string[] | undefined) ?? [] });
}

/** Each operation on the document's paths that takes a JSON body. */
const bodyOperations = Object.entries(document.paths).flatMap(([path, item]) =>
  Object.entries(item as Json)
    .filter(([, operation]) => (operation as Json).requestBody)
    .map(([method, operation]) => ({ path, method, operation: operation as Json })),
);

/** A body the document forbids, made from one it allows. */
function invalidFrom(valid: fc.Arbitrary<Record<string, unknown>>, schema: Json): fc.Arbitrary<unknown> {
  const names = Object.keys(schema.properties);
  const wrongValue = names.length === 0 ? fc.constant({ surplus: 1 }) : fc.tuple(valid, fc.constantFrom(...names), fc.constantFrom<unknown>(true, [[]], { a: 1 }, -1.5, "x")).map(([body, name, value]) => ({ ...body, [name]: value }));
  return fc.oneof(
    valid.map((body) => ({ ...body, not_in_the_document: 1 })),
    wrongValue,
    fc.constantFrom<unknown>([], "text", 42, null),
  );
}

forEachBackend(
  "requests generated from the OpenAPI document",
  (db) => {
    let app: Server;
    let auth: string;

    beforeEach(async () => {
      app = createAdminApp("express5", db.service, { findMissingSalesChannels: async () => [] });
      // An unrestricted key, so that what decides each answer is the request, not delegation.
      const root = await db.service.createApiKeys({ title: "root", type: "secret", created_by: "user_1" });
      auth = `Basic ${Buffer.from(`${root.token}:`).toString("base64")}`;
    });

    /** Sends one request and checks its answer against the document; returns its status. */
    async function send(method: string, path: string, body: unknown): Promise<{ status: number; message: unknown }> {
      const agent = request(app);
      const res = await agent[method as "post"](`/admin/api-keys${path}`)
        .set("Authorization", auth)
        .set("Content-Type", "application/json")
        .send(JSON.stringify(body));
      const where = `${method.toUpperCase()} ${path} ${JSON.stringify(body)?.slice(0, 200)}`;
      assert.ok(res.status < 500, `${where}: ${res.status} ${res.text.slice(0, 200)}`);
      assert.equal(checkAnswer(method.toUpperCase(), path, res.status, String(res.headers["content-type"] ?? ""), res.text), undefined, where);
      return { status: res.status, message: res.body?.message };
    }

    for (const { path, method, operation } of bodyOperations) {
      it(`${method.toUpperCase()} ${path}: bodies the document allows are accepted, those it forbids are refused as documented`, async () => {
        const content = operation.requestBody.content["application/json"];
        const validate = ajv.compile({ $ref: pointer("paths", path, method, "requestBody", "content", "application/json", "schema") });
        // The empty body and the example are edges a random record seldom hits.
        const valid = fc
          .oneof(fc.constant({}), fc.constant(content.example as Record<string, unknown>), objectOf(content.schema, () => [content.example]))
          .filter((body) => validate(body));
        // Sales channels link to publishable keys only, and scopes go on secret keys only: rules on
        // the stored key, which a body's schema cannot state (the field descriptions do).
        const type = path.endsWith("/sales-channels") ? "publishable" : "secret";
        const target = async () => {
          const key = await db.service.createApiKeys({ title: "target", type, created_by: "user_1" });
          return path.replace("{id}", key.id);
        };
        await fc.assert(
          fc.asyncProperty(valid, async (body) => {
            const { status, message } = await send(method, await target(), body);
            assert.equal(status, 200, `${method.toUpperCase()} ${path} ${JSON.stringify(body)}: ${String(message)}`);
          }),
          { seed: SEED, numRuns: RUNS },
        );
        await fc.assert(
          fc.asyncProperty(invalidFrom(valid, content.schema), async (body) => {
            fc.pre(!validate(body));
            const { status } = await send(method, await target(), body);
            assert.ok(status >= 400, `${method.toUpperCase()} ${path} took ${JSON.stringify(body)}`);
          }),
          { seed: SEED, numRuns: RUNS },
        );
      });
    }

    it("GET /: query parameters the document allows are accepted, out-of-range ones refused as documented", async () => {
      const parameters = Object.fromEntries(
        (document.paths["/"].get.parameters as Json[])
          .filter((parameter) => ["limit", "offset", "order", "with_deleted", "q", "fields"].includes(parameter.name))
          .map((parameter) => [parameter.name, arbitraryOf(parameter.schema, parameter.example === undefined ? [] : [parameter.example])]),
      );
      await fc.assert(
        fc.asyncProperty(fc.record(parameters, { requiredKeys: [] }), async (query) => {
          const search = new URLSearchParams(Object.entries(query).map(([name, value]): [string, string] => [name, String(value)])).toString();
          const res = await request(app).get(`/admin/api-keys/?${search}`).set("Authorization", auth);
          assert.equal(res.status, 200, `GET /?${search}: ${res.text.slice(0, 200)}`);
          assert.equal(checkAnswer("GET", "/", res.status, String(res.headers["content-type"]), res.text), undefined);
        }),
        { seed: SEED, numRuns: RUNS * 2 },
      );
      await fc.assert(
        fc.asyncProperty(fc.constantFrom("limit", "offset"), fc.constantFrom("-1", "1.5", "x", "100000000000000000000"), async (name, value) => {
          const res = await request(app).get(`/admin/api-keys/?${name}=${value}`).set("Authorization", auth);
          assert.equal(res.status, 400);
          assert.equal(checkAnswer("GET", "/", res.status, String(res.headers["content-type"]), res.text), undefined);
        }),
        { seed: SEED, numRuns: 8 },
      );
    });
  },
  ["pglite"],
);

import assert from "node:assert/strict";
import type { Server } from "node:http";
import { Validator } from "@seriousme/openapi-schema-validator";
import request from "supertest";
import { CREATE_INPUTS, INPUT_FIELDS, LINK_INPUTS, MAX_IDS, MAX_RATE_LIMITS, REVOKE_INPUTS, UPDATE_INPUTS } from "../../lib/input-fields";
import { MAX_SCOPES } from "../../lib/scopes";
import type { ApiKeyDTO } from "../../lib/types";
import { validateCreate, validateLinks, validateRevoke, validateUpdate } from "../../lib/validate-input";
import { openApiDocument } from "../../middleware/openapi";
import { forEachBackend } from "../helpers/backends";
import { checkAnswer, documentAjv, pointer } from "../helpers/openapi-conformance";
import { EXPRESS_VERSIONS, bareAdminRouterOn, createAdminApp, expressApp } from "../helpers/create-app";

/** A value of the document as JSON.parse gives it, walked freely: the OpenAPI validator checks its shape. */
type Json = ReturnType<typeof JSON.parse>;

const document: Json = openApiDocument("/");
const METHODS = ["get", "post", "delete", "put", "patch"];

/** Every route an Express router registers, as `METHOD /path` in OpenAPI's path form. */
function registeredRoutes(router: { stack: Json[] }): string[] {
  return router.stack
    .filter((layer) => layer.route)
    .flatMap((layer) => {
      const path = (layer.route.path as string).replace(/:([A-Za-z_]+)/g, "{$1}");
      return Object.keys(layer.route.methods)
        .filter((method) => layer.route.methods[method] && method !== "_all")
        .map((method) => `${method.toUpperCase()} ${path}`);
    })
    .sort();
}

function documentedRoutes(): string[] {
  return Object.entries(document.paths)
    .flatMap(([path, item]) => METHODS.filter((method) => (item as Json)[method]).map((method) => `${method.toUpperCase()} ${path}`))
    .sort();
}

/** Each documented request body: its operation, path, method and JSON schema. */
function documentedBodies(): { path: string; method: string; schema: Json; example: Json }[] {
  return Object.entries(document.paths).flatMap(([path, item]) =>
    METHODS.filter((method) => (item as Json)[method]?.requestBody).map((method) => {
      const content = (item as Json)[method].requestBody.content["application/json"];
      return { path, method, schema: content.schema, example: content.example };
    }),
  );
}

describe("the admin router's OpenAPI document", () => {
  it("is a valid OpenAPI 3.1 document", async () => {
    const result = await new Validator().validate(document);
    assert.deepEqual(result, { valid: true });
    assert.equal(document.openapi, "3.1.0");
    assert.equal(document.info.version, (require("../../package.json") as { version: string }).version);
  });

  for (const version of EXPRESS_VERSIONS) {
    it(`lists exactly the routes the router registers, on ${version}`, () => {
      const router = bareAdminRouterOn(version, { actor: () => "admin" }) as unknown as { stack: Json[] };
      assert.deepEqual(registeredRoutes(router), documentedRoutes());
    });
  }

  it("takes in each body exactly the fields validation accepts (the acting key fills created_by and revoked_by)", () => {
    const bodies = Object.fromEntries(documentedBodies().map(({ path, method, schema }) => [`${method.toUpperCase()} ${path}`, Object.keys(schema.properties).sort()]));
    const without = (fields: readonly string[], ...server: string[]) => fields.filter((field) => !server.includes(field)).sort();
    assert.deepEqual(bodies["POST /"], without(CREATE_INPUTS, "created_by"));
    assert.deepEqual(bodies["POST /{id}"], without(UPDATE_INPUTS));
    assert.deepEqual(bodies["POST /{id}/revoke"], without(REVOKE_INPUTS, "revoked_by"));
    assert.deepEqual(bodies["POST /{id}/roll"], without(REVOKE_INPUTS, "revoked_by"));
    assert.deepEqual(bodies["POST /{id}/sales-channels"], without(LINK_INPUTS, "resource_type"));
    assert.deepEqual(bodies["POST /{id}/soft-delete"], []);
    assert.deepEqual(bodies["POST /{id}/restore"], []);
    for (const { schema } of documentedBodies()) assert.equal(schema.additionalProperties, false, "a field the document lacks is refused");
  });

  it("describes every input field with a value validation accepts", () => {
    const now = new Date("2026-01-01T00:00:00Z");
    const accepts: [readonly string[], (body: Json) => unknown, Json][] = [
      [CREATE_INPUTS, (body) => validateCreate(body, now), { title: "t", type: "secret", created_by: "u" }],
      [UPDATE_INPUTS, (body) => validateUpdate(body, now), {}],
      [REVOKE_INPUTS, validateRevoke, {}],
      [LINK_INPUTS, validateLinks, {}],
    ];
    for (const [fields, validate, base] of accepts) {
      for (const field of fields) {
        const example = INPUT_FIELDS[field as keyof typeof INPUT_FIELDS].example;
        assert.doesNotThrow(() => validate({ ...base, [field]: example }), `${field}: ${JSON.stringify(example)}`);
      }
      assert.throws(() => validate({ ...base, not_a_field: 1 }), /Unrecognized fields: 'not_a_field'/);
    }
  });

  it("has examples that match their own schemas", () => {
    const ajv = documentAjv();
    let checked = 0;
    const check = (at: (string | number)[], example: unknown) => {
      const validate = ajv.compile({ $ref: pointer(...at) });
      assert.ok(validate(example), `${at.join("/")}: ${ajv.errorsText(validate.errors)}`);
      checked++;
    };
    for (const [path, item] of Object.entries(document.paths)) {
      for (const method of METHODS.filter((name) => (item as Json)[name])) {
        const operation = (item as Json)[method];
        for (const [index, parameter] of (operation.parameters as Json[]).entries()) {
          if (parameter.example !== undefined) check(["paths", path, method, "parameters", index, "schema"], parameter.example);
        }
        const body = operation.requestBody?.content["application/json"];
        if (body) {
          check(["paths", path, method, "requestBody", "content", "application/json", "schema"], body.example);
          for (const [name, property] of Object.entries(body.schema.properties)) {
            check(["paths", path, method, "requestBody", "content", "application/json", "schema", "properties", name], (property as Json).examples[0]);
          }
        }
        const answer = operation.responses["200"].content["application/json"];
        if (answer.example !== undefined) check(["paths", path, method, "responses", "200", "content", "application/json", "schema"], answer.example);
      }
    }
    for (const [name, response] of Object.entries(document.components.responses)) {
      check(["components", "responses", name, "content", "application/json", "schema"], (response as Json).content["application/json"].example);
    }
    assert.ok(checked > 50, `${checked} examples`);
  });

  it("gives each error status the error types lib/errors.ts maps to it", () => {
    const types = (name: string) => document.components.responses[name].content["application/json"].schema.properties.type.enum;
    assert.deepEqual(types("Error400"), ["invalid_data", "not_allowed"]);
    assert.deepEqual(types("Error401"), ["unauthorized"]);
    assert.deepEqual(types("Error404"), ["not_found"]);
    assert.deepEqual(types("Error415"), ["invalid_data"]);
    assert.deepEqual(types("Error503"), ["unavailable"]);
    assert.deepEqual(document.paths["/"].get.responses["404"], undefined, "no id, no 404");
    assert.ok(document.paths["/{id}"].post.responses["415"], "a body route refuses forms");
  });

  it("types metadata as any JSON object, wherever a schema has it", () => {
    const ajv = documentAjv();
    const schemas: [string, Json][] = [
      ["ApiKey", document.components.schemas.ApiKey.properties.metadata],
      ["ApiKeySelection", document.components.schemas.ApiKeySelection.properties.metadata],
      ...documentedBodies()
        .filter(({ schema }) => schema.properties.metadata)
        .map(({ method, path, schema }): [string, Json] => [`${method} ${path}`, schema.properties.metadata]),
    ];
    assert.equal(schemas.length, 4);
    for (const [where, schema] of schemas) {
      const types = ([] as unknown[]).concat(schema.type);
      assert.ok(types.includes("object"), where);
      assert.equal(schema.additionalProperties, true, `${where}: generators read a bare object as an empty one`);
      assert.ok(ajv.validate(schema, { team: "mobile", nested: { a: [1] } }), where);
    }
  });

  it("answers GET /{id} with the schema of a selection, as `fields` may give one", () => {
    const retrieve = document.paths["/{id}"].get.responses["200"].content["application/json"].schema;
    assert.equal(retrieve.properties.api_key.$ref, "#/components/schemas/ApiKeySelection");
    assert.equal(checkAnswer("GET", "/apk_1", 200, "application/json", JSON.stringify({ api_key: { id: "apk_1", title: "t" } })), undefined);
  });

  it("states the rules validation enforces across fields and on bounds", () => {
    const ajv = documentAjv();
    const body = (method: string, path: string) => ajv.compile({ $ref: pointer("paths", path, method, "requestBody", "content", "application/json", "schema") });
    const create = body("post", "/");
    const now = new Date("2026-01-01T00:00:00Z");
    const agree = (input: Json, accepted: boolean) => {
      assert.equal(create(input), accepted, `the document on ${JSON.stringify(input)}`);
      const validates = (() => {
        try {
          validateCreate({ ...input, created_by: "u" }, now);
          return true;
        } catch {
          return false;
        }
      })();
      assert.equal(validates, accepted, `validation on ${JSON.stringify(input)}`);
    };
    agree({ title: "t", type: "secret", expires_at: "2030-01-01T00:00:00Z" }, true);
    agree({ title: "t", type: "secret", expires_at: "2030-01-01T00:00:00Z", expires_in: 60 }, false);
    agree({ title: "t", type: "secret", scopes: ["orders:read"] }, true);
    agree({ title: "t", type: "publishable", scopes: ["orders:read"] }, false);
    agree({ title: "t", type: "publishable", scopes: [] }, true);
    agree({ title: "t", type: "secret", scopes: Array.from({ length: MAX_SCOPES + 1 }, (_, i) => `s${i}:read`) }, false);
    agree({ title: "t", type: "secret", rate_limits: Array.from({ length: MAX_RATE_LIMITS + 1 }, (_, i) => ({ name: `r${i}`, limit: 1, duration: 1 })) }, false);
    const update = body("post", "/{id}");
    assert.equal(update({}), false, "an update names at least one field");
    assert.equal(update({ title: "t" }), true);
    const links = document.paths["/{id}/sales-channels"].post.requestBody.content["application/json"].schema;
    assert.equal(links.properties.add.maxItems, MAX_IDS);
    for (const field of ["expires_at", "created_at", "updated_at", "deleted_at", "revoked_at"]) {
      const parameter = (document.paths["/"].get.parameters as Json[]).find((p) => p.name === field);
      assert.equal(parameter.schema.anyOf[0].format, "date-time", field);
    }
    for (const [path, item] of Object.entries(document.paths)) {
      for (const method of METHODS.filter((name) => (item as Json)[name]?.requestBody)) {
        for (const status of ["400", "413", "415"]) assert.ok((item as Json)[method].responses[status], `${method} ${path} ${status}`);
      }
    }
  });

  it("links the new key of POST / and POST /{id}/roll to the operations on a key, and says its license, tags and own shape", () => {
    const onKey = Object.values(document.paths["/{id}"]).map((operation) => (operation as Json).operationId);
    for (const [path, method] of [["/", "post"], ["/{id}/roll", "post"]] as const) {
      const links = document.paths[path][method].responses["200"].links;
      for (const operationId of onKey) assert.deepEqual(links[operationId].parameters, { id: "$response.body#/api_key/id" }, `${path} -> ${operationId}`);
      for (const link of Object.values<Json>(links)) {
        const target = Object.values(document.paths).flatMap((item) => Object.values(item as Json)).find((op) => (op as Json).operationId === link.operationId);
        assert.ok(target, link.operationId);
      }
    }
    assert.equal(document.paths["/{id}"].post.responses["200"].links, undefined, "an update answers with the key the client named");
    const license = (require("../../package.json") as { license: string }).license;
    assert.deepEqual(document.info.license, { name: license, identifier: license });
    for (const tag of document.tags as Json[]) assert.ok(tag.description, tag.name);
    const own = document.paths["/openapi.json"].get.responses["200"].content["application/json"].schema;
    assert.deepEqual(Object.keys(own.properties).sort(), ["components", "info", "openapi", "paths", "security", "servers", "tags"]);
    assert.ok(documentAjv().validate(own, document), "the document matches its own route's schema");
  });

  it("lets the test suite's check refuse answers the document does not describe", () => {
    const key = { api_key: { id: "apk_1" } };
    assert.match(checkAnswer("POST", "/apk_1", 200, "application/json", JSON.stringify(key)) ?? "", /schema refuses/, "a key without its fields");
    assert.match(checkAnswer("GET", "/apk_1", 200, "application/json", JSON.stringify({ api_key: { title: "t" } })) ?? "", /schema refuses/, "a selection without its id");
    assert.match(checkAnswer("POST", "/", 418, "application/json", "{}") ?? "", /does not list/);
    assert.match(checkAnswer("GET", "/", 400, "text/html", "<p>") ?? "", /not JSON/);
    assert.match(checkAnswer("DELETE", "/apk_1", 200, "application/json", JSON.stringify({ id: "apk_1", object: "api_key", deleted: true, extra: 1 })) ?? "", /schema refuses/);
    assert.equal(checkAnswer("DELETE", "/apk_1", 200, "application/json", JSON.stringify({ id: "apk_1", object: "api_key", deleted: true })), undefined);
    assert.equal(checkAnswer("PUT", "/apk_1", 404, "text/html", "<p>"), undefined, "not a route of the router: the app's answer");
  });
});

forEachBackend(
  "GET /openapi.json",
  (db) => {
    let admin: ApiKeyDTO;
    let auth: string;

    beforeEach(async () => {
      admin = await db.service.createApiKeys({ title: "admin", type: "secret", created_by: "user_1", scopes: ["api_keys:read"] });
      auth = `Basic ${Buffer.from(`${admin.token}:`).toString("base64")}`;
    });

    for (const version of EXPRESS_VERSIONS) {
      it(`serves the document with the mount path as its server, on ${version}`, async () => {
        const app: Server = createAdminApp(version, db.service);
        const res = await request(app).get("/admin/api-keys/openapi.json").set("Authorization", auth);
        assert.equal(res.status, 200);
        assert.match(res.headers["content-type"]!, /^application\/json/);
        assert.equal(res.headers["cache-control"], "no-store");
        assert.deepEqual(res.body.servers.map((server: Json) => server.url), ["/admin/api-keys"]);
        assert.deepEqual(Object.keys(res.body.paths), Object.keys(document.paths));
        assert.deepEqual(await new Validator().validate(res.body), { valid: true });

        const root = expressApp(version);
        root.use(bareAdminRouterOn(version, { service: db.service, actor: () => "admin" }));
        assert.deepEqual((await request(root).get("/openapi.json")).body.servers, [{ url: "/", description: "Where the app mounts the router." }]);
      });
    }

    it("takes the router's read scopes and an authenticated caller, like every GET", async () => {
      const scoped = createAdminApp("express5", db.service, { scopes: { read: ["api_keys:read"], write: ["api_keys:write"] } });
      assert.equal((await request(scoped).get("/admin/api-keys/openapi.json").set("Authorization", auth)).status, 200, "a read key");
      const strict = createAdminApp("express5", db.service, { scopes: { read: ["api_keys:admin"] } });
      const refused = await request(strict).get("/admin/api-keys/openapi.json").set("Authorization", auth);
      assert.equal(refused.status, 403);
      assert.equal(refused.body.type, "forbidden");
      assert.equal((await request(scoped).get("/admin/api-keys/openapi.json")).status, 401, "no key");
      const extra = await request(scoped).get("/admin/api-keys/openapi.json?x=1").set("Authorization", auth);
      assert.equal(extra.status, 400, "no query parameters");
    });

    for (const version of EXPRESS_VERSIONS) {
      it(`answers a method a path does not list with 405, and OPTIONS with 204, each with that path's Allow, on ${version}`, async () => {
        const app = createAdminApp(version, db.service);
        const allows = {
          "/openapi.json": "GET, HEAD, OPTIONS",
          "/": "GET, POST, HEAD, OPTIONS",
          [`/${admin.id}`]: "GET, POST, DELETE, HEAD, OPTIONS",
          [`/${admin.id}/revoke`]: "POST, OPTIONS",
        };
        for (const [path, allow] of Object.entries(allows)) {
          const options = await request(app).options(`/admin/api-keys${path}`).set("Authorization", auth);
          assert.equal(options.status, 204, `OPTIONS ${path}`);
          assert.equal(options.headers.allow, allow, `OPTIONS ${path}`);
          for (const method of ["trace", "put", "patch"] as const) {
            const res = await request(app)[method](`/admin/api-keys${path}`).set("Authorization", auth);
            assert.equal(res.status, 405, `${method} ${path}`);
            assert.equal(res.headers.allow, allow, `${method} ${path}`);
            assert.match(res.headers["content-type"]!, /^application\/json/);
            assert.deepEqual(Object.keys(res.body).sort(), ["message", "type"]);
            assert.equal(res.body.type, "invalid_data");
          }
        }
        assert.match(document.info.description, /answered 405, with the body every error has \(`type` `invalid_data` and a `message`\) and an `Allow` header/);
      });
    }

    it("takes every value the document lists for GET /'s parameters with an enum, and no other", async () => {
      const app = createAdminApp("express5", db.service);
      for (const parameter of document.paths["/"].get.parameters as Json[]) {
        for (const value of (parameter.schema.enum as string[] | undefined) ?? []) {
          const res = await request(app).get(`/admin/api-keys/?${parameter.name}=${value}`).set("Authorization", auth);
          assert.equal(res.status, 200, `${parameter.name}=${value}: ${res.body.message}`);
        }
      }
      const refused = await request(app).get("/admin/api-keys/?order=scopes").set("Authorization", auth);
      assert.equal(refused.status, 400);
      assert.match(refused.body.message, /'order' must be a field/);
    });

    it("refuses in every body a field the document lacks, and accepts each one it lists", async () => {
      const app = createAdminApp("express5", db.service, { findMissingSalesChannels: async () => [] });
      // An unrestricted key, which may give any scope: what is checked here is the body.
      const root = await db.service.createApiKeys({ title: "root", type: "secret", created_by: "user_1" });
      const rootAuth = `Basic ${Buffer.from(`${root.token}:`).toString("base64")}`;
      const post = (path: string, body: Json) => request(app).post(`/admin/api-keys${path}`).set("Authorization", rootAuth).send(body);
      for (const { path, schema, example } of documentedBodies()) {
        const key = await db.service.createApiKeys({ title: "target", type: "publishable", created_by: "user_1" });
        const at = path.replace("{id}", key.id);
        const refused = await post(at, { ...example, not_in_the_document: true });
        assert.equal(refused.status, 400, `${path} refuses an unknown field`);
        assert.match(refused.body.message, /Unrecognized fields: 'not_in_the_document'/);
        for (const [name, property] of Object.entries(schema.properties)) {
          const res = await post(at, { ...example, [name]: (property as Json).examples[0] });
          assert.doesNotMatch(String(res.body.message), /Unrecognized/, `${path} takes '${name}'`);
        }
      }
    });
  },
  ["pglite"],
);

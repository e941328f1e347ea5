// The admin API's OpenAPI document as other tools read it: Redocly's linter, and a client typed
// by openapi-typescript and sent through openapi-fetch against a real router.
import assert from "node:assert/strict";
import { mkdir, rm, writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { createConfig, lintFromString } from "@redocly/openapi-core";
import openapiTS, { astToString } from "openapi-typescript";
import ts from "typescript";
import type { ApiKeyService } from "../../lib/service";
import { openApiDocument } from "../../middleware/openapi";
import { initialize } from "../../setup/initialize";
import { createAdminApp } from "../helpers/create-app";

const QUIET = { warn: () => {}, error: () => {} };

/** A client as an app would write one, against the generated `paths`; it sends and reads `metadata`. */
const CLIENT = `import createClient from "openapi-fetch";
import type { paths } from "./admin-api.mjs";

export async function roundTrip(baseUrl: string, secret: string): Promise<{ id: string; team: string; level: number }> {
  const client = createClient<paths>({ baseUrl, headers: { authorization: \`Basic \${btoa(\`\${secret}:\`)}\` } });
  const created = await client.POST("/", { body: { title: "Web", type: "publishable", metadata: { team: "web", nested: { level: 2 } } } });
  if (!created.data) throw new Error(JSON.stringify(created.error));
  const id: string = created.data.api_key.id;
  const read = await client.GET("/{id}", { params: { path: { id } } });
  if (!read.data) throw new Error(JSON.stringify(read.error));
  const metadata: Record<string, unknown> | undefined = read.data.api_key.metadata;
  const updated = await client.POST("/{id}", { params: { path: { id } }, body: { metadata: { ...metadata, team: "storefront" } } });
  if (!updated.data) throw new Error(JSON.stringify(updated.error));
  const team = updated.data.api_key.metadata?.team;
  return { id, team: typeof team === "string" ? team : "", level: (metadata?.nested as { level: number }).level };
}
`;

describe("the OpenAPI document, read by other tools", function () {
  this.timeout(60_000);
  const document = openApiDocument("/admin/api-keys");

  it("passes Redocly's recommended rules with no error and no warning", async () => {
    const config = await createConfig({ extends: ["recommended"] });
    const problems = await lintFromString({ source: JSON.stringify(document), absoluteRef: "/openapi.json", config });
    assert.deepEqual(
      problems.map((problem) => `${problem.severity} ${problem.ruleId}: ${problem.message} (${problem.location[0]?.pointer ?? ""})`),
      [],
    );
  });

  describe("openapi-typescript and openapi-fetch", () => {
    const dir = path.resolve(__dirname, "../../test-results", `openapi-client-${process.pid}`);
    let service: ApiKeyService;

    before(async () => {
      await mkdir(dir, { recursive: true });
      service = await initialize({ database: "sqlite://memory", cache: false, logger: QUIET });
    });

    after(async () => {
      await service.close();
      await rm(dir, { recursive: true, force: true });
    });

    it("types a client that compiles, sends metadata and reads it back from a real router", async () => {
      const types = astToString(await openapiTS(document as never));
      await writeFile(path.join(dir, "admin-api.mts"), types);
      const clientFile = path.join(dir, "client.mts");
      await writeFile(clientFile, CLIENT);

      const program = ts.createProgram([clientFile], {
        strict: true,
        noEmit: true,
        target: ts.ScriptTarget.ES2022,
        module: ts.ModuleKind.NodeNext,
        moduleResolution: ts.ModuleResolutionKind.NodeNext,
        lib: ["lib.es2022.d.ts", "lib.dom.d.ts"],
        skipLibCheck: true,
      });
      const diagnostics = ts.getPreEmitDiagnostics(program).map((diagnostic) => ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n"));
      assert.deepEqual(diagnostics, []);

      const admin = await service.createApiKeys({ title: "Admin", type: "secret", created_by: "u" });
      const server = createAdminApp("express5", service).listen(0, "127.0.0.1");
      await new Promise((resolve) => server.once("listening", resolve));
      try {
        const { roundTrip } = (await import(clientFile)) as { roundTrip: (baseUrl: string, secret: string) => Promise<{ id: string; team: string; level: number }> };
        const result = await roundTrip(`http://127.0.0.1:${(server.address() as AddressInfo).port}/admin/api-keys`, admin.token);
        assert.deepEqual({ team: result.team, level: result.level }, { team: "storefront", level: 2 });
        assert.deepEqual((await service.retrieveApiKey(result.id)).metadata, { team: "storefront", nested: { level: 2 } });
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
    });
  });
});

// The service without Express or Connect: a Next.js-style route handler that takes a Web
// Request and returns a Response. Run it to see three requests answered.
import { type ApiKeyService, initialize, readSecretCredential } from "../index";

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
}

/** GET /api/reports, for secret keys only. */
export function createReportsRoute(apiKeys: ApiKeyService) {
  return async function GET(request: Request): Promise<Response> {
    const credential = readSecretCredential(request.headers.get("authorization") ?? undefined);
    if (credential.kind !== "token") {
      const message = credential.kind === "invalid" ? credential.message : "A secret API key is required";
      return json(401, { type: "unauthorized", message });
    }
    const key = await apiKeys.authenticate(credential.token);
    if (!key) return json(401, { type: "unauthorized", message: "Unauthorized: the secret API key is invalid or revoked" });
    return json(200, { reports: [], requested_by: key.created_by, key: key.id });
  };
}

async function main(): Promise<void> {
  // An in-memory database of its own: the demonstration leaves no key behind.
  const apiKeys = await initialize({ database: "pglite://memory" });
  try {
    const key = await apiKeys.createApiKeys({ title: "Reporting job", type: "secret", created_by: "user_reports" });
    const GET = createReportsRoute(apiKeys);
    const url = "http://localhost/api/reports";
    const basic = `Basic ${Buffer.from(`${key.token}:`).toString("base64")}`;
    for (const [label, headers] of [
      ["with the key", { authorization: basic }],
      ["without a key", {}],
      ["with a Bearer key", { authorization: `Bearer ${key.token}` }],
    ] as const) {
      const response = await GET(new Request(url, { headers }));
      console.log(`${label}: ${response.status} ${await response.text()}`);
    }
  } finally {
    await apiKeys.close();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});

// Prometheus metrics for the keys: turn on `metrics` (install prom-client first) and mount
// prom-client's registry at /metrics. Run it to see one protected request and what /metrics shows.
import express from "express";
import { Registry } from "prom-client";
import { apiKeyAuth, initialize } from "../index";

async function main(): Promise<void> {
  // Your app's own registry (or `metrics: true` for prom-client's default `register`).
  const registry = new Registry();
  // In memory, so that running the example leaves nothing behind.
  const apiKeys = await initialize({ database: "pglite://memory", metrics: { registry } });
  const app = express();
  app.get("/metrics", async (_req, res) => {
    res.setHeader("Content-Type", registry.contentType);
    res.end(await registry.metrics());
  });
  app.get("/reports", apiKeyAuth({ service: apiKeys }), (_req, res) => void res.json({ reports: [] }));

  const server = app.listen(0, "127.0.0.1");
  await new Promise((resolve) => server.once("listening", resolve));
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  try {
    const key = await apiKeys.createApiKeys({ title: "Reporting job", type: "secret", created_by: "user_reports" });
    const authorization = `Basic ${Buffer.from(`${key.token}:`).toString("base64")}`;
    console.log(`GET /reports with the key: ${(await fetch(`${base}/reports`, { headers: { authorization } })).status}`);
    console.log(`GET /reports without it: ${(await fetch(`${base}/reports`)).status}`);
    const text = await (await fetch(`${base}/metrics`)).text();
    console.log(text.split("\n").filter((line) => /^api_key_(verifications_total|lookups_total)/.test(line)).join("\n"));
  } finally {
    server.close();
    await apiKeys.close();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});

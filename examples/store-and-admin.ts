// A storefront and an admin API in one Express app, on the embedded database: what `npm start`
// runs. On its first start it creates an admin (secret) key and a storefront (publishable) key,
// and prints them with commands to try, and the address of the dashboard to manage keys in.
import type { AddressInfo } from "node:net";
import express from "express";
import { type ApiKeyService, type AuthenticatedRequest, apiKeyAdminRouter, apiKeyAuth, apiKeyDashboard, initialize } from "../index";

const PRODUCTS = [
  { id: "prod_tee", title: "T-shirt", sales_channel_ids: ["sc_web", "sc_app"] },
  { id: "prod_mug", title: "Mug", sales_channel_ids: ["sc_web"] },
  { id: "prod_card", title: "In-store gift card", sales_channel_ids: ["sc_pos"] },
];

/** Creates the first two keys when the database has none, and returns them (their tokens are shown only now). */
async function bootstrap(apiKeys: ApiKeyService) {
  const [, count] = await apiKeys.listAndCountApiKeys({}, { take: 0 });
  if (count > 0) return undefined;
  const admin = await apiKeys.createApiKeys({ title: "Bootstrap admin key", type: "secret", created_by: "bootstrap" });
  const store = await apiKeys.createApiKeys({ title: "Web storefront", type: "publishable", created_by: "bootstrap" });
  const channels = await apiKeys.updateLinks(store.id, { add: ["sc_web", "sc_app"] });
  return { admin, store, channels };
}

/**
 * How to create another admin key with the CLI, on the database this app uses: the embedded one
 * admits one process at a time, so the app must stop first; a server takes the same settings.
 */
function anotherAdminKey(): string[] {
  const create = 'create --type secret --title "Admin"';
  const url = process.env.DATABASE_URL;
  if (url === undefined || url.startsWith("pglite://")) {
    const database = url === undefined ? "" : `--database '${url}' `;
    return [
      "Keys already exist. To create another admin key, stop this app (Ctrl+C; the embedded",
      "database admits one process at a time) and run:",
      `  npx express-api-keys ${database}${create}`,
    ];
  }
  // The password, if the URL has one, is left for the reader to fill in rather than printed.
  const shown = new URL(url);
  if (shown.password) shown.password = "PASSWORD";
  const schema = process.env.API_KEYS_SCHEMA ? ` --schema '${process.env.API_KEYS_SCHEMA}'` : "";
  return ["Keys already exist. To create another admin key, run (this app can keep running):", `  npx express-api-keys --database '${shown.href}'${schema} ${create}`];
}

function createApp(): express.Express {
  const app = express();
  app.get("/", (_req, res) => res.redirect("/admin/keys/"));

  // Storefront: a publishable key scopes every request to its sales channels.
  app.get("/store/products", apiKeyAuth({ type: "publishable" }), (req, res) => {
    const { sales_channel_ids } = (req as AuthenticatedRequest<express.Request>).publishable_key_context!;
    if (sales_channel_ids.length === 0) {
      res.status(400).json({ type: "invalid_data", message: "Publishable key needs to have a sales channel configured" });
      return;
    }
    const requested = typeof req.query.sales_channel_id === "string" ? req.query.sales_channel_id : undefined;
    if (requested && !sales_channel_ids.includes(requested)) {
      res.status(400).json({ type: "invalid_data", message: "Requested sales channel is not part of the publishable key" });
      return;
    }
    const channels = requested ? [requested] : sales_channel_ids;
    res.json({ products: PRODUCTS.filter((product) => product.sales_channel_ids.some((id) => channels.includes(id))) });
  });

  // The dashboard: a page where a person signs in with a secret key. Mounted before the line
  // below, because it signs people in with its own form and cookie, not with Basic auth.
  app.use("/admin/keys", apiKeyDashboard());

  // Admin API: everything else under /admin takes a secret key.
  app.use("/admin", apiKeyAuth({ type: "secret" }));
  app.get("/admin/whoami", (req, res) => {
    const { auth_context, secret_key_context } = req as AuthenticatedRequest<express.Request>;
    res.json({ auth_context, secret_key_context });
  });
  app.use("/admin/api-keys", apiKeyAdminRouter());
  return app;
}

async function main(): Promise<void> {
  const apiKeys = await initialize();
  apiKeys.on("api_key.created", (event) => console.log(`audit: ${event.created_by} created ${event.type} key ${event.id}`));
  apiKeys.on("api_key.revoked", (event) => console.log(`audit: ${event.revoked_by} revoked ${event.id}`));
  apiKeys.on("api_key.rolled", (event) => console.log(`audit: ${event.revoked_by} rolled ${event.id} into ${event.successor_id}`));
  apiKeys.on("api_key.updated", (event) => console.log(`audit: updated ${event.id} (${event.changed.join(", ")})`));
  apiKeys.on("api_key.deleted", (event) => console.log(`audit: deleted ${event.id}`));
  apiKeys.on("api_key.soft_deleted", (event) => console.log(`audit: soft-deleted ${event.id}`));
  apiKeys.on("api_key.restored", (event) => console.log(`audit: restored ${event.id}`));
  const created = await bootstrap(apiKeys);

  const server = createApp().listen(Number(process.env.PORT ?? 3000), "127.0.0.1", () => {
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    console.log(`express-api-keys example listening on ${base}`);
    const dashboard = `Dashboard: ${base}/admin/keys/ (sign in with a secret key)`;
    if (!created) {
      console.log(dashboard);
      for (const line of anotherAdminKey()) console.log(line);
      return;
    }
    const { admin, store, channels } = created;
    console.log("First start: created two keys.");
    console.log(`  secret key (admin, shown only now): ${admin.token}`);
    console.log(`  publishable key (storefront, sales channels ${channels.join(", ")}): ${store.token}`);
    console.log(dashboard);
    console.log("Try:");
    console.log(`  curl -s ${base}/store/products -H 'x-publishable-api-key: ${store.token}'`);
    console.log(`  curl -s ${base}/admin/api-keys -u '${admin.token}:'`);
    console.log(
      `  curl -s -X POST ${base}/admin/api-keys -u '${admin.token}:' -H 'content-type: application/json' -d '{"title":"Mobile app","type":"publishable"}'`,
    );
  });

  const stop = () => {
    server.close();
    void apiKeys.close();
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});

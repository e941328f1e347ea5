// A walk through the service: creates keys, authenticates, rolls and revokes, printing each
// step. Run with `npm run example:quickstart`.
import { initialize } from "../index";

async function main(): Promise<void> {
  // An in-memory database of its own, so that the walk-through leaves no key behind and runs
  // beside `npm start`. In an app, `initialize()` with no options takes DATABASE_URL, else an
  // embedded database in ./.express-api-keys.
  const apiKeys = await initialize({ database: "pglite://memory" });
  try {
    const admin = await apiKeys.createApiKeys({ title: "Quick start admin", type: "secret", created_by: "user_quickstart" });
    console.log(`created secret key ${admin.id} (${admin.redacted})`);
    console.log(`  its token, shown only this once: ${admin.token}`);

    const storefront = await apiKeys.createApiKeys({ title: "Quick start storefront", type: "publishable", created_by: "user_quickstart" });
    const channels = await apiKeys.updateLinks(storefront.id, { add: ["sc_web", "sc_mobile"] });
    console.log(`created publishable key ${storefront.token} linked to sales channels ${channels.join(", ")}`);

    const authenticated = await apiKeys.authenticate(admin.token);
    console.log(`authenticate(secret token) -> ${authenticated ? authenticated.id : "false"}`);
    const mistyped = await apiKeys.authenticate(admin.token.slice(0, -1) + (admin.token.endsWith("x") ? "y" : "x"));
    console.log(`authenticate(mistyped token) -> ${mistyped ? mistyped.id : "false"}`);

    const rolled = await apiKeys.roll(admin.id, { revoked_by: "user_quickstart", revoke_in: 60 });
    console.log(`rolled ${admin.id} -> ${rolled.id}; the old token keeps working for 60 s`);

    await apiKeys.revoke(storefront.id, { revoked_by: "user_quickstart" });
    console.log(`revoked ${storefront.id}`);

    const [keys, count] = await apiKeys.listAndCountApiKeys({ q: "quick start", revoked_at: null }, { take: 5, order: { created_at: "DESC" } });
    console.log(`${count} active quick start keys in the database; newest ${keys.length}:`);
    for (const key of keys) console.log(`  ${key.id}  ${key.type.padEnd(11)}  ${key.redacted}  ${key.title}`);
  } finally {
    await apiKeys.close();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});

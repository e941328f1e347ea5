// The dashboard in Debian's Chromium, as a key administrator with scopes would use it: it may
// sign in and manage what it holds, and is told in place, by role and name, when it tries more.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import type http from "node:http";
import type { AddressInfo } from "node:net";
import express from "express";
import { type Browser, type Page, chromium } from "playwright-core";
import { apiKeyDashboard } from "../../middleware/dashboard";
import { forEachBackend } from "../helpers/backends";

const CHROMIUM = "/usr/bin/chromium";

forEachBackend(
  "dashboard delegation in Chromium",
  (db) => {
    let browser: Browser;
    let server: http.Server;
    let base = "";
    let page: Page;
    let problems: string[];
    let dashboard: express.Router;

    // Launching Chromium and clicking through pages take seconds each on a busy machine.
    beforeEach(function () {
      this.currentTest!.timeout(30_000);
    });

    before(async function () {
      this.timeout(30_000);
      if (!existsSync(CHROMIUM)) {
        if (process.env.CI) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
        console.warn(`\n  !!! SKIPPING the browser tests: ${CHROMIUM} is missing (apt-get install -y chromium)\n`);
        this.skip();
      }
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
      });
      const app = express();
      app.use("/admin/keys", (req, res, next) => dashboard(req, res, next));
      server = app.listen(0, "127.0.0.1");
      await new Promise((resolve) => server.once("listening", resolve));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/admin/keys/`;
    });

    after(async () => {
      await browser?.close();
      await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
    });

    beforeEach(async () => {
      dashboard = apiKeyDashboard({ service: db.service });
      page = await (await browser.newContext()).newPage();
      problems = [];
      page.on("pageerror", (error) => problems.push(error.message));
    });

    afterEach(async () => {
      await page.context().close();
      assert.deepEqual(problems, [], "no script errors");
    });

    async function signIn(token: string): Promise<void> {
      await page.goto(base);
      await page.getByLabel("Secret key").fill(token);
      await page.getByRole("button", { name: "Sign in" }).click();
    }

    const row = (title: string) => page.getByRole("row").filter({ has: page.getByText(title, { exact: true }) });

    it("refuses a key without api_keys:read, and tells an administrator with scopes what it may not give or take over", async () => {
      const orders = await db.service.createApiKeys({ title: "Orders worker", type: "secret", created_by: "u", scopes: ["orders:read"] });
      await signIn(orders.token);
      await page.getByRole("alert").filter({ hasText: "lacks the scope api_keys:read" }).waitFor();

      const root = await db.service.createApiKeys({ title: "Ops root", type: "secret", created_by: "u" });
      const manager = await db.service.createApiKeys({ title: "Key manager", type: "secret", created_by: "u", scopes: ["api_keys:read", "api_keys:write"] });
      await signIn(manager.token);
      await page.getByRole("table").waitFor();
      const before = await db.service.listApiKeys({}, { order: { id: "ASC" } });

      await page.getByRole("button", { name: "Create key" }).click();
      const create = page.getByRole("dialog", { name: "Create key" });
      await create.getByLabel("Title").fill("Second root");
      await create.getByLabel("Type", { exact: true }).selectOption("secret");
      await create.getByText("Policy (optional)").click();
      await create.getByLabel("Scopes").fill("*");
      await create.getByRole("button", { name: "Create" }).click();
      await create.getByRole("alert").filter({ hasText: "cannot give the scope *" }).waitFor();
      await create.getByRole("button", { name: "Cancel" }).click();

      await row("Ops root").getByRole("button", { name: "Roll" }).click();
      const roll = page.getByRole("dialog", { name: "Roll Ops root" });
      await roll.getByRole("button", { name: "Roll" }).click();
      await roll.getByRole("alert").filter({ hasText: `lacks the scope * that ${root.id} holds` }).waitFor();
      assert.equal(await page.getByRole("dialog", { name: "Key rolled: Ops root" }).count(), 0, "no successor, no token");
      assert.deepEqual(await db.service.listApiKeys({}, { order: { id: "ASC" } }), before, "nothing changed");
    });
  },
  ["postgres"],
);

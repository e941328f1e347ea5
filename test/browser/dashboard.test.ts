// The dashboard driven in Debian's Chromium as a person would: by role and accessible name,
// from the keyboard where it matters. One browser for the suite, a fresh context per test.
// Screenshots go to test-results/ (gitignored); docs/dashboard.png is a copy of one of them.
// Code run in the page is passed as strings: this project's types have no DOM.
import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import express from "express";
import { type Browser, type BrowserContext, type Page, chromium } from "playwright-core";
import type { ApiKeyDTO } from "../../lib/types";
import { apiKeyDashboard } from "../../middleware/dashboard";
import { forEachBackend } from "../helpers/backends";

const CHROMIUM = "/usr/bin/chromium";
const RESULTS = path.resolve(__dirname, "../../test-results");
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

forEachBackend(
  "dashboard in Chromium",
  (db) => {
    let browser: Browser;
    let server: http.Server;
    let base = "";
    let context: BrowserContext;
    let page: Page;
    let problems: string[];
    let admin: ApiKeyDTO;
    let dashboard: express.Router;
    let appDashboard: express.Router;

    // Launching Chromium and clicking through pages take seconds each on a busy machine.
    beforeEach(function () {
      this.currentTest!.timeout(30_000);
    });

    before(async function () {
      this.timeout(30_000);
      if (!existsSync(CHROMIUM)) {
        // Under CI a missing browser fails the run (.ci/run installs it); elsewhere, say so loudly.
        if (process.env.CI) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
        console.warn(`\n  !!! SKIPPING the browser tests: ${CHROMIUM} is missing (apt-get install -y chromium)\n`);
        this.skip();
      }
      mkdirSync(RESULTS, { recursive: true });
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        // Names under example.test reach this machine, for tests of what one host's cookie reaches.
        args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--host-resolver-rules=MAP *.example.test 127.0.0.1"],
      });
      const app = express();
      // The service changes per test; the dashboard asks for it on every request.
      app.use("/admin/keys", (req, res, next) => dashboard(req, res, next));
      // One mount per tenant, as an app with tenants in its paths would have.
      app.use("/tenants/:tenant/keys", (req, res, next) => dashboard(req, res, next));
      // An app with its own authentication (here, a header the test sets) in front of the mount.
      app.use("/app/keys", (req, _res, next) => {
        const user = req.headers["x-test-user"];
        if (typeof user === "string") Object.assign(req, { auth_context: { actor_id: user } });
        appDashboard(req, _res, next);
      });
      server = app.listen(0, "127.0.0.1");
      await new Promise((resolve) => server.once("listening", resolve));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/admin/keys`;
    });

    after(async () => {
      await browser?.close();
      await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
    });

    beforeEach(async () => {
      dashboard = apiKeyDashboard({ service: db.service });
      appDashboard = apiKeyDashboard({ service: db.service, signIn: false });
      admin = await db.service.createApiKeys({ title: "Ops admin", type: "secret", created_by: "user_ops" });
      context = await browser.newContext({ viewport: DESKTOP });
      await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: new URL(base).origin });
      page = await context.newPage();
      problems = [];
      // A CSP violation or a script error is a failure, whatever the test was looking at.
      page.on("console", (message) => {
        if (message.type() === "error") problems.push(message.text());
      });
      page.on("pageerror", (error) => problems.push(error.message));
    });

    afterEach(async function () {
      if (this.currentTest?.state === "failed") await page.screenshot({ path: path.join(RESULTS, `failed-${this.currentTest.title.replace(/\W+/g, "-")}.png`) });
      await context.close();
      const expected = problems.filter((text) => !/status of 40[13]/.test(text));
      assert.deepEqual(expected, [], "no script errors or CSP violations");
    });

    async function signIn(token = admin.token) {
      await page.goto(`${base}/`);
      await page.getByLabel("Secret key").fill(token);
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.getByRole("table").waitFor();
    }

    /** The table row of the key with this title. */
    const row = (title: string) => page.getByRole("row").filter({ has: page.getByText(title, { exact: true }) });

    async function createKey(title: string, type: "Secret" | "Publishable", policy?: (dialog: ReturnType<Page["getByRole"]>) => Promise<void>): Promise<string> {
      await page.getByRole("button", { name: "Create key" }).click();
      const dialog = page.getByRole("dialog", { name: "Create key" });
      await dialog.getByLabel("Title").fill(title);
      await dialog.getByLabel("Type", { exact: true }).selectOption(type.toLowerCase());
      if (policy) await policy(dialog);
      await dialog.getByRole("button", { name: "Create" }).click();
      const reveal = page.getByRole("dialog", { name: `Key created: ${title}` });
      const token = await reveal.getByLabel("Token").inputValue();
      await reveal.getByRole("button", { name: "Copy" }).click();
      await reveal.getByText("Copied to the clipboard.").waitFor();
      assert.equal(await page.evaluate("navigator.clipboard.readText()"), token, "Copy puts the token on the clipboard");
      await reveal.getByRole("button", { name: "Done" }).click();
      await row(title).waitFor();
      return token;
    }

    it("refuses a wrong key with a message, signs in from the keyboard, and signs out", async () => {
      await page.goto(base);
      assert.equal(page.url(), `${base}/`, "the mount without its slash redirects");
      const field = page.getByLabel("Secret key");
      await field.fill(`${admin.token.slice(0, -2)}xx`);
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.getByRole("alert").filter({ hasText: "That secret key is not valid" }).waitFor();

      await field.fill(admin.token);
      await field.press("Enter");
      await page.getByRole("table").waitFor();
      await page.getByText("Signed in as Ops admin").waitFor();
      assert.equal(await page.evaluate("localStorage.length + sessionStorage.length"), 0, "nothing in the browser's storage");
      const cookies = await context.cookies();
      assert.equal(cookies.length, 1);
      assert.equal(cookies[0]!.httpOnly, true);
      assert.equal(cookies[0]!.sameSite, "Strict");
      assert.ok(!cookies[0]!.value.includes(admin.token.slice(3, 20)), "the cookie holds no part of the key");

      // From the keyboard: Tab to Create key, open it, Escape closes the dialog.
      await page.getByRole("button", { name: "Create key" }).focus();
      await page.keyboard.press("Enter");
      await page.getByRole("dialog", { name: "Create key" }).waitFor();
      assert.equal(await page.evaluate("document.activeElement?.id"), "f-title", "focus moves into the dialog");
      await page.keyboard.press("Escape");
      await page.getByRole("dialog").waitFor({ state: "detached" });

      await page.getByRole("button", { name: "Sign out" }).click();
      await page.getByRole("button", { name: "Sign in" }).waitFor();
      assert.equal((await context.cookies()).length, 0);
      await page.reload();
      await page.getByRole("button", { name: "Sign in" }).waitFor();
    });

    it("creates each type of key with its token shown once, finds one by search, revokes it and deletes it", async () => {
      await signIn();
      await page.getByLabel("Type filter").selectOption("publishable");
      await page.getByText("No keys match these filters.").waitFor();
      await page.getByLabel("Type filter").selectOption("");

      // A refused form keeps the dialog open and says why, in place.
      await page.getByRole("button", { name: "Create key" }).click();
      const dialog = page.getByRole("dialog", { name: "Create key" });
      await dialog.getByRole("button", { name: "Create" }).click();
      await dialog.getByRole("alert").filter({ hasText: "title" }).waitFor();
      await dialog.getByLabel("Title").fill("Bad metadata");
      await dialog.getByText("Policy (optional)").click();
      await dialog.getByLabel("Metadata").fill("{nope");
      await dialog.getByRole("button", { name: "Create" }).click();
      await dialog.getByRole("alert").filter({ hasText: "Metadata must be a JSON object" }).waitFor();
      await dialog.getByRole("button", { name: "Cancel" }).click();

      const secret = await createKey("Billing worker", "Secret", async (dialog) => {
        await dialog.getByText("Policy (optional)").click();
        await dialog.getByLabel("Scopes").fill("orders:read, invoices:*");
        await dialog.getByLabel("Owner ID").fill("org_acme");
        await dialog.getByLabel("Metadata").fill('{"team": "billing"}');
        await dialog.getByRole("button", { name: "Add rate limit" }).click();
        await dialog.getByLabel("Rate limit 1 name").fill("api");
        await dialog.getByLabel("Rate limit 1 requests").fill("100");
        await dialog.getByLabel("Rate limit 1 seconds").fill("60");
        await dialog.getByLabel("Remaining uses").fill("5000");
        await dialog.getByLabel("Allowed IPs").fill("10.0.0.0/8, 2001:DB8::/32");
      });
      assert.match(secret, /^sk_/);
      const publishable = await createKey("Mobile app", "Publishable");
      assert.match(publishable, /^pk_/);
      const stored = (await db.service.listApiKeys({ title: "Billing worker" }))[0]!;
      assert.deepEqual(
        [stored.scopes, stored.owner_id, stored.metadata, stored.rate_limits, stored.remaining],
        [["orders:read", "invoices:*"], "org_acme", { team: "billing" }, [{ name: "api", limit: 100, duration: 60 }], 5000],
      );
      assert.deepEqual(stored.allowed_ips, ["10.0.0.0/8", "2001:db8::/32"]);
      assert.equal(await page.getByText(secret).count(), 0, "the token is not shown again");

      await page.getByLabel("Search").fill("billing");
      await page.getByRole("row").filter({ hasText: "Mobile app" }).waitFor({ state: "detached" });
      assert.equal(await row("Billing worker").count(), 1);
      await row("Billing worker").getByRole("button", { name: "Details" }).click();
      await page.getByText("org_acme").waitFor();
      await page.getByText("api: 100 per 60 s").waitFor();
      await page.getByText("10.0.0.0/8, 2001:db8::/32").waitFor();

      await row("Billing worker").getByRole("button", { name: "Revoke" }).click();
      const revoke = page.getByRole("dialog", { name: "Revoke Billing worker" });
      await revoke.getByRole("button", { name: "Revoke" }).click();
      await row("Billing worker").getByText("Revoked", { exact: true }).waitFor();
      assert.equal(await db.service.authenticate(secret), false);

      await page.getByLabel("Status filter").selectOption("revoked");
      await row("Billing worker").getByRole("button", { name: "Delete" }).click();
      await page.getByRole("dialog", { name: "Delete Billing worker" }).getByRole("button", { name: "Delete" }).click();
      await page.getByText("No keys match these filters.").waitFor();
      assert.deepEqual(await db.service.listApiKeys({ title: "Billing worker" }), []);
    });

    it("revokes at a chosen time, rolls with a grace period, and links a sales channel", async () => {
      await signIn();
      const storefront = await db.service.createApiKeys({ title: "Web storefront", type: "publishable", created_by: "user_ops" });
      const worker = await db.service.createApiKeys({ title: "Nightly export", type: "secret", created_by: "user_ops" });
      await page.reload();

      await row("Nightly export").getByRole("button", { name: "Roll" }).click();
      const roll = page.getByRole("dialog", { name: "Roll Nightly export" });
      await roll.getByLabel("Grace period").selectOption({ label: "24 hours" });
      await roll.getByRole("button", { name: "Roll" }).click();
      const reveal = page.getByRole("dialog", { name: "Key rolled: Nightly export" });
      const successor = await reveal.getByLabel("Token").inputValue();
      await reveal.getByRole("button", { name: "Done" }).click();
      assert.ok(await db.service.authenticate(successor), "the new key works");
      assert.ok(await db.service.authenticate(worker.token), "the old one too, for its grace period");
      await row("Nightly export").getByText("Revokes soon").waitFor();

      await row("Web storefront").getByRole("button", { name: "Revoke" }).click();
      const revoke = page.getByRole("dialog", { name: "Revoke Web storefront" });
      await revoke.getByLabel("At a chosen time").check();
      await revoke.getByLabel("Revoke at").fill("2099-01-01T09:30");
      await revoke.getByRole("button", { name: "Revoke" }).click();
      await revoke.waitFor({ state: "detached" });
      const scheduled = await db.service.retrieveApiKey(storefront.id);
      assert.equal(new Date(scheduled.revoked_at!).getFullYear(), 2099);

      await row("Web storefront").getByRole("button", { name: "Details" }).click();
      await page.getByLabel("Sales channel ID").fill("sc_web");
      await page.getByRole("button", { name: "Link", exact: true }).click();
      await page.getByRole("button", { name: "Unlink sc_web" }).waitFor();
      assert.deepEqual(await db.service.listLinks(storefront.id), ["sc_web"]);
      await page.getByRole("button", { name: "Unlink sc_web" }).click();
      await page.getByText("Not linked to any sales channel").waitFor();
      assert.deepEqual(await db.service.listLinks(storefront.id), []);

      await row("Web storefront").getByRole("button", { name: "Edit" }).click();
      const rename = page.getByRole("dialog", { name: "Edit Web storefront" });
      await rename.getByLabel("Title").fill("Web shop (EU)");
      await rename.getByRole("button", { name: "Save" }).click();
      await row("Web shop (EU)").waitFor();
      assert.equal((await db.service.retrieveApiKey(storefront.id)).title, "Web shop (EU)");
    });

    for (const [size, viewport] of [["1280 px", DESKTOP], ["a phone's width", PHONE]] as const) {
      it(`edits every policy field in place, at ${size}: expiry presets in the browser's time zone, rate limits as rows`, async () => {
        await page.setViewportSize(viewport);
        const key = await db.service.createApiKeys({ title: "Order sync", type: "secret", created_by: "user_ops", rate_limits: [{ name: "burst", limit: 10, duration: 1 }] });
        await signIn();
        await row("Order sync").getByRole("button", { name: "Edit" }).click();
        const edit = page.getByRole("dialog", { name: "Edit Order sync" });
        await edit.getByText(/Times are in your time zone, \S+\./).waitFor();
        await edit.getByLabel("Expires", { exact: true }).selectOption({ label: "In 30 days" });
        await edit.getByLabel("Scopes").fill("orders:read orders:write");
        await edit.getByLabel("Owner ID").fill("org_acme");
        await edit.getByLabel("Metadata").fill('{"team": "erp", "tier": 2}');
        assert.equal(await edit.getByLabel("Rate limit 1 name").inputValue(), "burst", "the key's limits, as rows");
        await edit.getByRole("button", { name: "Add rate limit" }).click();
        await edit.getByLabel("Rate limit 2 name").fill("hourly");
        await edit.getByLabel("Rate limit 2 requests").fill("1000");
        await edit.getByLabel("Rate limit 2 seconds").fill("3600");
        await edit.getByRole("button", { name: "Remove rate limit 1" }).click();
        await edit.getByLabel("Remaining uses").fill("500");
        await edit.getByLabel("Refill amount").fill("500");
        await edit.getByLabel("Refill interval").selectOption("month");
        await edit.getByLabel("Allowed IPs").fill("192.0.2.0/24 2001:db8::1");
        await edit.getByRole("button", { name: "Save" }).click();
        await edit.waitFor({ state: "detached" });
        const saved = await db.service.retrieveApiKey(key.id);
        const days = (new Date(saved.expires_at!).getTime() - Date.now()) / 86_400_000;
        assert.ok(days > 29.9 && days <= 30, `expires in 30 days: ${days}`);
        assert.deepEqual(
          [saved.scopes, saved.owner_id, saved.metadata, saved.rate_limits, saved.remaining, saved.refill, saved.allowed_ips],
          [["orders:read", "orders:write"], "org_acme", { team: "erp", tier: 2 }, [{ name: "hourly", limit: 1000, duration: 3600 }], 500, { amount: 500, interval: "month" }, ["192.0.2.0/24", "2001:db8::1"]],
        );
        // Focus returns to the button the dialog was opened from.
        assert.equal(await page.evaluate("document.activeElement?.textContent"), "Edit");

        // Cleared again: never expires, no limits, unlimited, any address.
        await row("Order sync").getByRole("button", { name: "Edit" }).click();
        const again = page.getByRole("dialog", { name: "Edit Order sync" });
        await again.getByLabel("Expires", { exact: true }).selectOption({ label: "Never" });
        await again.getByRole("button", { name: "Remove rate limit 1" }).click();
        await again.getByLabel("Remaining uses").fill("");
        await again.getByLabel("Refill amount").fill("");
        await again.getByLabel("Allowed IPs").fill("");
        await again.getByRole("button", { name: "Save" }).click();
        await again.waitFor({ state: "detached" });
        const cleared = await db.service.retrieveApiKey(key.id);
        assert.deepEqual(
          [cleared.expires_at, cleared.rate_limits, cleared.remaining, cleared.refill, cleared.allowed_ips, cleared.owner_id],
          [null, [], null, null, [], "org_acme"],
        );
        if (viewport === PHONE) {
          const overflow = Number(await page.evaluate("document.documentElement.scrollWidth - window.innerWidth"));
          assert.ok(overflow <= 0, `no sideways scrolling on a phone (${overflow}px too wide)`);
        }
      });
    }

    for (const [size, viewport] of [["1280 px", DESKTOP], ["a phone's width", PHONE]] as const) {
      it(`shows a publishable token at any time with Copy, links several sales channels at once, and refuses what cannot be an id, at ${size}`, async () => {
        await page.setViewportSize(viewport);
        await signIn();
        await page.getByRole("button", { name: "Create key" }).click();
        const create = page.getByRole("dialog", { name: "Create key" });
        await create.getByLabel("Title").fill("Kiosk");
        await create.getByLabel("Type", { exact: true }).selectOption("publishable");
        await create.getByRole("button", { name: "Create" }).click();
        const reveal = page.getByRole("dialog", { name: "Key created: Kiosk" });
        await reveal.getByText("A publishable token is public: the key's details show it at any time.").waitFor();
        assert.equal(await reveal.getByText("not shown again").count(), 0);
        const token = await reveal.getByLabel("Token").inputValue();
        await reveal.getByRole("button", { name: "Done" }).click();

        await row("Kiosk").getByRole("button", { name: "Details" }).click();
        const details = page.locator(".details");
        assert.equal(await details.getByLabel("Token").inputValue(), token);
        await details.getByRole("button", { name: "Copy" }).click();
        await details.getByText("Copied to the clipboard.").waitFor();
        assert.equal(await page.evaluate("navigator.clipboard.readText()"), token);

        const kiosk = (await db.service.listApiKeys({ title: "Kiosk" }))[0]!;
        await details.getByLabel("Sales channel IDs").fill("sc_eu, sc_us  sc_ca");
        await details.getByRole("button", { name: "Link", exact: true }).click();
        await details.getByRole("button", { name: "Unlink sc_us" }).waitFor();
        assert.deepEqual(await db.service.listLinks(kiosk.id), ["sc_ca", "sc_eu", "sc_us"]);
        await details.getByLabel("Sales channel IDs").fill("sc_ok, not/an id");
        await details.getByRole("button", { name: "Link", exact: true }).click();
        await details.getByRole("alert").filter({ hasText: '"not/an" cannot be a sales channel ID' }).waitFor();
        assert.deepEqual(await db.service.listLinks(kiosk.id), ["sc_ca", "sc_eu", "sc_us"], "nothing linked");
      });

      it(`shows soft-deleted keys with Restore, keeps filters and page in the address, and names the key that created a key, at ${size}`, async () => {
        await page.setViewportSize(viewport);
        const made = await db.service.createApiKeys({ title: "Made by a key", type: "secret", created_by: admin.id });
        const hidden = await db.service.createApiKeys({ title: "Parked integration", type: "secret", created_by: "user_ops" });
        await db.service.softDeleteApiKeys(hidden.id);
        for (let i = 0; i < 25; i++) await db.service.createApiKeys({ title: `Batch ${String(i).padStart(2, "0")}`, type: "publishable", created_by: "user_ops" });
        await signIn();

        await row("Made by a key").getByRole("button", { name: "Details" }).click();
        await page.locator(".details").getByText(`Ops admin (${admin.redacted})`).waitFor();
        assert.equal(made.created_by, admin.id);

        await page.getByLabel("Status filter").selectOption("deleted");
        await row("Parked integration").getByText("Deleted", { exact: true }).waitFor();
        assert.match(page.url(), /[?&]status=deleted/);
        await row("Parked integration").getByRole("button", { name: "Restore" }).click();
        await page.getByText("No keys match these filters.").waitFor();
        assert.equal((await db.service.retrieveApiKey(hidden.id)).deleted_at, null);
        assert.ok(await db.service.authenticate(hidden.token), "a restored key authenticates again");

        await page.getByLabel("Status filter").selectOption("");
        await page.getByLabel("Type filter").selectOption("publishable");
        await page.getByRole("button", { name: "Next" }).click();
        await page.getByText("21-25 of 25").waitFor();
        assert.match(page.url(), /\?type=publishable&page=2$/);
        await page.reload();
        await page.getByText("21-25 of 25").waitFor();
        assert.equal(await page.getByLabel("Type filter").inputValue(), "publishable");
      });
    }

    it("opens on the sign-in form with nothing in the browser's console", async () => {
      const messages: string[] = [];
      page.on("console", (message) => messages.push(`${message.type()}: ${message.text()}`));
      await page.goto(`${base}/`);
      await page.getByLabel("Secret key").waitFor();
      assert.deepEqual(messages, []);
    });

    it("rolls the key it is signed in with, without a grace period: shows the new token, then signs in with it", async () => {
      await signIn();
      await row("Ops admin").getByRole("button", { name: "Roll" }).click();
      const roll = page.getByRole("dialog", { name: "Roll Ops admin" });
      await roll.getByLabel("Grace period").selectOption({ label: "None: the old key stops now" });
      await roll.getByRole("button", { name: "Roll" }).click();

      // The old key is revoked now, so the session ends behind the dialog; the dialog stays up.
      const reveal = page.getByRole("dialog", { name: "Key rolled: Ops admin" });
      const successor = await reveal.getByLabel("Token").inputValue();
      assert.match(successor, /^sk_/);
      await page.getByLabel("Secret key").waitFor({ state: "attached" });
      await reveal.getByText("This was the key you signed in with, so you are signed out now").waitFor();
      await reveal.getByRole("button", { name: "Copy" }).click();
      await reveal.getByText("Copied to the clipboard.").waitFor();
      assert.equal(await page.evaluate("navigator.clipboard.readText()"), successor);
      await reveal.getByRole("button", { name: "Done" }).click();
      await reveal.waitFor({ state: "detached" });
      await page.getByRole("alert").filter({ hasText: "Your session has ended: the key that opened it was revoked" }).waitFor();
      assert.equal(await db.service.authenticate(admin.token), false, "the old key is revoked");

      await page.getByLabel("Secret key").fill(successor);
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.getByText("Signed in as Ops admin").waitFor();
      await row("Ops admin").getByText("Active", { exact: true }).waitFor();
    });

    it("pages through many keys, and shows markup in a title as text", async () => {
      await db.service.createApiKeys(Array.from({ length: 23 }, (_, i) => ({ title: `Batch key ${i + 1}`, type: "publishable" as const, created_by: "user_ops" })));
      const markup = '<img src=x onerror="window.injected=1">';
      await db.service.createApiKeys({ title: markup, type: "secret", created_by: "user_ops" });
      await signIn();
      await page.getByText("1-20 of 25").waitFor();
      await page.getByRole("button", { name: "Next" }).click();
      await page.getByText("21-25 of 25").waitFor();
      assert.equal(await page.getByRole("button", { name: "Next" }).isDisabled(), true);
      await page.getByRole("button", { name: "Previous" }).click();
      await page.getByText("1-20 of 25").waitFor();

      await page.getByLabel("Search").fill("onerror");
      await page.getByText(markup, { exact: true }).waitFor();
      assert.equal(await page.evaluate("window.injected"), undefined);
    });

    it("ends the session when the key that opened it is revoked", async () => {
      await signIn();
      await db.service.revoke(admin.id, { revoked_by: "user_security" });
      await page.getByLabel("Search").fill("anything");
      await page.getByRole("alert").filter({ hasText: "Your session has ended" }).waitFor();
      await page.getByLabel("Secret key").waitFor();
    });

    it("keeps the session cookie on its host and mount, whatever a crafted link puts in the path", async () => {
      // A link to the tenant "acme;Domain=example.test;x=": before, the cookie's Path attribute
      // ended at the ";" and Chromium took the Domain that followed, sending the cookie to
      // sibling hosts.
      const port = new URL(base).port;
      await page.goto(`http://app.example.test:${port}/tenants/acme;Domain=example.test;x=/keys/`);
      await page.getByLabel("Secret key").fill(admin.token);
      await page.getByRole("button", { name: "Sign in" }).click();
      // The cookie's Path is the mount percent-encoded, which this crafted path does not match:
      // the session is not sent back, and the page asks to sign in again.
      await page.getByRole("alert").filter({ hasText: "You are not signed in" }).waitFor();
      const cookies = await context.cookies();
      assert.equal(cookies.length, 1, "the sign-in set a cookie");
      const { domain, path, httpOnly, sameSite } = cookies[0]!;
      assert.deepEqual({ domain, path, httpOnly, sameSite }, { domain: "app.example.test", path: "/tenants/acme%3BDomain=example.test%3Bx=/keys/", httpOnly: true, sameSite: "Strict" });
      assert.deepEqual(await context.cookies(`http://other.example.test:${port}/tenants/acme/keys/`), [], "no cookie for a sibling host");
    });

    it("with signIn: false, acts as the app's user, and says so when there is none", async () => {
      await page.goto(base.replace("/admin/keys", "/app/keys/"));
      await page.getByRole("alert").filter({ hasText: "You are not signed in to the app" }).waitFor();
      assert.equal(await page.getByLabel("Secret key").count(), 0, "no sign-in form");

      await context.setExtraHTTPHeaders({ "x-test-user": "user_ada" });
      await page.reload();
      await page.getByText("Signed in as user_ada").waitFor();
      assert.equal(await page.getByRole("button", { name: "Sign out" }).count(), 0);
      await createKey("Ada's laptop", "Secret");
      assert.equal((await db.service.listApiKeys({ title: "Ada's laptop" }))[0]!.created_by, "user_ada");
    });

    it("shows each key's verifications in the table and as a chart, with the numbers, and its audit trail", async () => {
      const key = await db.service.createApiKeys({ title: "Checkout service", type: "secret", created_by: "user_ops" }, { actor: "user_ops" });
      await db.service.updateApiKeys(key.id, { title: "Checkout API" }, { actingKey: admin.id });
      // Verifications on another instance, written when it closes, as a flush would.
      const instance = await db.open({ now: () => new Date() });
      for (let i = 0; i < 3; i++) await instance.verifyApiKey(key.token);
      await instance.verifyApiKey(key.token, { scopes: ["orders:write"] });
      await instance.close();

      await signIn();
      await row("Checkout API").getByRole("cell", { name: "3 valid, 1 refused" }).waitFor();
      const overview = page.getByRole("img", { name: /^All keys, last 30 days: \d+ valid and \d+ refused verifications over 30 days/ });
      await overview.waitFor();

      await row("Checkout API").getByRole("button", { name: "Details" }).click();
      const chart = page.getByRole("img", { name: "Verifications of Checkout API, last 30 days: 3 valid and 1 refused verifications over 30 days, at most 4 in a day." });
      await chart.waitFor();
      // The numbers behind the bars, as a table a screen reader can walk.
      const usage = page.getByRole("region", { name: "Usage", exact: true });
      await usage.getByText("Numbers").click();
      const today = usage.getByRole("table").getByRole("row").last();
      assert.deepEqual((await today.getByRole("cell").allTextContents()).slice(0, 5), ["3", "0", "0", "0", "1"]);

      const trail = page.getByRole("region", { name: "Audit trail" }).getByRole("listitem");
      await trail.filter({ hasText: "Updated" }).waitFor();
      assert.match(await trail.first().innerText(), /^Updated .* by Ops admin \(sk_.{3}\*\*\*.{3}\)\s+title: Checkout service \u2192 Checkout API/s);
      assert.match(await trail.filter({ hasText: "Created" }).first().innerText(), /by user_ops/);

      await page.setViewportSize(PHONE);
      const box = await chart.boundingBox();
      assert.ok(box && box.width <= PHONE.width && box.width > 200, `the chart fits a phone's width: ${box?.width}`);
      await usage.getByText("Numbers").click();
      await page.getByRole("region", { name: "Usage", exact: true }).screenshot({ path: path.join(RESULTS, "dashboard-usage-phone.png") });
    });

    it("shows realistic keys readably at 1280x800 and on a phone", async () => {
      // Keys made over the past weeks, some in use: created and last used times set as they would be.
      const DAY = 86_400_000;
      const seed: [string, "secret" | "publishable", Record<string, unknown>, number, number | null][] = [
        ["Staging CI", "secret", {}, 41, 12],
        ["Web storefront", "publishable", {}, 33, 0.01],
        ["Order sync (ERP)", "secret", { scopes: ["orders:*"], owner_id: "org_acme" }, 20, 0.2],
        ["iOS app", "publishable", {}, 14, 0.05],
        ["Partner: Northwind", "secret", { owner_id: "org_northwind", rate_limits: [{ name: "api", limit: 600, duration: 60 }] }, 6, 1.5],
        ["Analytics export", "secret", { scopes: ["reports:read"], expires_in: 90 * 86400 }, 2, null],
      ];
      const start = db.clock.now().getTime();
      for (const [title, type, policy, daysAgo, usedDaysAgo] of seed) {
        db.clock.advance(start - daysAgo * DAY - db.clock.now().getTime());
        const key = await db.service.createApiKeys({ title, type, created_by: "user_ops", ...policy });
        const lastUsed = usedDaysAgo === null ? null : new Date(start - usedDaysAgo * DAY);
        await db.table("api_key").where({ id: key.id }).update({ last_used_at: lastUsed });
        if (title === "Staging CI") {
          db.clock.advance(Math.round(10 * DAY));
          await db.service.revoke(key.id, { revoked_by: "user_ops" });
        }
        if (title === "Web storefront") await db.service.updateLinks(key.id, { add: ["sc_web", "sc_app"] });
      }
      db.clock.advance(start - db.clock.now().getTime());
      await db.table("api_key").where({ id: admin.id }).update({ last_used_at: new Date(start) });
      await signIn();
      await row("Staging CI").waitFor();
      await page.mouse.move(0, 0);
      await page.screenshot({ path: path.join(RESULTS, "dashboard.png") });
      const frame = "document.querySelector('.table-frame')";
      assert.ok(Number(await page.evaluate(`${frame}.scrollWidth - ${frame}.clientWidth`)) <= 0, "the table fits 1280 pixels");
      await row("Web storefront").getByRole("button", { name: "Details" }).click();
      await page.getByRole("button", { name: "Unlink sc_web" }).waitFor();
      await page.screenshot({ path: path.join(RESULTS, "dashboard-details.png") });

      await page.setViewportSize(PHONE);
      await page.getByRole("button", { name: "Create key" }).waitFor();
      const overflow = Number(await page.evaluate("document.documentElement.scrollWidth - window.innerWidth"));
      assert.ok(overflow <= 0, `no sideways scrolling on a phone (${overflow}px too wide)`);
      await page.screenshot({ path: path.join(RESULTS, "dashboard-phone.png"), fullPage: true });
    });
  },
  ["pglite"],
);

import assert from "node:assert/strict";
import request from "supertest";
import { MAX_FILTER_VALUES } from "../../lib/filters";
import type { CreateApiKeyDTO } from "../../lib/types";
import { MAX_IDS } from "../../lib/input-fields";
import { rejectsWith } from "../helpers/assertions";
import { forEachBackend } from "../helpers/backends";
import { createAdminApp } from "../helpers/create-app";

const ids = (count: number, prefix = "sc_") => Array.from({ length: count }, (_, i) => `${prefix}${i}`);

forEachBackend("bounded lists", (db) => {
  it("refuses more than 1000 link ids per add or remove, in the service and the router", async () => {
    const key = await db.service.createApiKeys({ title: "p", type: "publishable", created_by: "u" });
    // 30,000 links were 90,000 bind parameters: a SQL error, reported as an outage.
    await rejectsWith(db.service.updateLinks(key.id, { add: ids(30_000) }), "invalid_data", "Field 'add' holds 30000 ids: at most 1000 are allowed in one request");
    await rejectsWith(db.service.updateLinks(key.id, { remove: ids(MAX_IDS + 1) }), "invalid_data", /'remove' holds 1001 ids: at most 1000/);
    await rejectsWith(db.service.updateLinks(key.id, { add: ["sc_1", , "sc_2"] as string[] }), "invalid_data", /field 'add'/);
    assert.deepEqual(await db.service.listLinks(key.id), []);
    assert.equal((await db.service.updateLinks(key.id, { add: ids(MAX_IDS) })).length, MAX_IDS);

    const admin = await db.service.createApiKeys({ title: "admin", type: "secret", created_by: "u" });
    const res = await request(createAdminApp("express5", db.service))
      .post(`/admin/api-keys/${key.id}/sales-channels`)
      .set("Authorization", `Basic ${admin.token}`)
      .send({ remove: ids(MAX_IDS + 1, "r") });
    assert.deepEqual([res.status, res.body], [400, { type: "invalid_data", message: "Invalid request: Field 'remove' holds 1001 ids: at most 1000 are allowed in one request" }]);
    assert.equal((await db.service.listLinks(key.id)).length, MAX_IDS);
  });

  it("refuses more than 1000 keys per create or delete call, and holes in either", async () => {
    const input: CreateApiKeyDTO = { title: "k", type: "secret", created_by: "u" };
    await rejectsWith(db.service.createApiKeys(Array.from({ length: MAX_IDS + 1 }, () => input)), "invalid_data", "At most 1000 keys are allowed in one call, got 1001");
    await rejectsWith(db.service.createApiKeys([input, , input] as CreateApiKeyDTO[]), "invalid_data", /Expected an object for api key data/);
    assert.deepEqual(await db.service.listApiKeys(), []);
    await rejectsWith(db.service.deleteApiKeys(ids(70_000, "apk_")), "invalid_data", "At most 1000 ids are allowed in one call, got 70000");
    await rejectsWith(db.service.deleteApiKeys(["apk_1", , "apk_2"] as string[]), "invalid_data", /non-empty string id/);
  });

  it("refuses a filter of a million values as invalid_data naming the limit, not a SQL error", async () => {
    const million = { $or: Array.from({ length: 1000 }, (_, b) => ({ id: { $in: ids(1000, `apk_${b}_`) } })) };
    const limit = new RegExp(`at most ${MAX_FILTER_VALUES} values in all`);
    await rejectsWith(db.service.listApiKeys(million), "invalid_data", limit);
    await rejectsWith(db.service.listAndCountApiKeys({ q: "w ".repeat(40_000) }), "invalid_data", limit);
    await rejectsWith(db.service.revoke(million, { revoked_by: "u" }), "invalid_data", limit);
  });
});

forEachBackend(
  "selectors and links beyond a statement's bind parameters",
  (db) => {
    it("updates and revokes the 66,000 keys a selector matches, and rolls a key with 22,000 links", async function () {
      this.timeout(120_000);
      // More keys than PostgreSQL's 65,535 bind parameters can name in one statement.
      await db.knex.raw(
        `insert into ??.api_key (id, token, redacted, title, type, created_by)
         select 'apk_bulk' || lpad(i::text, 6, '0'), md5(i::text), 'sk_bul***k00', 'bulk', 'secret', 'seed'
         from generate_series(1, 66000) as i`,
        [db.schema!],
      );
      assert.equal((await db.service.updateApiKeys({ title: "bulk" }, { title: "renamed" })).length, 66_000);
      assert.equal((await db.service.revoke({ title: "renamed" }, { revoked_by: "u" })).length, 66_000);
      assert.equal((await db.service.listAndCountApiKeys({ revoked_by: "u" }, { take: 0 }))[1], 66_000);

      const key = await db.service.createApiKeys({ title: "linked", type: "publishable", created_by: "u" });
      // Three columns per link: 22,000 links copied in one statement were 66,000 parameters.
      await db.knex.raw(
        `insert into ??.api_key_link (api_key_id, resource_type, resource_id)
         select ?, 'sales_channel', 'sc_' || i from generate_series(1, 22000) as i`,
        [db.schema!, key.id],
      );
      const successor = await db.service.roll(key.id, { revoked_by: "u" });
      assert.equal((await db.service.listLinks(successor.id)).length, 22_000);
    });
  },
  ["postgres"],
);

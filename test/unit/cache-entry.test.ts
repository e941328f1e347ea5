import assert from "node:assert/strict";
import { deserializeEntry, serializeEntry } from "../../store/cache/entry";

describe("cache entries", () => {
  it("read a field the writer did not know (an earlier release, mid-upgrade) as a stored null reads", () => {
    const written = JSON.stringify({
      found: true,
      sales_channel_ids: [],
      api_key: { id: "apk_1", type: "secret", title: "t", created_at: "2026-01-01T00:00:00.000Z", scopes: [], rate_limits: [] },
    });
    const entry = deserializeEntry(written);
    assert.ok(entry.found);
    assert.deepEqual(entry.api_key.allowed_ips, [], "an earlier entry has no allow-list: any address");
    assert.deepEqual(entry.api_key.metadata, {});
    assert.equal(entry.api_key.expires_at, null);
    assert.deepEqual(entry.api_key.created_at, new Date("2026-01-01T00:00:00.000Z"));
    assert.deepEqual(deserializeEntry(serializeEntry(entry)), entry, "and round-trips");
  });
});

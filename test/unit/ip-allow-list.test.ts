import assert from "node:assert/strict";
import { allows, canonicalEntry, compileAllowList, within } from "../../lib/ip-allow-list";

describe("IP allow-lists", () => {
  it("writes each entry in one canonical form, and refuses what is not an address or a range", () => {
    const canonical: [string, string][] = [
      ["203.0.113.7", "203.0.113.7"],
      [" 10.0.0.0/8 ", "10.0.0.0/8"],
      ["10.1.2.3/32", "10.1.2.3"],
      ["2001:DB8:0:0:0:0:0:1", "2001:db8::1"],
      ["2001:db8::/32", "2001:db8::/32"],
      ["::ffff:192.0.2.1", "192.0.2.1"],
      ["::ffff:10.0.0.0/104", "10.0.0.0/8"],
      ["::1", "::1"],
    ];
    for (const [entry, expected] of canonical) assert.equal(canonicalEntry(entry), expected, entry);
    for (const bad of ["", "localhost", "127.1", "0x7f.0.0.1", "256.0.0.1", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/8/8", "2001:db8::/129", "fe80::1%eth0", "1.2.3.4/ 8", "::ffff:10.0.0.0/95"]) {
      assert.equal(canonicalEntry(bad), undefined, bad);
    }
  });

  it("accepts clients inside a range of either family, reads mapped addresses as IPv4, and refuses the rest or none", () => {
    const list = compileAllowList(["10.0.0.0/8", "192.0.2.1", "2001:db8::/32"]);
    for (const client of ["10.200.3.4", "192.0.2.1", "::ffff:10.1.1.1", "::ffff:192.0.2.1", "2001:db8:1::5"]) assert.ok(allows(list, client), client);
    for (const client of ["11.0.0.1", "192.0.2.2", "2001:db9::1", "::1", "not an address", "", undefined, "1".repeat(100)]) assert.ok(!allows(list, client), String(client));
  });

  it("tells whether one list accepts no address another refuses", () => {
    assert.ok(within(["10.0.0.0/8"], ["10.1.0.0/16", "10.2.3.4"]));
    assert.ok(!within(["10.0.0.0/8"], ["10.0.0.0/7"]));
    assert.ok(!within(["10.0.0.0/8"], ["10.1.0.0/16", "192.0.2.1"]));
    assert.ok(!within(["10.0.0.0/8"], ["::ffff:0:0/96"]));
  });
});

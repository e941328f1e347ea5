import assert from "node:assert/strict";
import { cookiePlace } from "../../middleware/dashboard/session";

describe("the dashboard's session cookie place", () => {
  it("percent-encodes in its Path whatever could end the attribute or is not plain URL text", () => {
    const cases: [string, string][] = [
      ["/admin/keys", "/admin/keys/"],
      ["", "/"],
      ["/t/acme;Domain=evil.example", "/t/acme%3BDomain=evil.example/"],
      ['/t/a"c<m>e\\{x}`|^', "/t/a%22c%3Cm%3Ee%5C%7Bx%7D%60%7C%5E/"],
      ["/t/a b\tc\r\nd\u0000", "/t/a%20b%09c%0D%0Ad%00/"],
      ["/t/caf\u00e9/\u2603", "/t/caf%C3%A9/%E2%98%83/"],
      // Already encoded, and the characters a URL path carries as they are: kept.
      ["/t/acme%3Bx/-._~!$&'()*+,=:@", "/t/acme%3Bx/-._~!$&'()*+,=:@/"],
    ];
    for (const [mount, path] of cases) assert.deepEqual(cookiePlace(mount, false), { name: "api_key_dashboard", path, secure: false }, JSON.stringify(mount));
  });

  it("over HTTPS is a __Host- cookie on Path=/, named after its mount", () => {
    const acme = cookiePlace("/t/acme/keys", true);
    assert.match(acme.name, /^__Host-api_key_dashboard-[A-Za-z0-9_-]{16}$/);
    assert.deepEqual({ ...acme, name: "" }, { name: "", path: "/", secure: true });
    assert.equal(cookiePlace("/t/acme/keys", true).name, acme.name, "the same mount, the same name");
    assert.notEqual(cookiePlace("/t/globex/keys", true).name, acme.name);
  });
});

import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import type { ApiKeyDTO } from "../../lib/types";
import { MESSAGES } from "../../middleware/credentials";
import { forEachBackend } from "../helpers/backends";
import { FRAMEWORKS, createApp } from "../helpers/create-app";
import { rawRequest } from "../helpers/raw-request";

const b64 = (text: string | Buffer) => Buffer.from(text).toString("base64");

interface Case {
  label: string;
  path: "/admin" | "/store";
  lines: (keys: { sk: string; pk: string }) => string[];
  message?: string;
}

const admin = (label: string, lines: Case["lines"], message?: string): Case => ({ label, path: "/admin", lines, message });
const store = (label: string, lines: Case["lines"], message?: string): Case => ({ label, path: "/store", lines, message });
const auth = (value: string) => [`Authorization: ${value}`];
const pub = (value: string) => [`X-Publishable-Api-Key: ${value}`];

const CASES: Case[] = [
  admin("an empty Authorization header", () => auth(""), MESSAGES.secretMissing),
  admin("the scheme alone", () => auth("Basic"), MESSAGES.secretMalformed),
  admin("the scheme and a space", () => auth("Basic "), MESSAGES.secretMalformed),
  admin("two spaces after the scheme", ({ sk }) => auth(`Basic  ${sk}`), MESSAGES.secretMalformed),
  admin("a tab instead of the space", ({ sk }) => auth(`Basic\t${sk}`), MESSAGES.secretMissing),
  admin("no space at all", ({ sk }) => auth(`Basic${sk}`), MESSAGES.secretMissing),
  admin("a colon after the scheme", ({ sk }) => auth(`Basic:${sk}`), MESSAGES.secretMissing),
  admin("another scheme", () => auth("Digest username=\"x\""), MESSAGES.secretMissing),
  admin("a bare Bearer", () => auth("Bearer"), MESSAGES.secretMissing),
  admin("a secret key as Bearer", ({ sk }) => auth(`Bearer ${sk}`), MESSAGES.bearerHint),
  admin("bad base64", () => auth("Basic !!!"), MESSAGES.secretMalformed),
  admin("only padding", () => auth("Basic ==="), MESSAGES.secretMalformed),
  admin("percent-encoding", ({ sk }) => auth(`Basic %73${sk.slice(1)}`), MESSAGES.secretMalformed),
  admin("JSON", () => auth('Basic {"token":"sk_x"}'), MESSAGES.secretMalformed),
  admin("a key id instead of a key", () => auth("Basic apk_01ARZ3NDEKTSV4RRFFQ69G5FAV"), MESSAGES.secretMalformed),
  admin("a short sk_ in base64", () => auth(`Basic ${b64("sk_x:")}`), MESSAGES.secretInvalid),
  admin("only the prefix, base64", () => auth(`Basic ${b64("sk_")}`), MESSAGES.secretInvalid),
  admin("a password", ({ sk }) => auth(`Basic ${b64(`${sk}:pw`)}`), MESSAGES.secretWithPassword),
  admin("two trailing colons", ({ sk }) => auth(`Basic ${b64(`${sk}::`)}`), MESSAGES.secretWithPassword),
  admin("the key as the password", ({ sk }) => auth(`Basic ${b64(`:${sk}`)}`), MESSAGES.secretMissing),
  admin("a publishable key, base64", ({ pk }) => auth(`Basic ${b64(`${pk}:`)}`), MESSAGES.publishableAsSecret),
  admin("a publishable key, raw", ({ pk }) => auth(`Basic ${pk}`), MESSAGES.publishableAsSecret),
  admin("random bytes, base64", () => auth(`Basic ${b64(Buffer.from([0xff, 0xfe, 0x00, 0x80, 0x41]))}`), MESSAGES.secretMissing),
  admin("invalid UTF-8 after sk_, base64", () => auth(`Basic ${b64(Buffer.concat([Buffer.from("sk_"), Buffer.from([0xc3, 0x28])]))}`), MESSAGES.secretInvalid),
  admin("unicode in the key", () => auth("Basic sk_\u0442\u0435\u0441\u0442\u043a\u043b\u044e\u0447"), MESSAGES.secretInvalid),
  admin("an 8 KB key", () => auth(`Basic sk_${"a".repeat(8192)}`), MESSAGES.secretMalformed),
  admin("8 KB of base64", () => auth(`Basic ${"A".repeat(8192)}`), MESSAGES.secretMalformed),
  admin("an 8 KB scheme", () => auth("X".repeat(8192)), MESSAGES.secretMalformed),
  admin("the key in upper case", ({ sk }) => auth(`Basic ${sk.toUpperCase()}`), MESSAGES.secretMalformed),
  admin("the key in lower case, base64", ({ sk }) => auth(`basic ${b64(`${sk.toLowerCase()}:`)}`), MESSAGES.secretInvalid),
  admin("one character short", ({ sk }) => auth(`Basic ${sk.slice(0, -1)}`), MESSAGES.secretInvalid),
  admin("one character too many", ({ sk }) => auth(`Basic ${sk}a`), MESSAGES.secretInvalid),
  admin("the key twice", ({ sk }) => auth(`Basic ${sk}${sk.slice(3)}`), MESSAGES.secretInvalid),
  admin("two keys, comma-separated", ({ sk }) => auth(`Basic ${sk}, Basic ${sk}`), MESSAGES.secretInvalid),
  admin("two keys, space-separated", ({ sk }) => auth(`Basic ${sk} ${sk}`), MESSAGES.secretInvalid),
  admin("duplicated headers, the first bad", ({ sk }) => [...auth("Basic sk_bad"), ...auth(`Basic ${sk}`)], MESSAGES.secretInvalid),
  admin("the key in x-publishable-api-key", ({ sk }) => pub(sk), MESSAGES.secretMissing),
  store("an empty header", () => pub(""), MESSAGES.publishableMissing),
  store("only the prefix", () => pub("pk_"), MESSAGES.publishableInvalid),
  store("a secret key", ({ sk }) => pub(sk), MESSAGES.publishableInvalid),
  store("trailing junk", ({ pk }) => pub(`${pk}x`), MESSAGES.publishableInvalid),
  store("a space inside", ({ pk }) => pub(`${pk.slice(0, 10)} ${pk.slice(10)}`), MESSAGES.publishableInvalid),
  store("duplicated headers, both valid", ({ pk }) => [...pub(pk), ...pub(pk)], MESSAGES.publishableInvalid),
  store("duplicated headers, the first bad", ({ pk }) => [...pub("pk_bad"), ...pub(pk)], MESSAGES.publishableInvalid),
  store("an 8 KB value", () => pub(`pk_${"a".repeat(8192)}`), MESSAGES.publishableInvalid),
  store("unicode", () => pub("pk_\u043a\u043b\u044e\u0447"), MESSAGES.publishableInvalid),
  store("the key in upper case", ({ pk }) => pub(pk.toUpperCase()), MESSAGES.publishableInvalid),
  store("a key id", () => pub("apk_01ARZ3NDEKTSV4RRFFQ69G5FAV"), MESSAGES.publishableInvalid),
  store("a Basic credential", ({ pk }) => pub(`Basic ${pk}`), MESSAGES.publishableInvalid),
  store("the key in base64", ({ pk }) => pub(b64(pk)), MESSAGES.publishableInvalid),
  store("null", () => pub("null"), MESSAGES.publishableInvalid),
  store("a JSON array", ({ pk }) => pub(JSON.stringify([pk])), MESSAGES.publishableInvalid),
  store("the key in Authorization only", ({ pk }) => auth(`Basic ${pk}`), MESSAGES.publishableMissing),
];

for (const framework of FRAMEWORKS) {
  forEachBackend(
    `malformed credentials on ${framework}`,
    (db) => {
      let server: Server;
      let port = 0;
      let keys: { sk: string; pk: string };

      beforeEach(async () => {
        const [sk, pk] = (await db.service.createApiKeys([
          { title: "s", type: "secret", created_by: "u" },
          { title: "p", type: "publishable", created_by: "u" },
        ])) as [ApiKeyDTO, ApiKeyDTO];
        keys = { sk: sk.token, pk: pk.token };
        server = createApp(framework, { service: db.service });
        await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
        port = (server.address() as AddressInfo).port;
      });
      afterEach(async () => {
        await new Promise((resolve) => server.close(resolve));
      });

      it(`rejects all ${CASES.length} malformed values with a 4xx JSON error, never a 5xx or a pass`, async () => {
        assert.ok(CASES.length >= 40);
        for (const { label, path, lines, message } of CASES) {
          const res = await rawRequest(port, path, lines(keys));
          const expected = path === "/admin" ? { status: 401, type: "unauthorized" } : { status: 400, type: "not_allowed" };
          assert.equal(res.status, expected.status, `${label}: ${res.status} ${res.body}`);
          assert.match(res.headers["content-type"] ?? "", /^application\/json/, label);
          assert.deepEqual(JSON.parse(res.body), { type: expected.type, message }, label);
        }
      });

      it("still accepts the valid keys through the same raw requests", async () => {
        assert.equal((await rawRequest(port, "/admin", auth(`Basic ${b64(`${keys.sk}:`)}`))).status, 200);
        assert.equal((await rawRequest(port, "/store", pub(keys.pk))).status, 200);
      });
    },
    ["postgres"],
  );
}

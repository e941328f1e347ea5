// Header values -> a candidate token, "no key here", or a typed failure message. Pure: no I/O,
// so every malformed form can be tested from a table.

export type Credential =
  | { kind: "missing" }
  | { kind: "token"; token: string }
  | { kind: "invalid"; message: string };

export const MESSAGES = {
  secretMissing: "A secret API key is required: send it as the username of HTTP Basic authentication (Authorization: Basic <secret-api-key>)",
  secretInvalid: "Unauthorized: the secret API key is invalid or revoked",
  secretMalformed: "Malformed Authorization header: expected Basic <secret-api-key>, raw or base64-encoded",
  secretWithPassword: "A secret API key is sent as the Basic username with an empty password",
  publishableAsSecret: "A publishable API key was sent in the Authorization header; send it in x-publishable-api-key instead",
  // The reference's wording, kept so that clients written against it recognise it.
  bearerHint:
    "A secret API key was passed as a Bearer token. Secret API keys must be sent using HTTP Basic authentication instead (Authorization: Basic <secret-api-key>).",
  publishableMissing:
    "Publishable API key required in the request header: x-publishable-api-key. You can manage your keys in settings in the dashboard.",
  publishableInvalid: "A valid publishable key is required to proceed with the request",
} as const;

/** Longer values are rejected unread: every real credential is under 100 characters. */
const MAX_LENGTH = 1024;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

const MISSING: Credential = { kind: "missing" };

/**
 * The text of a base64 value that BASE64 matched. atob() is several times quicker than a Buffer
 * for the one a request carries, but throws unless the length is a multiple of 4, where Buffer
 * is lenient. Decoding as Latin-1 rather than UTF-8 decides the same: ':' and the ASCII of a
 * token are single bytes either way, and anything else is refused either way.
 */
function decodeBase64(value: string): string {
  return value.length % 4 === 0 ? atob(value) : Buffer.from(value, "base64").toString("utf8");
}

function invalid(message: string): Credential {
  return { kind: "invalid", message };
}

/**
 * Reads a secret key from `Authorization: Basic`, as the reference does: the scheme in any
 * case, the key raw (`Basic sk_...`) or base64-encoded as `sk_...:`, one trailing colon allowed.
 * Other schemes (a Bearer JWT, say) are not ours and count as "no key".
 */
export function readSecretCredential(header: string | string[] | undefined): Credential {
  if (header === undefined || header === "") return MISSING;
  if (typeof header !== "string" || header.length > MAX_LENGTH) return invalid(MESSAGES.secretMalformed);
  const space = header.indexOf(" ");
  const scheme = (space < 0 ? header : header.slice(0, space)).toLowerCase();
  const value = space < 0 ? "" : header.slice(space + 1);
  if (scheme === "bearer") return value.startsWith("sk_") ? invalid(MESSAGES.bearerHint) : MISSING;
  if (scheme !== "basic") return MISSING;
  if (value === "") return invalid(MESSAGES.secretMalformed);

  let credentials = value;
  if (!value.startsWith("sk_") && !value.startsWith("pk_")) {
    if (!BASE64.test(value)) return invalid(MESSAGES.secretMalformed);
    credentials = decodeBase64(value);
  }
  const colon = credentials.indexOf(":");
  const username = colon < 0 ? credentials : credentials.slice(0, colon);
  const password = colon < 0 ? "" : credentials.slice(colon + 1);
  if (username.startsWith("pk_")) return invalid(MESSAGES.publishableAsSecret);
  // Basic credentials of some other user are not an API key.
  if (!username.startsWith("sk_")) return MISSING;
  if (password !== "") return invalid(MESSAGES.secretWithPassword);
  return { kind: "token", token: username };
}

/** Reads a publishable key from the `x-publishable-api-key` header value. */
export function readPublishableCredential(header: string | string[] | undefined): Credential {
  if (header === undefined || header === "") return MISSING;
  if (typeof header !== "string" || header.length > MAX_LENGTH) return invalid(MESSAGES.publishableInvalid);
  return { kind: "token", token: header };
}

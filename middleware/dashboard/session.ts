// Dashboard sessions: an opaque random id in an HttpOnly, SameSite=Strict cookie, mapped in
// this process to the id of the key that signed in. The secret key itself is never kept: it
// is verified once at sign-in, and the session is then checked against the key's current
// state on every request, so revoking the key (or its expiry) ends the session at once.
import { createHash, randomBytes } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { LRUCache } from "lru-cache";
import { sameSecret as sameStoredSecret } from "../../lib/tokens";

export const SESSION_COOKIE = "api_key_dashboard";

export interface Session {
  /** The id of the key that opened the session (apk_...). */
  keyId: string;
  /** Sent back in the `x-csrf-token` header of every state-changing request. */
  csrfToken: string;
  /** When the session ends whatever happens, in ms since the epoch. */
  expiresAt: number;
  /** The last request seen, for the idle timeout, in ms since the epoch. */
  lastSeenAt: number;
}

export interface SessionLimits {
  /** The longest a session lasts, in seconds. */
  maxAge: number;
  /** How long a session lasts without a request, in seconds. */
  idleTimeout: number;
  /** How many sessions this process keeps at most; the least recently used go first. */
  maxSessions: number;
  /** How many sessions one key may hold at once; its oldest go first. */
  maxSessionsPerKey: number;
}

/** The map is keyed by a hash of the session id, so the ids themselves are kept nowhere. */
function digest(sessionId: string): string {
  return createHash("sha256").update(sessionId).digest("base64url");
}

/**
 * Whether a header holds the expected secret, in constant time. Compared as bytes: Node reads
 * header bytes as Latin-1, so a value as long as the secret in characters can be longer in UTF-8.
 */
export function sameSecret(given: unknown, expected: string): boolean {
  return typeof given === "string" && sameStoredSecret(given, expected);
}

/** Where a dashboard's session cookie lives: its name, its Path, and whether it is Secure. */
export interface CookiePlace {
  readonly name: string;
  readonly path: string;
  readonly secure: boolean;
}

/**
 * What may stand as it is in a cookie's Path: the characters a URL path carries unescaped,
 * less `;`. RFC 6265 allows any character but controls and `;` there; anything else, taken
 * from a request path, could end the attribute and add others (`Domain=`), so it is
 * percent-encoded. A browser then sends the cookie back only to the path as encoded, so a
 * mount path holding such a character keeps no session: choose mount paths without them.
 */
const NOT_IN_COOKIE_PATH = /[^A-Za-z0-9\-._~!$&'()*+,=:@/%]/g;

function percentEncoded(char: string): string {
  return [...Buffer.from(char)].map((byte) => `%${byte.toString(16).toUpperCase().padStart(2, "0")}`).join("");
}

/**
 * The cookie of the dashboard mounted at `mountPath` (`req.baseUrl`, as the client sent it).
 * Over HTTP it is limited to the mount by its Path. Over HTTPS it takes the `__Host-` prefix, so
 * that no other host (a sibling subdomain) and no plain-HTTP page can set or replace it; the
 * browser then requires `Path=/`, and sends it to every path of the host. To keep one session
 * per mount all the same (two dashboards on one host, or one mount per tenant such as
 * `/t/:tenant/keys`, whose tenants share one router and its sessions), the name carries a hash
 * of the mount path, and each mount reads back only the cookie of its own name. Domain is never
 * sent: the cookie stays on the host that set it.
 */
export function cookiePlace(mountPath: string, secure: boolean): CookiePlace {
  const path = `${mountPath}/`.replace(NOT_IN_COOKIE_PATH, percentEncoded);
  if (!secure) return { name: SESSION_COOKIE, path, secure };
  return { name: `__Host-${SESSION_COOKIE}-${digest(path).slice(0, 16)}`, path: "/", secure };
}

function setCookie(place: CookiePlace, value: string, maxAge: number): string {
  return [`${place.name}=${value}`, `Path=${place.path}`, `Max-Age=${maxAge}`, "HttpOnly", "SameSite=Strict", ...(place.secure ? ["Secure"] : [])].join("; ");
}

/** The value of one cookie in a Cookie header, or undefined. */
export function readCookie(req: IncomingMessage, name: string): string | undefined {
  const header = req.headers.cookie;
  if (typeof header !== "string") return undefined;
  for (const part of header.split(";")) {
    const index = part.indexOf("=");
    if (index > 0 && part.slice(0, index).trim() === name) return part.slice(index + 1).trim();
  }
  return undefined;
}

export class SessionStore {
  readonly #limits: SessionLimits;
  readonly #sessions: LRUCache<string, Session>;
  /** The digests of each key's sessions, oldest first; kept in step with the map by `dispose`. */
  readonly #byKey = new Map<string, Set<string>>();

  constructor(limits: SessionLimits) {
    this.#limits = limits;
    // No TTL of its own: sessions are timed by the service's clock, checked in find().
    this.#sessions = new LRUCache<string, Session>({ max: limits.maxSessions, dispose: (session, key) => this.#forget(session.keyId, key) });
  }

  #forget(keyId: string, key: string): void {
    const own = this.#byKey.get(keyId);
    own?.delete(key);
    if (own?.size === 0) this.#byKey.delete(keyId);
  }

  /**
   * Opens a session for a key and returns its id, for the cookie, and the session. A key at its
   * `maxSessionsPerKey` loses its own oldest session: signing in again and again with one key
   * ends that key's sessions, never other people's.
   */
  open(keyId: string, now: number): { id: string; session: Session } {
    const own = [...(this.#byKey.get(keyId) ?? [])];
    for (const key of own.slice(0, Math.max(0, own.length - this.#limits.maxSessionsPerKey + 1))) this.#sessions.delete(key);
    const id = randomBytes(32).toString("base64url");
    const session: Session = {
      keyId,
      csrfToken: randomBytes(32).toString("base64url"),
      expiresAt: now + this.#limits.maxAge * 1000,
      lastSeenAt: now,
    };
    const key = digest(id);
    this.#sessions.set(key, session);
    this.#byKey.set(keyId, (this.#byKey.get(keyId) ?? new Set()).add(key));
    return { id, session };
  }

  /** The live session for a cookie value, touched for the idle timeout; undefined when there is none. */
  find(id: string | undefined, now: number): Session | undefined {
    if (id === undefined || !/^[A-Za-z0-9_-]{43}$/.test(id)) return undefined;
    const key = digest(id);
    const session = this.#sessions.get(key);
    if (!session) return undefined;
    if (now >= session.expiresAt || now - session.lastSeenAt >= this.#limits.idleTimeout * 1000) {
      this.#sessions.delete(key);
      return undefined;
    }
    session.lastSeenAt = now;
    return session;
  }

  close(id: string | undefined): void {
    if (id !== undefined) this.#sessions.delete(digest(id));
  }

  /** Ends every session a key opened (when it may no longer use the dashboard). */
  closeFor(keyId: string): void {
    for (const key of [...(this.#byKey.get(keyId) ?? [])]) this.#sessions.delete(key);
  }

  /** The Set-Cookie value that carries a session id. */
  cookie(id: string, place: CookiePlace): string {
    return setCookie(place, id, this.#limits.maxAge);
  }
}

/** The Set-Cookie value that removes the session cookie. */
export function clearedCookie(place: CookiePlace): string {
  return setCookie(place, "", 0);
}

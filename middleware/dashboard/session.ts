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

  constructor(limits: SessionLimits) {
    this.#limits = limits;
    // No TTL of its own: sessions are timed by the service's clock, checked in find().
    this.#sessions = new LRUCache<string, Session>({ max: limits.maxSessions });
  }

  /** Opens a session for a key and returns its id, for the cookie, and the session. */
  open(keyId: string, now: number): { id: string; session: Session } {
    const id = randomBytes(32).toString("base64url");
    const session: Session = {
      keyId,
      csrfToken: randomBytes(32).toString("base64url"),
      expiresAt: now + this.#limits.maxAge * 1000,
      lastSeenAt: now,
    };
    this.#sessions.set(digest(id), session);
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

  /** Ends every session a key opened (when it is revoked, deleted or expired). */
  closeFor(keyId: string): void {
    for (const [key, session] of this.#sessions.entries()) if (session.keyId === keyId) this.#sessions.delete(key);
  }

  /** The Set-Cookie value that carries a session id, limited to the dashboard's path. */
  cookie(id: string, path: string, secure: boolean): string {
    return [`${SESSION_COOKIE}=${id}`, `Path=${path}`, `Max-Age=${this.#limits.maxAge}`, "HttpOnly", "SameSite=Strict", ...(secure ? ["Secure"] : [])].join("; ");
  }
}

/** The Set-Cookie value that removes the session cookie. */
export function clearedCookie(path: string, secure: boolean): string {
  return [`${SESSION_COOKIE}=`, `Path=${path}`, "Max-Age=0", "HttpOnly", "SameSite=Strict", ...(secure ? ["Secure"] : [])].join("; ");
}

// Whether a key works at an instant, decided in one place for every surface: the verifier, the
// management service, the dashboard and the CLI.
import type { ApiKeyDTO } from "./types";

type Ends = Pick<ApiKeyDTO, "revoked_at" | "expires_at">;

/** A key authenticates while `revoked_at` is unset or still in the future. */
export function isActive(key: Pick<ApiKeyDTO, "revoked_at">, now: Date): boolean {
  return key.revoked_at === null || key.revoked_at.getTime() > now.getTime();
}

/** A key has expired once `expires_at` is reached: expiry works exactly as a scheduled revocation. */
export function isExpired(key: Pick<ApiKeyDTO, "expires_at">, now: Date): boolean {
  return key.expires_at !== null && key.expires_at.getTime() <= now.getTime();
}

/**
 * Why a key does not authenticate at `now` by its own dates, or undefined when it does: revoked
 * or expired, whichever took effect first (revoked when both at once).
 */
export function endedBy(key: Ends, now: Date): "revoked" | "expired" | undefined {
  const revoked = !isActive(key, now);
  const expired = isExpired(key, now);
  if (revoked && expired) return key.expires_at!.getTime() < key.revoked_at!.getTime() ? "expired" : "revoked";
  return revoked ? "revoked" : expired ? "expired" : undefined;
}

/** Whether a key is in force at `now`: not soft-deleted, not revoked, not expired. */
export function inForce(key: Ends & Pick<ApiKeyDTO, "deleted_at">, now: Date): boolean {
  return key.deleted_at === null && endedBy(key, now) === undefined;
}

export type KeyState =
  | { state: "deleted" | "revoked" | "expired" }
  /** In force; `ends` is when it is set to stop, the nearer of its revocation and its expiry. */
  | { state: "active"; ends?: { by: "revoked" | "expired"; at: Date } };

/** A key's state at `now`, for display: why it no longer works, or when it is set to stop. */
export function keyState(key: Ends & Pick<ApiKeyDTO, "deleted_at">, now: Date): KeyState {
  if (key.deleted_at !== null) return { state: "deleted" };
  const ended = endedBy(key, now);
  if (ended) return { state: ended };
  const { revoked_at: revokedAt, expires_at: expiresAt } = key;
  if (revokedAt && (!expiresAt || revokedAt <= expiresAt)) return { state: "active", ends: { by: "revoked", at: revokedAt } };
  if (expiresAt) return { state: "active", ends: { by: "expired", at: expiresAt } };
  return { state: "active" };
}

// The deployment secret: 32 random bytes kept in the database (table `api_key_secret`, row
// "deployment"), made by the first instance that needs it, so that every instance on one
// database shares it with no configuration. Unless a `pepper` is set, it is the root of every
// server-side key the package derives, one key per purpose (the key that signs Redis cache
// entries, the key that tags tokens). It stays in the database and in process memory: never logged, never in Redis.
import { createHmac, randomBytes } from "node:crypto";
import type { ApiKeyStore } from "./store";

/** The row of `api_key_secret` that holds the deployment secret. */
export const DEPLOYMENT_SECRET_NAME = "deployment";

const SECRET_BYTES = 32;

/** What each derived key is for. A new use takes a new name, so no two uses ever share a key. */
export const KEY_PURPOSES = {
  /** Signs the entries the Redis tier writes, so that entries written by anything else are refused. */
  cacheEntry: "cache-entry v1",
  /** Tags new tokens, so that tokens this deployment never issued are refused with no I/O (lib/tokens.ts). */
  tokenTag: "token-tag v1",
} as const;

/** A 32-byte key for one purpose: HMAC-SHA-256(root, purpose). */
export function deriveKey(root: string | Buffer, purpose: string): Buffer {
  return createHmac("sha256", root).update(purpose).digest();
}

/** The root of derived keys: the pepper when one is set, else the deployment secret (read, or made, once per call). */
export async function rootSecret(pepper: string | Buffer | undefined, store: Pick<ApiKeyStore, "loadSecret">): Promise<string | Buffer> {
  return pepper ?? readDeploymentSecret(store);
}

/** Reads the deployment secret, making it on first use (race-free: several instances may boot at once). */
export async function readDeploymentSecret(store: Pick<ApiKeyStore, "loadSecret">): Promise<Buffer> {
  if (!store.loadSecret) {
    throw new Error("express-api-keys: the store keeps no deployment secret (it has no `loadSecret`); set `pepper` to sign Redis entries");
  }
  let candidate: string | undefined;
  let value: string;
  try {
    value = await store.loadSecret(DEPLOYMENT_SECRET_NAME, () => (candidate = randomBytes(SECRET_BYTES).toString("base64url")));
  } catch (error) {
    throw withoutCandidate(error, candidate);
  }
  const secret = Buffer.from(value, "base64url");
  if (secret.length < SECRET_BYTES || secret.toString("base64url") !== value) {
    throw new Error(
      "express-api-keys: the deployment secret in `api_key_secret` is not 32 bytes of base64url; " +
        "delete that row and restart every instance to have a new one made",
    );
  }
  return secret;
}

/**
 * Knex writes a failed query's bindings into its error message. A failed insert may still have
 * committed (the connection can drop after the commit), so its candidate is scrubbed before
 * the error can reach a logger.
 */
function withoutCandidate(error: unknown, candidate: string | undefined): unknown {
  if (candidate === undefined || !(error instanceof Error)) return error;
  const scrub = (text: string) => text.split(candidate).join("[redacted]");
  const clean = new Error(scrub(error.message));
  clean.stack = scrub(error.stack ?? "");
  const code = (error as { code?: unknown }).code;
  if (code !== undefined) Object.assign(clean, { code });
  return clean;
}

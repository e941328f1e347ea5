// Tokens for tests that need one to get past the checks made with no I/O (format, checksum, tag)
// and reach the caches and the store: well formed, tagged as the deployment tags them, yet
// naming no key.
import type { ApiKeyService } from "../../lib/service";
import type { ApiKeyStore } from "../../lib/store";
import { loadTokenRules } from "../../lib/token-gate";
import { type ApiKeyType, generateToken } from "../../lib/tokens";

/** `count` tokens a service on `store` (with `pepper`) could have issued, for no key. */
export async function unissuedTokens(store: ApiKeyStore, type: ApiKeyType, count: number, pepper?: string | Buffer): Promise<string[]> {
  const { tagKey } = await loadTokenRules(store, pepper, new Date());
  if (!tagKey) throw new Error("this store tags no tokens");
  return Array.from({ length: count }, () => generateToken(type, tagKey));
}

/**
 * Resolves once `service` has read its token rules, so that query counts that follow see only
 * the lookups they are about. Creating no keys waits for the rules and writes nothing.
 */
export async function rulesRead(service: ApiKeyService): Promise<void> {
  await service.createApiKeys([]);
}

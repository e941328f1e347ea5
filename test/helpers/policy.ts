// Tests of the key policy over HTTP that need the service's own verifyApiKey, softDeleteApiKeys
// and the policy columns skip themselves until the service has them.
import type { ApiKeyService } from "../../lib/service";

export function serviceHasPolicy(service: ApiKeyService): boolean {
  const methods = service as unknown as Record<string, unknown>;
  return ["verifyApiKey", "softDeleteApiKeys", "restoreApiKeys"].every((name) => typeof methods[name] === "function");
}

/** For a `before`/`it` body: skips when the service does not have the key policy yet. */
export function requirePolicy(context: Mocha.Context, service: ApiKeyService): void {
  if (!serviceHasPolicy(service)) context.skip();
}

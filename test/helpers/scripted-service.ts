// A real service whose verifyApiKey answers what a test scripts, so the middleware's mapping of
// every verification code (403, 429 and their headers) is tested without depending on how the
// service reaches that code. Everything else goes to the real service and its real store.
import type { ApiKeyService } from "../../lib/service";
import type { VerifyOptions, VerifyResult } from "../../middleware/verify-types";

export type ScriptedVerify = (token: string, options: VerifyOptions) => Promise<VerifyResult>;

export function scriptedService(service: ApiKeyService, verify: ScriptedVerify): ApiKeyService {
  return new Proxy(service, {
    get(target, name) {
      if (name === "verifyApiKey") return verify;
      // The synchronous form answers from the real cache; the script must answer every verification.
      if (name === "verifier") return undefined;
      const value: unknown = Reflect.get(target, name, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

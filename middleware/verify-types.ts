// The verification shapes the HTTP layer and the CLI read, under the names they use.
import type { ApiKeyDTO } from "../lib/types";

export type { QuotaRefill as RefillRule, RateLimitRule, VerifyCode, VerifyOptions, VerifyResult } from "../lib/types";
export type { RateLimitState } from "../lib/types";

/** A key as the middleware sees it: every DTO carries the policy fields. */
export type PolicyApiKey = ApiKeyDTO;

/** The policy fields of a key. */
export type PolicyFields = Pick<ApiKeyDTO, "expires_at" | "scopes" | "owner_id" | "metadata" | "rate_limits" | "remaining" | "refill">;

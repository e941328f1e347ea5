// The making of a key: its token, the record the store keeps (a secret token only as its
// hash), its policy copied from the input, and when a revocation takes effect. Pure: the caller
// passes the clock's reading and the tag key.
import { POLICY_FIELDS, policyDefaults } from "./columns";
import { ApiKeyError } from "./errors";
import { generateApiKeyId } from "./ids";
import type { ApiKeyRecord } from "./store";
import { CURRENT_TOKEN_FORMAT, generateToken, redactToken, storedTokenValue } from "./tokens";
import type { CreateApiKeyDTO } from "./types";

/**
 * A new key from a validated create input (or, for roll, the key it replaces): its token
 * tagged under `tagKey` with the deployment's `segment`, or in format 1 when the deployment has
 * no tag key.
 */
export function newKey(
  input: CreateApiKeyDTO | ApiKeyRecord,
  { now, tagKey, pepper, segment }: { now: Date; tagKey: Buffer | undefined; pepper: string | Buffer | undefined; segment?: string },
): { record: ApiKeyRecord; token: string } {
  const token = generateToken(input.type, tagKey, segment);
  const policy = policyDefaults();
  for (const field of POLICY_FIELDS) {
    const value = input[field as keyof typeof input];
    if (value !== undefined) Object.assign(policy, { [field]: structuredClone(value) });
  }
  const record: ApiKeyRecord = {
    id: generateApiKeyId(now.getTime()),
    token: storedTokenValue(token, input.type, pepper),
    redacted: redactToken(token),
    title: input.title,
    type: input.type,
    last_used_at: null,
    created_by: input.created_by,
    created_at: now,
    updated_at: now,
    deleted_at: null,
    revoked_by: null,
    revoked_at: null,
    ...policy,
    token_format: tagKey === undefined ? 1 : CURRENT_TOKEN_FORMAT,
  };
  return { record, token };
}

/** The instant a revocation takes effect: now, or `revoke_in` whole seconds from now. */
export function revocationTime(now: Date, revokeIn: number | undefined): Date {
  const seconds = revokeIn !== undefined && revokeIn > 0 ? Math.trunc(revokeIn) : 0;
  const at = new Date(now.getTime() + seconds * 1000);
  if (Number.isNaN(at.getTime())) throw new ApiKeyError("invalid_data", "Field 'revoke_in' is too large");
  return at;
}

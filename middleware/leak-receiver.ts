// apiKeyLeakReceiver(): the endpoint GitHub's secret scanning partner program posts leaked tokens
// to. The body is verified against GitHub's ECDSA P-256 signature before anything in it is read:
// a receiver that revokes keys on an unverified request would let anyone revoke any key they can
// guess, and one that skips the check on some path is the classic bug here. A secret token of this
// deployment is revoked at once (or only reported), with an audit event that names the report;
// a publishable token is public by design and never revoked. No reported token is ever logged.
import { type KeyObject, createPublicKey, verify } from "node:crypto";
import type { NextFunction, Request, Response, Router } from "express";
import { serviceOrDefault } from "../lib/default-service";
import { ApiKeyError } from "../lib/errors";
import type { ApiKeyService } from "../lib/service";
import { isActive } from "../lib/key-status";
import { type FactorySpec, checkFactoryOptions, rules } from "./http/options";
import { clientHttpErrors } from "./http/client-errors";
import { jsonErrorHandler, writeJson } from "./http/respond";

/** A key of GitHub's meta endpoint (`public_keys`), as `publicKeys` returns them. */
export interface LeakReportKey {
  key_identifier: string;
  /** PEM. */
  key: string;
  is_current: boolean;
}

export interface LeakReceiverOptions {
  /** The service whose keys are reported. Default: the one the latest `initialize()` returned. */
  service?: ApiKeyService;
  /** `revoke` (default): revoke a reported secret key at once; `report`: only answer what it is. */
  action?: "revoke" | "report";
  /** GitHub's signing keys. Default: `githubPublicKeys()`, fetched from GitHub and cached. */
  publicKeys?: () => Promise<LeakReportKey[]>;
}

/** GitHub's signing keys for secret scanning, fetched and cached (see `githubPublicKeys`). */
export const GITHUB_KEYS_URL = "https://api.github.com/meta/public_keys/secret_scanning";
/** Who revokes a reported key, in `revoked_by` and the audit log. */
export const LEAK_ACTOR = "github-secret-scanning";
const BODY_LIMIT = "256kb";
/** GitHub sends small batches; more than this in one post is refused. */
export const MAX_MATCHES = 1000;
const KEYS_FRESH_MS = 60 * 60 * 1000;
/** An unknown key identifier makes a fetch at most this often, so that forged ids cannot drive requests to GitHub. */
const REFETCH_MIN_MS = 60 * 1000;

/**
 * GitHub's signing keys from `url`, cached for an hour. An identifier not in the cache fetches
 * again (at most once a minute); when GitHub cannot be reached (its meta endpoint is rate
 * limited), the last keys fetched go on serving.
 */
export function githubPublicKeys(url = GITHUB_KEYS_URL, clock: () => number = Date.now): (wanted?: string) => Promise<LeakReportKey[]> {
  let cached: { keys: LeakReportKey[]; at: number } | undefined;
  let lastTry = 0;
  return async (wanted?: string) => {
    const now = clock();
    const stale = !cached || now - cached.at > KEYS_FRESH_MS || (wanted !== undefined && !cached.keys.some((key) => key.key_identifier === wanted));
    if (!stale || now - lastTry < REFETCH_MIN_MS) {
      if (cached) return cached.keys;
    }
    lastTry = now;
    try {
      const response = await fetch(url, { headers: { accept: "application/json" }, signal: AbortSignal.timeout(5000) });
      if (!response.ok) throw new Error(`GitHub answered ${response.status}`);
      const { public_keys } = (await response.json()) as { public_keys?: unknown };
      if (!Array.isArray(public_keys)) throw new Error("GitHub's answer has no public_keys");
      cached = { keys: public_keys as LeakReportKey[], at: now };
    } catch (error) {
      if (!cached) throw new ApiKeyError("unavailable", `GitHub's signing keys cannot be fetched: ${(error as Error).message}`);
    }
    return cached.keys;
  };
}

const OPTIONS: FactorySpec<LeakReceiverOptions> = {
  name: "apiKeyLeakReceiver",
  usage: 'apiKeyLeakReceiver() returns the router: write app.use("/github/secret-scanning", apiKeyLeakReceiver()), before any body parser.',
  rules: {
    service: rules.service,
    action: (value) => (value === "revoke" || value === "report" ? undefined : "`action` must be `revoke` or `report`."),
    publicKeys: rules.function("publicKeys"),
  },
};

const unauthorized = (why: string) => new ApiKeyError("unauthorized", `The report's signature does not hold: ${why}`);

/** The signing key named by the header, as a public key object; a 401 when there is none such. */
function signingKey(keys: readonly LeakReportKey[], identifier: string): KeyObject {
  const found = keys.find((key) => key.key_identifier === identifier);
  if (!found) throw unauthorized("unknown Github-Public-Key-Identifier");
  try {
    return createPublicKey(found.key);
  } catch {
    throw unauthorized("the signing key cannot be read");
  }
}

interface Match {
  token: string;
  type: string;
  url: string;
  source: string;
}

/** The report, once its signature held: an array of matches, each with a string token. */
function matchesOf(body: Buffer): Match[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString("utf8"));
  } catch {
    throw new ApiKeyError("invalid_data", "Invalid request: the body is not valid JSON");
  }
  if (!Array.isArray(parsed)) throw new ApiKeyError("invalid_data", "Invalid request: expected a JSON array of matches");
  if (parsed.length > MAX_MATCHES) throw new ApiKeyError("invalid_data", `Invalid request: at most ${MAX_MATCHES} matches in one report`);
  return parsed.map((item: unknown, i) => {
    const match = item as Partial<Record<keyof Match, unknown>> | null;
    if (typeof match !== "object" || match === null || typeof match.token !== "string" || match.token.length > 1000) {
      throw new ApiKeyError("invalid_data", `Invalid request: match ${i} has no token`);
    }
    const text = (value: unknown) => (typeof value === "string" ? value.slice(0, 2000) : "");
    return { token: match.token, type: text(match.type), url: text(match.url), source: text(match.source) };
  });
}

export function apiKeyLeakReceiver(givenOptions?: LeakReceiverOptions): Router {
  const options = checkFactoryOptions(OPTIONS, givenOptions);
  const express = require("express") as typeof import("express");
  const action = options.action ?? "revoke";
  const publicKeys: (wanted?: string) => Promise<LeakReportKey[]> = options.publicKeys ?? githubPublicKeys();
  const keys = () => serviceOrDefault(options.service);
  const router = express.Router();
  const rawBody = express.raw({ type: () => true, limit: BODY_LIMIT });

  /** A body parsed before us cannot be checked against the signature, which covers its exact bytes. */
  function unparsed(req: Request, _res: Response, next: NextFunction): void {
    const parsedBefore = (req as { _body?: unknown })._body === true || (req.body !== undefined && !Buffer.isBuffer(req.body));
    if (parsedBefore) {
      next(new ApiKeyError("invalid_data", "The body was parsed before the leak receiver: mount apiKeyLeakReceiver() before any body parser, so that its signature can be checked"));
      return;
    }
    next();
  }

  /** What one reported token is, and, for a live secret key of ours with `revoke`, its revocation. */
  async function settle(match: Match): Promise<{ token_raw: string; token_type: string; label: "true_positive" | "false_positive" }> {
    const answer = (label: "true_positive" | "false_positive") => ({ token_raw: match.token, token_type: match.type, label });
    if (!match.token.startsWith("sk_")) return answer("false_positive");
    const [key] = await keys().listApiKeys({ token: match.token, type: "secret" }, { withDeleted: true, take: 1 });
    if (!key) return answer("false_positive");
    // A soft-deleted key authenticates nowhere and cannot be changed until restored: it is reported only.
    if (action === "revoke" && key.deleted_at === null && isActive(key, keys().now())) {
      const ctx = { actor: LEAK_ACTOR, auditDetails: { report_url: match.url, report_source: match.source } };
      await keys().revoke(key.id, { revoked_by: LEAK_ACTOR }, ctx).catch((error: unknown) => {
        // Revoked meanwhile (by a report in flight, say): what was asked for is done.
        if (!(error instanceof ApiKeyError && error.type === "invalid_data")) throw error;
      });
    }
    return answer("true_positive");
  }

  router.post("/", unparsed, rawBody, (req, res, next) => {
    (async () => {
      const identifier = req.headers["github-public-key-identifier"];
      const signature = req.headers["github-public-key-signature"];
      if (typeof identifier !== "string" || identifier === "") throw unauthorized("no Github-Public-Key-Identifier header");
      if (typeof signature !== "string" || signature === "") throw unauthorized("no Github-Public-Key-Signature header");
      const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      const key = signingKey(await publicKeys(identifier), identifier);
      let holds = false;
      try {
        holds = verify("sha256", body, key, Buffer.from(signature, "base64"));
      } catch {
        holds = false;
      }
      if (!holds) throw unauthorized("the signature does not match the body");
      const answers = [];
      for (const match of matchesOf(body)) answers.push(await settle(match));
      writeJson(res, 200, answers, { noStore: true });
    })().catch(next);
  });

  router.use(jsonErrorHandler({ service: options.service, during: "in the leak receiver", clientError: clientHttpErrors(BODY_LIMIT) }));
  return router;
}

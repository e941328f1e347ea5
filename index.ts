// express-api-keys: the public surface. Everything else is internal and free to change.

/** Creates the service: the entry point of the package. */
export { initialize } from "./setup/initialize";
export { getDefaultService } from "./lib/default-service";
/** The service's type, for apps that pass it around. */
export type { ApiKeyService, ImportedKeysStatus, PublishableKeyMatch } from "./lib/service";
export type { ImportedKeyState, MedusaImportOptions, MedusaImportReport, MedusaKeyRow, MedusaKeySource, MedusaSalesChannelLink } from "./lib/medusa-import";
/** The middleware that protects routes, and what it attaches to requests. */
export { apiKeyAuth, type ApiKeyAuthOptions, type ErrorHandler, type NextFunction } from "./middleware/api-key-auth";
/** A per-route scope check after apiKeyAuth, and the matching rule it applies. */
export { requireScopes } from "./middleware/require-scopes";
export { checkedGrants as grants } from "./lib/scopes";
export type {
  ApiKeyRequestProperties,
  AuthContext,
  AuthenticatedRequest,
  PublishableKeyContext,
  SecretKeyContext,
} from "./middleware/request-context";
/** The credential readers the middleware uses, for handlers outside Express and Connect. */
export { readPublishableCredential, readSecretCredential, type Credential } from "./middleware/credentials";
/** The admin REST routes, as an Express router. */
export { apiKeyAdminRouter, type AdminRouterOptions } from "./middleware/admin-router";
/** A web page for managing keys, as an Express router: app.use("/admin/keys", apiKeyDashboard()). */
export { apiKeyDashboard, type DashboardOptions } from "./middleware/dashboard";
/** The endpoint GitHub's secret scanning posts leaked tokens to: app.use("/github/secret-scanning", apiKeyLeakReceiver()). */
export { apiKeyLeakReceiver, githubPublicKeys, type LeakReceiverOptions, type LeakReportKey } from "./middleware/leak-receiver";
/** Events the service emits to in-process listeners. */
export type { ApiKeyChange, ApiKeyEventName, ApiKeyEvents, ApiKeyEventListener } from "./lib/events";
/** The stored audit log: what `listAuditEvents` answers and takes. */
export type { AuditAction, AuditChange, AuditEvent, AuditEventConfig, AuditEventFilters, AuditFilter, AuditQuery } from "./lib/audit-log";
/** Options for initialize(). */
export type { ApiKeysOptions, CacheOptions } from "./setup/options";
/** The one error type, with its machine-readable `type` and HTTP `status`. */
export { ApiKeyError, isApiKeyError, type ApiKeyErrorType } from "./lib/errors";
/** The reference's DTOs and filter language. */
export type {
  ApiKeyDTO,
  ApiKeyField,
  ApiKeyPolicyInput,
  ApiKeyType,
  Context,
  CreateApiKeyDTO,
  FilterableApiKeyProps,
  FilterableField,
  FindConfig,
  KeyMetadata,
  OperatorMap,
  QuotaRefill,
  RateLimitRule,
  RevokeApiKeyDTO,
  SoftDeleteResult,
  UpdateApiKeyDTO,
  UpdateLinksDTO,
  VerifyCode,
  VerifyOptions,
  VerifyResult,
} from "./lib/types";
/** Whether a key is in force at an instant (not soft-deleted, revoked or expired), as verification judges it. */
export { inForce } from "./lib/key-status";
/** How a key's scopes grant required ones (`orders:*` grants `orders:read`). */
export { checkedGrants as scopeGrants, checkedMissingScopes as missingScopes } from "./lib/scopes";
/** The storage interface, and the store this package ships for Knex (PostgreSQL, PGlite, MySQL/MariaDB, SQLite). */
export type { ApiKeyPatch, ApiKeyRecord, ApiKeyStore, PublishableRecord, WriteProbe } from "./lib/store";
/** The validated filter a store receives: a condition tree, and the normalised find config. */
export type { Condition, NormalizedFindConfig } from "./lib/filters";
export { KnexApiKeyStore } from "./store/knex-store";
/** Where the package reports background failures. */
export type { Logger } from "./lib/logger";
/** Our migrations, for apps that run their own Knex migration pipeline. */
export { apiKeyMigrations, runMigrations, MIGRATIONS_TABLE } from "./store/migrations";

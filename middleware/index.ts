// express-api-keys/middleware: the HTTP layer alone. It loads no database driver, PGlite or
// Redis client, so an app (or an edge of one) that only checks keys against a service made
// elsewhere pays for none of them; `initialize()` comes from the package root.

/** The middleware that protects routes, and what it attaches to requests. */
export { apiKeyAuth, type ApiKeyAuthOptions, type ErrorHandler, type NextFunction } from "./api-key-auth";
/** A per-route scope check after apiKeyAuth. */
export { requireScopes } from "./require-scopes";
export type { ApiKeyRequestProperties, AuthContext, AuthenticatedRequest, PublishableKeyContext, SecretKeyContext } from "./request-context";
/** The credential readers the middleware uses, for handlers outside Express and Connect. */
export { readPublishableCredential, readSecretCredential, type Credential } from "./credentials";
/** The admin REST routes, as an Express router. */
export { apiKeyAdminRouter, type AdminRouterOptions } from "./admin-router";
/** A web page for managing keys, as an Express router. */
export { apiKeyDashboard, type DashboardOptions } from "./dashboard";
/** The endpoint GitHub's secret scanning posts leaked tokens to, as an Express router. */
export { apiKeyLeakReceiver, githubPublicKeys, type LeakReceiverOptions, type LeakReportKey } from "./leak-receiver";

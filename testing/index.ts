// express-api-keys/testing: helpers for people who write stores.

/** The store conformance suite: the service's contract checked through any ApiKeyStore. */
export { apiKeyStoreConformance, type ConformanceCheck, type ConformanceOptions } from "./conformance";

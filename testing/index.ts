// express-api-keys/testing: helpers for people who write stores.

/** The store conformance suite: the service's contract checked through any ApiKeyStore. */
export { apiKeyStoreConformance, type AppTransaction, type ConformanceCheck, type ConformanceOptions } from "./conformance";
/** The reference store: every member of ApiKeyStore in process memory, with no SQL; for tests, demos and as a model. */
export { MemoryApiKeyStore } from "./memory-store";

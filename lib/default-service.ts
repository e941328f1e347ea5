// The service that middleware uses when given none: the one the latest `initialize()` made.
// Kept here, apart from `initialize()`, so that the middleware can find it without loading the
// code that builds stores and caches (and with it knex, PGlite and ioredis).
import { ApiKeyError } from "./errors";
import type { ApiKeyService } from "./service";

let defaultService: ApiKeyService | undefined;

/** The service the latest `initialize()` returned, while it is open. */
export function getDefaultService(): ApiKeyService | undefined {
  return defaultService;
}

/** Makes `service` the default (`initialize()` calls this). */
export function setDefaultService(service: ApiKeyService): void {
  defaultService = service;
}

/** Forgets `service` as the default, if it still is (on its `close()`). */
export function forgetDefaultService(service: ApiKeyService): void {
  if (defaultService === service) defaultService = undefined;
}

/** The given service, else the default one; `unavailable` when there is neither. */
export function serviceOrDefault(service: ApiKeyService | undefined): ApiKeyService {
  const found = service ?? defaultService;
  if (!found) throw new ApiKeyError("unavailable", "No API key service: await initialize() before serving requests, or pass `service`");
  return found;
}

// Events the service emits after a change is committed, for audit logs and the like. One event
// per affected key; payloads carry ids and actors, never a token or a hash.
import { EventEmitter } from "node:events";
import type { Logger } from "./logger";
import type { ApiKeyType, UpdateApiKeyDTO } from "./types";

/** What an update changed: the fields it was given, or the key's links. */
export type ApiKeyChange = keyof UpdateApiKeyDTO | "links";

export interface ApiKeyEvents {
  "api_key.created": { id: string; type: ApiKeyType; title: string; created_by: string };
  "api_key.updated": { id: string; changed: ApiKeyChange[] };
  "api_key.revoked": { id: string; revoked_by: string; revoked_at: Date };
  "api_key.rolled": { id: string; successor_id: string; revoked_by: string; revoked_at: Date };
  "api_key.deleted": { id: string };
  "api_key.soft_deleted": { id: string; deleted_at: Date };
  "api_key.restored": { id: string };
  /** A usage quota reached 0: the key is refused until a refill (or an update) gives it more. */
  "api_key.usage_exceeded": { id: string };
  /** A usage quota was set back to its refill amount, at the first use in a new day or month. */
  "api_key.refilled": { id: string; remaining: number };
}

export type ApiKeyEventName = keyof ApiKeyEvents;
export type ApiKeyEventListener<E extends ApiKeyEventName> = (payload: ApiKeyEvents[E]) => void | Promise<void>;

export type EventBatch = { [E in ApiKeyEventName]: { name: E; payload: ApiKeyEvents[E] } }[ApiKeyEventName];

export class ApiKeyEventBus {
  readonly #emitter = new EventEmitter();
  readonly #logger: Logger;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  on<E extends ApiKeyEventName>(name: E, listener: ApiKeyEventListener<E>): void {
    // The emitter only keeps listeners: emit() calls them itself and catches what they return.
    this.#emitter.on(name, listener as (payload: unknown) => void);
  }

  off<E extends ApiKeyEventName>(name: E, listener: ApiKeyEventListener<E>): void {
    this.#emitter.off(name, listener as (payload: unknown) => void);
  }

  /**
   * Delivers each event to every listener. A listener that throws or rejects is logged and the
   * others still run: the change it reports has already been committed.
   */
  emit(events: EventBatch[]): void {
    for (const { name, payload } of events) {
      for (const listener of this.#emitter.listeners(name) as ((payload: unknown) => unknown)[]) {
        try {
          Promise.resolve(listener(payload)).catch((error: unknown) => this.#failed(name, error));
        } catch (error) {
          this.#failed(name, error);
        }
      }
    }
  }

  #failed(name: string, error: unknown): void {
    this.#logger.error(`express-api-keys: a listener for ${name} failed`, error);
  }
}

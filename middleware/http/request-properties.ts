// How the key's context reaches the request (`req.auth_context`, `req.api_key`, ...) without
// adding properties to it. Express, 4 and 5, gives each request its app's prototype
// (`Object.setPrototypeOf(req, app.request)`, where `app.request` inherits from Express's
// `request`, which inherits from IncomingMessage.prototype), and V8 cannot cache the adding of
// a property to an object whose prototype was swapped: each new property then costs a runtime
// call and a fresh hidden class, measured here at 3-4 us apiece plus the garbage they leave,
// more than the whole warm verification. So on such a request the values live in a WeakMap
// keyed by the request, and Express's `request` gets, once, an accessor per name that reads and
// writes them.
//
// Requests are served so only where that is safe and pays: a request whose prototype's own
// prototype is IncomingMessage.prototype (bare node:http, Connect, an IncomingMessage subclass)
// swaps nothing, so it keeps plain own properties; and wherever one of the names is already
// the request's own, or a prototype's between the request and the accessors (set by other
// code, a class field, an app's default on `app.request`), it would hide the accessor, so the
// request gets own properties, as it always did.
import { IncomingMessage } from "node:http";
import type { ApiKeyRequestProperties } from "../request-context";

const NAMES = ["auth_context", "secret_key_context", "publishable_key_context", "api_key"] as const;
type Name = (typeof NAMES)[number];

/** Each request's values, for requests whose prototype chain carries the accessors. */
const VALUES = new WeakMap<object, ApiKeyRequestProperties>();
/** Per immediate prototype of a request: whether the accessors serve its requests. */
const SERVED = new WeakMap<object, boolean>();

function valuesOf(req: object): ApiKeyRequestProperties {
  let values = VALUES.get(req);
  if (!values) {
    // One shape for every request's values.
    values = { auth_context: undefined, secret_key_context: undefined, publishable_key_context: undefined, api_key: undefined };
    VALUES.set(req, values);
  }
  return values;
}

/** One accessor per name, made once: finding them on a prototype means they are installed. */
const ACCESSORS = new Map<Name, PropertyDescriptor>(
  NAMES.map((name) => [
    name,
    {
      configurable: true,
      enumerable: false,
      get(this: object) {
        return VALUES.get(this)?.[name];
      },
      // Other code may set these too (a Medusa-style app sets `auth_context` for its users'
      // sessions): its value is kept where this one reads.
      set(this: object, value: unknown) {
        (valuesOf(this) as Record<Name, unknown>)[name] = value;
      },
    },
  ]),
);

/** Whether `object` has one of the names as its own property (asked once per request: written out). */
function ownsAName(object: object): boolean {
  return Object.hasOwn(object, "auth_context") || Object.hasOwn(object, "secret_key_context") || Object.hasOwn(object, "publishable_key_context") || Object.hasOwn(object, "api_key");
}

/** The object in `prototype`'s chain whose own prototype is IncomingMessage.prototype (Express's `request`). */
function requestPrototype(prototype: object): object | undefined {
  let current: object | null = prototype;
  while (current && Object.getPrototypeOf(current) !== IncomingMessage.prototype) current = Object.getPrototypeOf(current) as object | null;
  return current ?? undefined;
}

/** Installs the accessors on `target`, unless something there or further up the chain already has one of the names. */
function install(target: object): boolean {
  if (NAMES.every((name) => Object.getOwnPropertyDescriptor(target, name)?.get === ACCESSORS.get(name)!.get)) return true;
  if (NAMES.some((name) => name in target) || !Object.isExtensible(target)) return false;
  for (const name of NAMES) Object.defineProperty(target, name, ACCESSORS.get(name)!);
  return true;
}

/** Whether the accessors serve requests whose prototype is `prototype` (installing them the first time). */
function serves(prototype: object): boolean {
  const target = requestPrototype(prototype);
  // No prototype between the request's own and IncomingMessage's: nothing is swapped per request.
  if (target === undefined || target === prototype) return false;
  for (let between: object = prototype; between !== target; between = Object.getPrototypeOf(between) as object) {
    if (ownsAName(between)) return false;
  }
  return install(target);
}

/**
 * Where to set `req`'s key properties so that its handlers read them as `req.api_key` and so
 * on: the values its prototype's accessors read, or the request itself.
 */
export function requestProperties(req: IncomingMessage): ApiKeyRequestProperties {
  const prototype = Object.getPrototypeOf(req) as object | null;
  if (prototype === null || prototype === IncomingMessage.prototype) return req as ApiKeyRequestProperties;
  let served = SERVED.get(prototype);
  if (served === undefined) {
    served = serves(prototype);
    SERVED.set(prototype, served);
  }
  return served && !ownsAName(req) ? valuesOf(req) : (req as ApiKeyRequestProperties);
}

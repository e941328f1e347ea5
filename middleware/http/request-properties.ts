// How the key's context reaches the request (`req.auth_context`, `req.api_key`, ...) without
// adding properties to it. Express, 4 and 5, gives each request its app's prototype
// (`Object.setPrototypeOf(req, app.request)`), and V8 cannot cache the adding of a property to
// an object whose prototype was swapped: each new property then costs a runtime call and a fresh
// hidden class, measured here at 3-4 us apiece plus the garbage they leave, more than the whole
// warm verification. So on such a request the values live in a WeakMap keyed by the request,
// and the framework's shared request prototype (the one just above Node's IncomingMessage)
// gets, once, an accessor per name that reads and writes them. A request whose prototype is
// IncomingMessage's own (bare node:http, Connect) keeps plain own properties: there adding is
// cheap, and Node's prototype is not ours to change.
import { IncomingMessage } from "node:http";
import type { ApiKeyRequestProperties } from "../request-context";

const NAMES = ["auth_context", "secret_key_context", "publishable_key_context", "api_key"] as const;
type Name = (typeof NAMES)[number];

/** Each request's values, for requests whose prototype carries the accessors. */
const VALUES = new WeakMap<object, ApiKeyRequestProperties>();
/** Per immediate prototype of a request: whether the accessors serve it. */
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
      // Other code may set these too (an app of the reference's shape sets `auth_context` for
      // its users): its value is kept where this one reads.
      set(this: object, value: unknown) {
        (valuesOf(this) as Record<Name, unknown>)[name] = value;
      },
    },
  ]),
);

/** The prototype in `req`'s chain just above IncomingMessage.prototype, if there is one. */
function frameworkPrototype(req: object): object | undefined {
  let prototype = Object.getPrototypeOf(req) as object | null;
  while (prototype && Object.getPrototypeOf(prototype) !== IncomingMessage.prototype) prototype = Object.getPrototypeOf(prototype) as object | null;
  return prototype ?? undefined;
}

/** Installs the accessors on `prototype`, unless something there or above already has one of the names. */
function install(prototype: object): boolean {
  if (NAMES.every((name) => Object.getOwnPropertyDescriptor(prototype, name)?.get === ACCESSORS.get(name)!.get)) return true;
  if (NAMES.some((name) => name in prototype) || !Object.isExtensible(prototype)) return false;
  for (const name of NAMES) Object.defineProperty(prototype, name, ACCESSORS.get(name)!);
  return true;
}

/** Whether `req`'s prototype chain carries the accessors (installing them the first time). */
function served(req: object): boolean {
  const prototype = Object.getPrototypeOf(req) as object | null;
  if (prototype === null || prototype === IncomingMessage.prototype) return false;
  let answer = SERVED.get(prototype);
  if (answer === undefined) {
    const top = frameworkPrototype(req);
    answer = top !== undefined && install(top);
    SERVED.set(prototype, answer);
  }
  return answer;
}

/**
 * Where to set `req`'s key properties so that its handlers read them as `req.api_key` and so
 * on: the request itself, or the values its prototype's accessors read.
 */
export function requestProperties(req: IncomingMessage): ApiKeyRequestProperties {
  return served(req) ? valuesOf(req) : (req as ApiKeyRequestProperties);
}

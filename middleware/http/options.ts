// One option checker for the factories of the HTTP layer (apiKeyAuth, the admin router, the
// dashboard), in express-rate-limit's style: a table of rules per factory, `undefined` always
// meaning "absent", and TypeErrors that name the option, say the fix and carry a stable `code`.
import { failConfiguration } from "../../lib/errors";
import { isScope } from "../../lib/scopes";

/** Checks one option's value (never `undefined`): what is wrong with it, or undefined. */
export type OptionRule = (value: unknown) => string | undefined;

export interface FactorySpec<T> {
  /** The factory's name, as the app calls it: `apiKeyAuth`. */
  name: string;
  /** What to write instead when the factory itself is mounted as the middleware. */
  usage: string;
  /** Every option, in the order messages list them. */
  rules: { [K in keyof T & string]-?: OptionRule };
  /** What is wrong between options that are each valid alone, or undefined. */
  together?: (options: T) => string | undefined;
}

/** The options, checked against the factory's table; `undefined` is no options. */
export function checkFactoryOptions<T extends object>(spec: FactorySpec<T>, options: unknown): T {
  if (options === undefined) return {} as T;
  if (typeof options !== "object" || options === null) failConfiguration(`\`${spec.name}(options)\` takes an object.`, "ERR_API_KEYS_OPTIONS_TYPE");
  if ("headers" in options && "method" in options) failConfiguration(spec.usage, "ERR_API_KEYS_FACTORY_MISUSE");
  const names = Object.keys(spec.rules) as (keyof T & string)[];
  const unknown = Object.entries(options)
    .filter(([name, value]) => value !== undefined && !(names as string[]).includes(name))
    .map(([name]) => name);
  if (unknown.length > 0) failConfiguration(`unknown option \`${unknown[0]}\`; the options are ${names.join(", ")}.`, "ERR_API_KEYS_UNKNOWN_OPTION");
  for (const name of names) {
    const value: unknown = (options as Record<string, unknown>)[name];
    const problem = value === undefined ? undefined : spec.rules[name](value);
    if (problem !== undefined) failConfiguration(problem);
  }
  const problem = spec.together?.(options as T);
  if (problem !== undefined) failConfiguration(problem);
  return options as T;
}

/** Rules most factories share, each naming its option. */
export const rules = {
  boolean: (name: string): OptionRule => (value) => (typeof value === "boolean" ? undefined : `\`${name}\` must be a boolean.`),
  function: (name: string): OptionRule => (value) => (typeof value === "function" ? undefined : `\`${name}\` must be a function.`),
  /** The service `initialize()` returns (anything with its verification). */
  service: (value: unknown) =>
    typeof (value as { verifyApiKey?: unknown } | null)?.verifyApiKey === "function" ? undefined : "`service` must be the result of `initialize()`.",
  /** A whole number above 0, of `unit`. */
  count: (name: string, unit: string): OptionRule => (value) =>
    typeof value === "number" && Number.isSafeInteger(value) && value > 0 ? undefined : `\`${name}\` must be a whole number of ${unit} greater than 0.`,
};

/** What is wrong with scopes a route requires: exact words (a `*` there would grant nothing a key could ask for). */
export function scopesProblem(scopes: unknown, what: string): string | undefined {
  if (!Array.isArray(scopes)) return `${what} must be an array of scopes such as "orders:read".`;
  // Array.from turns the holes of a sparse array into undefined, which the check refuses.
  const items = Array.from(scopes as unknown[]);
  const bad = items.findIndex((scope) => !isScope(scope, false));
  if (bad < 0) return undefined;
  const shown = JSON.stringify(items[bad]) ?? String(items[bad]);
  return `${what}: ${shown.slice(0, 60)} is not a scope: write [a-z0-9_.-] words joined by ":", such as "orders:read".`;
}

/** Throws the TypeError for scopes a route requires, when they are not. */
export function checkScopes(scopes: unknown, what: string): asserts scopes is string[] {
  const problem = scopesProblem(scopes, what);
  if (problem !== undefined) failConfiguration(problem);
}

// Parses a URL query string with bracket notation (`created_at[$gt]=...`, `id[]=a&id[]=b`,
// `$or[0][title]=x`) into nested objects and arrays. The admin router parses the raw URL itself
// so that it behaves the same whatever query parser the app gave Express.
import { redactSecrets } from "../lib/errors";

/** Bounds that keep a hostile query string from building a huge object. */
const MAX_PARAMETERS = 200;
const MAX_DEPTH = 5;
const MAX_INDEX = 100;

/** A malformed query string. Its message quotes parameter names, with any secret token in them redacted. */
export class QueryStringError extends Error {
  constructor(message: string) {
    super(redactSecrets(message));
  }
}

/** A parameter name as messages quote it: secret tokens redacted first, so a cut can never leave part of one. */
function quoted(name: string): string {
  return redactSecrets(name).slice(0, 40);
}

type Node = string | Node[] | { [key: string]: Node };

function parseKey(key: string): string[] {
  const match = /^([^[\]]*)((?:\[[^[\]]*\])*)$/.exec(key);
  if (!match || match[1] === "") throw new QueryStringError(`malformed query parameter name '${quoted(key)}'`);
  const path = [match[1]!];
  for (const part of match[2]!.matchAll(/\[([^[\]]*)\]/g)) path.push(part[1]!);
  if (path.length > MAX_DEPTH + 1) throw new QueryStringError(`query parameter '${quoted(key)}' is nested too deeply`);
  return path;
}

function isIndex(segment: string): boolean {
  return segment === "" || /^\d+$/.test(segment);
}

function assign(container: Record<string, Node> | Node[], path: string[], value: string, key: string): void {
  const [segment, ...rest] = path as [string, ...string[]];
  if (Array.isArray(container)) {
    if (!isIndex(segment)) throw new QueryStringError(`query parameter '${quoted(key)}' mixes list and object forms`);
    const index = segment === "" ? container.length : Number(segment);
    if (index > MAX_INDEX) throw new QueryStringError(`query parameter '${quoted(key)}' has an index over ${MAX_INDEX}`);
    place(container, index, rest, value, key);
  } else {
    if (segment === "__proto__" || segment === "constructor" || segment === "prototype") {
      throw new QueryStringError(`query parameter name '${segment}' is not allowed`);
    }
    place(container, segment, rest, value, key);
  }
}

function place(container: Record<string, Node> | Node[], slot: string | number, rest: string[], value: string, key: string): void {
  const target = container as Record<string | number, Node | undefined>;
  const existing = target[slot];
  if (rest.length === 0) {
    if (existing === undefined) target[slot] = value;
    else if (Array.isArray(existing)) existing.push(value);
    else if (typeof existing === "string") target[slot] = [existing, value];
    else throw new QueryStringError(`query parameter '${quoted(key)}' is given both as a value and as an object`);
    return;
  }
  if (existing === undefined) {
    target[slot] = isIndex(rest[0]!) ? [] : (Object.create(null) as Record<string, Node>);
  } else if (typeof existing === "string") {
    throw new QueryStringError(`query parameter '${quoted(key)}' is given both as a value and as an object`);
  }
  assign(target[slot] as Record<string, Node> | Node[], rest, value, key);
}

/**
 * Refuses lists with gaps (`id[5]=a`, `id[0]=a&id[2]=b`): a sparse array is malformed input,
 * not a shorter list. Indexes may come in any order as long as none is missing.
 */
function assertDense(node: Node, path: string): void {
  if (typeof node === "string") return;
  if (Array.isArray(node)) {
    for (let i = 0; i < node.length; i++) {
      if (!Object.hasOwn(node, i)) {
        throw new QueryStringError(`query parameter '${quoted(path)}' has no index ${i}: list indexes must run from 0 without gaps`);
      }
      assertDense(node[i]!, `${path}[${i}]`);
    }
    return;
  }
  for (const [key, inner] of Object.entries(node)) assertDense(inner, path === "" ? key : `${path}[${key}]`);
}

export function parseQueryString(search: string): Record<string, unknown> {
  const params = new URLSearchParams(search);
  const result = Object.create(null) as Record<string, Node>;
  let count = 0;
  for (const [key, value] of params) {
    if (++count > MAX_PARAMETERS) throw new QueryStringError(`more than ${MAX_PARAMETERS} query parameters`);
    assign(result, parseKey(key), value, key);
  }
  assertDense(result, "");
  return result;
}

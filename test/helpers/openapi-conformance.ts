// Every answer the admin router gives in the tests is checked against its own OpenAPI document:
// the status must be one the document lists for that path and method, and the JSON body must
// match that response's schema. A mismatch is recorded here and fails the test that caused it
// (see root-hooks.ts), so the document cannot fall behind the router.
import type { IncomingMessage, ServerResponse } from "node:http";
import Ajv2020, { type ValidateFunction } from "ajv/dist/2020";
import addFormats from "ajv-formats";
import { openApiDocument } from "../../middleware/openapi";

/** A value of the document as JSON.parse gives it, walked freely: the OpenAPI validator in openapi.test.ts checks its shape. */
type Json = ReturnType<typeof JSON.parse>;

const document: Json = openApiDocument("/");

/** Ajv for the document's JSON Schema 2020-12, with the document itself loaded so `$ref`s resolve. */
export function documentAjv(): Ajv2020 {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv);
  ajv.addSchema({ ...document, $id: "openapi.json" });
  return ajv;
}

const ajv = documentAjv();

/** A JSON pointer into the document, for `$ref`s to it. */
export function pointer(...segments: (string | number)[]): string {
  return `openapi.json#/${segments.map((segment) => encodeURIComponent(String(segment).replace(/~/g, "~0").replace(/\//g, "~1"))).join("/")}`;
}

/** The document's `{ $ref }` objects (responses), followed. */
function resolved(value: Json): Json {
  if (typeof value.$ref !== "string") return value;
  return (value.$ref as string)
    .slice(2)
    .split("/")
    .reduce((node: Json, key) => node[key], document);
}

/** The document's path templates as patterns, literal paths first (as the router matches `/openapi.json` before `/:id`). */
const templates = Object.keys(document.paths)
  .map((path) => ({ path, pattern: new RegExp(`^${path.replace(/\{[^}]+\}/g, "[^/]+")}/?$`) }))
  .sort((a, b) => (a.path.match(/\{/g)?.length ?? 0) - (b.path.match(/\{/g)?.length ?? 0));

const validators = new Map<string, ValidateFunction>();

function validatorFor(path: string, method: string, status: string): ValidateFunction {
  const key = `${method} ${path} ${status}`;
  let validate = validators.get(key);
  if (!validate) {
    const response = (document.paths)[path][method].responses[status];
    const at = typeof response.$ref === "string" ? (response.$ref as string).slice(2).split("/") : ["paths", path, method, "responses", status];
    validate = ajv.compile({ $ref: pointer(...at, "content", "application/json", "schema") });
    validators.set(key, validate);
  }
  return validate;
}

const violations: string[] = [];

/** What the router answered that its document does not say, since the last call; empties the list. */
export function takeViolations(): string[] {
  return violations.splice(0);
}

/** Checks one answer; `path` is relative to where the router is mounted. */
export function checkAnswer(method: string, path: string, status: number, contentType: string, body: string): string | undefined {
  const lower = method.toLowerCase();
  const match = templates.find(({ path: template, pattern }) => pattern.test(path) && (document.paths)[template][lower]);
  // Not a route of the router (the request fell through to the app): nothing to check.
  if (!match || lower === "head") return undefined;
  const where = `${method} ${match.path} answered ${status}`;
  const responses = (document.paths)[match.path][lower].responses;
  // An exact status first, then its range (`4XX`), as OpenAPI reads them.
  const listed = [String(status), `${String(status)[0]}XX`].find((key) => responses[key]);
  if (!listed) return `${where}, a status the document does not list`;
  const response = responses[listed];
  if (!resolved(response).content?.["application/json"]) return `${where}: the document gives no JSON body`;
  if (!/^application\/json\b/.test(contentType)) return `${where} with Content-Type '${contentType}', not JSON`;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return `${where} with a body that is not JSON`;
  }
  const validate = validatorFor(match.path, lower, listed);
  if (validate(parsed)) return undefined;
  return `${where} with a body the document's schema refuses: ${ajv.errorsText(validate.errors)}; body: ${body.slice(0, 300)}`;
}

/**
 * Middleware to mount just in front of the admin router: records each answer under the mount
 * that does not match the document.
 */
export function recordAnswers(req: IncomingMessage & { path?: string }, res: ServerResponse, next: () => void): void {
  const method = req.method ?? "GET";
  const path = req.path ?? (req.url ?? "/").split("?")[0]!;
  const chunks: Buffer[] = [];
  const write = res.write.bind(res) as (...args: unknown[]) => boolean;
  const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse;
  const keep = (chunk: unknown) => {
    if (typeof chunk === "string" || chunk instanceof Uint8Array) chunks.push(Buffer.from(chunk));
  };
  res.write = ((chunk: unknown, ...rest: unknown[]) => {
    keep(chunk);
    return write(chunk, ...rest);
  }) as typeof res.write;
  res.end = ((chunk?: unknown, ...rest: unknown[]) => {
    if (typeof chunk !== "function") keep(chunk);
    const problem = checkAnswer(method, path, res.statusCode, String(res.getHeader("content-type") ?? ""), Buffer.concat(chunks).toString("utf8"));
    if (problem) violations.push(problem);
    return end(chunk, ...rest);
  }) as typeof res.end;
  next();
}

// Lint config: typescript-eslint's type-aware recommended rules, plus the strict ones that catch
// real bugs in async middleware and stores: promises nobody awaits or catches, promise-returning
// functions passed where the caller ignores the result, switches that miss a union member.
import js from "@eslint/js";
import { defineConfig } from "eslint/config";
import tseslint from "typescript-eslint";

export default defineConfig(
  { ignores: ["dist/", "node_modules/"] },
  js.configs.recommended,
  tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-misused-promises": "error",
      // A `default` is a deliberate choice here (codes a newer store may add are refused alike).
      "@typescript-eslint/switch-exhaustiveness-check": ["error", { considerDefaultExhaustiveForUnions: true }],
      // Store and cache methods implement async interfaces; `async` also turns a throw into a rejection.
      "@typescript-eslint/require-await": "off",
      // tsc's noUnusedLocals and noUnusedParameters already check this, with the same `_` convention.
      "@typescript-eslint/no-unused-vars": "off",
      // Optional peers load with a lazy require() inside the function that needs them (CommonJS build).
      "@typescript-eslint/no-require-imports": "off",
      // `interface ApiKeyDTO extends ApiKeyColumnValues {}` gives the DTO its own name in editors and .d.ts.
      "@typescript-eslint/no-empty-object-type": ["error", { allowInterfaces: "with-single-extends" }],
    },
  },
  // The layers, which point one way: lib/ (the domain) defines the interfaces it needs and
  // imports no other layer; store/ implements them; middleware/ is HTTP over lib/; setup/ is the
  // composition root that knows them all; the CLI builds on setup/ and lib/, never on HTTP.
  {
    files: ["lib/**/*.ts"],
    rules: {
      "no-restricted-imports": ["error", {
        patterns: [
          { regex: "^\\.\\./(store|middleware|setup|cli)(/|$)", message: "lib/ is the domain: define the interface here and implement it in store/; setup/ wires them." },
          { regex: "^(knex|knex-pglite|pg|ioredis|@electric-sql/pglite|mysql2|better-sqlite3)(/|$)", message: "lib/ loads no driver: that belongs in store/ or setup/." },
        ],
      }],
    },
  },
  {
    files: ["middleware/**/*.ts"],
    rules: {
      "no-restricted-imports": ["error", {
        patterns: [
          { regex: "^(\\.\\./)+(store|setup|cli)(/|$)", message: "middleware/ is HTTP over lib/: it never reaches a store or the composition root." },
          { regex: "^(knex|knex-pglite|pg|ioredis|@electric-sql/pglite|mysql2|better-sqlite3)(/|$)", message: "middleware/ loads no driver, so apiKeyAuth stays light." },
        ],
      }],
    },
  },
  {
    files: ["store/**/*.ts"],
    rules: {
      "no-restricted-imports": ["error", { patterns: [{ regex: "^(\\.\\./)+(middleware|setup|cli)(/|$)", message: "store/ implements lib/'s contracts; it knows nothing of HTTP or wiring." }] }],
    },
  },
  {
    files: ["cli/**/*.ts"],
    rules: {
      "no-restricted-imports": ["error", { patterns: [{ regex: "^\\.\\./middleware(/|$)", message: "The CLI builds on setup/ and lib/, never on the HTTP layer." }] }],
    },
  },
  {
    files: ["test/**/*.ts"],
    rules: {
      // supertest bodies and error objects are `any`; the assertions on them are the type check.
      "@typescript-eslint/no-unsafe-assignment": "off",
      "@typescript-eslint/no-unsafe-member-access": "off",
      "@typescript-eslint/no-unsafe-call": "off",
      "@typescript-eslint/no-unsafe-argument": "off",
      "@typescript-eslint/no-unsafe-return": "off",
      // Tests feed arrays with holes and control characters on purpose, as hostile input.
      "no-sparse-arrays": "off",
      "no-control-regex": "off",
    },
  },
  {
    files: ["**/*.mjs", "**/*.cjs"],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: { globals: { module: "readonly", process: "readonly", require: "readonly" } },
  },
  {
    // The dashboard's browser script: plain ES modules served as they are, with no type information.
    files: ["middleware/dashboard/assets/**/*.js"],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: {
      sourceType: "module",
      globals: {
        document: "readonly", window: "readonly", navigator: "readonly", fetch: "readonly", location: "readonly",
        URL: "readonly", URLSearchParams: "readonly", setTimeout: "readonly", clearTimeout: "readonly", console: "readonly",
        HTMLElement: "readonly", Intl: "readonly", FormData: "readonly",
      },
    },
  },
);

import { takeViolations } from "./openapi-conformance";

// Root hooks: a promise rejected and never handled anywhere fails the run instead of passing silently.
process.on("unhandledRejection", (reason) => {
  throw reason;
});

/**
 * After each test: the admin router gave no answer its OpenAPI document does not describe
 * (test/helpers/openapi-conformance.ts records them).
 */
export const mochaHooks = {
  afterEach(): void {
    const violations = takeViolations();
    if (violations.length > 0) throw new Error(`The admin router's answers differ from its OpenAPI document:\n${violations.join("\n")}`);
  },
};

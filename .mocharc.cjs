// One mocha config for every tier: unit tests need no services, integration tests use real
// PostgreSQL, PGlite, MariaDB, SQLite and Redis, browser tests Debian's Chromium. `forbid-only`
// under CI keeps a stray `.only` from hiding tests.
//
// Files named on the command line run alone (`npx mocha test/unit/tokens.test.ts`): mocha adds a
// config's `spec` to them rather than replacing it (mocha#5412), so the whole suite is the
// default only when no file is named. SPEC=a,b names files through the environment instead.
const named = process.argv.slice(2).some((arg) => !arg.startsWith("-") && /\.(ts|js|cjs|mjs)$/.test(arg));
const spec = process.env.SPEC
  ? process.env.SPEC.split(",")
  : named
    ? undefined
    : ["test/unit/**/*.test.ts", "test/integration/**/*.test.ts", "test/browser/**/*.test.ts"];

module.exports = {
  "node-option": ["import=tsx"],
  require: ["test/helpers/root-hooks.ts"],
  ...(spec ? { spec } : {}),
  // A test that needs longer (starting servers, migrating, a browser) says so and why.
  timeout: 10000,
  "forbid-only": Boolean(process.env.CI),
  reporter: "spec",
};

// One mocha config for every tier: unit tests need no services, integration tests use real
// PostgreSQL, PGlite, MariaDB, SQLite and Redis, browser tests Debian's Chromium. `forbid-only`
// under CI keeps a stray `.only` from hiding tests.
module.exports = {
  "node-option": ["import=tsx"],
  require: ["test/helpers/root-hooks.ts"],
  // SPEC=test/unit/tokens.test.ts,test/integration/cli.test.ts runs just those files.
  spec: process.env.SPEC ? process.env.SPEC.split(",") : ["test/unit/**/*.test.ts", "test/integration/**/*.test.ts", "test/browser/**/*.test.ts"],
  timeout: 30000,
  "forbid-only": Boolean(process.env.CI),
  reporter: "spec",
};

// One mocha config for every tier: unit tests need no services, integration tests use real
// PostgreSQL and PGlite. `forbid-only` under CI keeps a stray `.only` from hiding tests.
module.exports = {
  "node-option": ["import=tsx"],
  require: ["test/helpers/root-hooks.ts"],
  spec: ["test/unit/**/*.test.ts", "test/integration/**/*.test.ts"],
  timeout: 30000,
  "forbid-only": Boolean(process.env.CI),
  reporter: "spec",
};

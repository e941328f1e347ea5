// Root hooks: a promise rejected and never handled anywhere fails the run instead of passing silently.
process.on("unhandledRejection", (reason) => {
  throw reason;
});

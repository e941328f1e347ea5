// Express 4 is installed under the alias `express4`; its API for what the tests use matches Express 5's types.
declare module "express4" {
  import express = require("express");
  export = express;
}

// A process that competes for an embedded database directory on command, so that a test can
// start several at the same instant: it loads everything first, then on each "go" line from stdin
// opens the directory and queries it, then reports "won" or "lost <message>", and on "release"
// closes it again.
//
// LOCK_CONTENDER_READ_DELAY_MS widens the race window without touching the package: every read
// of a `.lock` file through node:fs pauses this long after it returns, as a slow disk or a busy
// machine could. The package calls node:fs through the module object, so the wrapper below is what
// it calls; its own code and behaviour are unchanged.
import fs = require("node:fs");
import { createInterface } from "node:readline";
import { type OpenedDatabase, openDatabase } from "../../store/connect";

const directory = process.argv[2]!;
const delay = Number(process.env.LOCK_CONTENDER_READ_DELAY_MS ?? 0);

if (delay > 0) {
  const readFileSync = fs.readFileSync;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  const delayed = (...args: Parameters<typeof readFileSync>) => {
    const result = readFileSync(...args);
    if (String(args[0]).endsWith(".lock")) Atomics.wait(pause, 0, 0, delay);
    return result;
  };
  Object.defineProperty(fs, "readFileSync", { value: delayed, writable: true, configurable: true });
}

async function main(): Promise<void> {
  let opened: OpenedDatabase | undefined;
  console.log("ready");
  for await (const line of createInterface({ input: process.stdin })) {
    if (line === "go") {
      try {
        opened = await openDatabase(`pglite://${directory}`);
        // Use it, as its holder would: an open that merely looked successful does not count.
        await opened.knex.raw("select 1");
        console.log("won");
      } catch (error) {
        console.log(`lost ${(error as Error).message}`);
      }
    } else if (line === "release") {
      await opened?.close();
      opened = undefined;
      console.log("released");
    }
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);

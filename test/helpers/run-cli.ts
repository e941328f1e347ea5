// The CLI as a user runs it: a child process, with no configuration from the environment but
// what a test gives it, answering its exit code and output whatever they are.
import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);
const root = path.resolve(__dirname, "../..");

/** Every variable the CLI reads its configuration from. */
const CONFIGURATION = [
  "DATABASE_URL", "REDIS_URL", "REDIS_CLUSTER_NODES", "REDIS_SENTINELS", "REDIS_SENTINEL_NAME",
  "API_KEYS_PEPPER", "API_KEYS_SCHEMA", "API_KEYS_REDIS_PREFIX",
];

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI with no configuration from the environment but `extraEnv`. */
export async function runCli(extraEnv: NodeJS.ProcessEnv, args: string[]): Promise<CliResult> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of CONFIGURATION) delete env[name];
  Object.assign(env, extraEnv);
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, ["--import", "tsx", "cli/index.ts", ...args], { cwd: root, env, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as CliResult;
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

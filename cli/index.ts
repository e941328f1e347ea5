#!/usr/bin/env node
// The express-api-keys command line: manage keys from a terminal (including the very first
// secret key) with the same configuration as initialize(): each flag is the explicit option, and
// without it the same environment variables and defaults apply (DATABASE_URL, else the embedded
// database in ./.express-api-keys; DATABASE_READ_URL; REDIS_URL, REDIS_CLUSTER_NODES or
// REDIS_SENTINELS with REDIS_SENTINEL_NAME; API_KEYS_SCHEMA, API_KEYS_PEPPER, API_KEYS_REDIS_PREFIX).
import { readFileSync } from "node:fs";
import { userInfo } from "node:os";
import { inspect } from "node:util";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { ApiKeyError, isApiKeyError } from "../lib/errors";
import { initialize } from "../setup/initialize";
import type { ApiKeyService } from "../lib/service";
import type { AuditEvent } from "../lib/audit-log";
import { type ApiKeyDTO, type ApiKeyType, type Context, type FilterableApiKeyProps, VERIFY_CODES } from "../lib/types";
import type { ImportedKeyState, MedusaImportReport } from "../lib/medusa-import";
import type { UsageRow } from "../lib/usage-analytics";
import type { Logger } from "../lib/logger";
import type { ApiKeysOptions } from "../setup/options";
import { safe, terminalJson, terminalLines, terminalText } from "./escape";
import { type PolicyFlags, addPolicyOptions, keyStatus, policyFields } from "./policy-flags";

/** Exit codes: 0 done, 1 the operation failed, 2 the command line was wrong. */
const EXIT_FAILED = 1;
const EXIT_USAGE = 2;

function seconds(value: string): number {
  const number = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || !Number.isFinite(number)) throw new InvalidArgumentError("expected a number of seconds.");
  return number;
}

function positiveInteger(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new InvalidArgumentError("expected a positive integer.");
  return Number(value);
}

/**
 * Reads the pepper from a file, so that the secret never appears on a command line (which other
 * users of the machine can see). One trailing newline, as editors and `echo` write, is dropped;
 * the rest is taken byte for byte, as the app's Buffer or UTF-8 string pepper would be.
 */
function pepperFile(file: string): Buffer {
  let content: Buffer;
  try {
    content = readFileSync(file);
  } catch (error) {
    throw new InvalidArgumentError(`the file cannot be read (${(error as NodeJS.ErrnoException).code ?? "error"}).`);
  }
  const end = content.at(-1) === 0x0a ? (content.at(-2) === 0x0d ? content.length - 2 : content.length - 1) : content.length;
  if (end === 0) throw new InvalidArgumentError("the file is empty.");
  return content.subarray(0, end);
}

function defaultActor(): string {
  try {
    return `cli:${userInfo().username}`;
  } catch {
    return "cli";
  }
}

/** Rows of cells as aligned columns, each cell escaped for the terminal. */
function columns(rows: string[][]): string {
  const escaped = rows.map((row) => row.map(terminalText));
  const widths = escaped[0]!.map((_, column) => Math.max(...escaped.map((row) => row[column]!.length)));
  return escaped.map((row) => row.map((cell, column) => cell.padEnd(widths[column]!)).join("  ").trimEnd()).join("\n");
}

/** Verifications per day, a column per code. */
function usageTable(rows: UsageRow[]): string {
  return columns([["DAY", ...VERIFY_CODES.map((code) => code.toUpperCase())], ...rows.map((row) => [row.time.slice(0, 10), ...VERIFY_CODES.map((code) => String(row[code]))])]);
}

function table(keys: ApiKeyDTO[]): string {
  const now = new Date();
  return columns([
    ["ID", "TYPE", "KEY", "TITLE", "STATUS", "OWNER", "SCOPES", "LAST USED"],
    ...keys.map((key) => {
      const scopes = key.scopes ?? [];
      return [
        key.id,
        key.type,
        key.redacted,
        key.title,
        keyStatus(key, now),
        key.owner_id ?? "-",
        scopes.length > 0 ? scopes.join(",") : "-",
        key.last_used_at?.toISOString() ?? "never",
      ];
    }),
  ]);
}

/** An audit event on one line: when, what, which key, who, and each change as before -> after. */
function auditLine(event: AuditEvent): string {
  const changes = Object.entries(event.changes).map(([field, { before, after }]) => `${field}: ${JSON.stringify(before)} -> ${JSON.stringify(after)}`);
  return terminalText(`${event.at.toISOString()}  ${event.action}  ${event.key_id}  by ${event.actor_id ?? "-"}  ${changes.join("; ")}`);
}

/** Prints a result: `text` must already be escaped (built with safe`...` or terminalText). */
function print(json: boolean, value: unknown, text: string): void {
  console.log(json ? terminalJson(value) : text);
}

/** Warnings from background work (Redis unreachable, say), one escaped line each on stderr. */
const cliLogger: Logger = {
  warn: (message, ...details) => console.error(`warning: ${oneLine(message, details)}`),
  error: (message, ...details) => console.error(`error: ${oneLine(message, details)}`),
};

function oneLine(message: string, details: unknown[]): string {
  const reasons = details.map((detail) => (detail instanceof Error ? detail.message : String(detail)));
  return terminalText([message, ...reasons].join(": "));
}

/**
 * Prints the ids a command changed; ids it left alone (unknown, or already in that state) make
 * the command fail, so a script never reads "done" for nothing done.
 */
function reportAffected(verb: string, ids: string[], affected: Set<string>, otherwise = ""): void {
  const done = ids.filter((id) => affected.has(id));
  const skipped = ids.filter((id) => !affected.has(id));
  if (done.length > 0) console.log(safe`${verb} ${done.join(", ")}`);
  if (skipped.length > 0) {
    throw new ApiKeyError("not_found", `No key with id ${skipped.join(", ")}${otherwise ? ` (or ${otherwise})` : ""}`);
  }
}

/** The flags that say where Redis is, of which at most one may be given: those but `flag`. */
function otherRedisFlags(flag: string): string[] {
  return ["redis", "redisClusterNodes", "redisSentinels"].filter((name) => name !== flag);
}

/** One line per batch on stderr (rewritten in place on a terminal), so that stdout keeps only the report. */
function progressLine({ done, total }: { done: number; total: number }): void {
  const line = `Read ${done} of ${total} keys`;
  if (process.stderr.isTTY) process.stderr.write(`\r${line}${done >= total ? "\n" : ""}`);
  else process.stderr.write(`${line}\n`);
}

const IMPORT_STATES: ImportedKeyState[] = ["active", "revocation_scheduled", "revoked", "deleted"];

function importSummary(report: MedusaImportReport): string {
  const counts = columns([
    ["TYPE", ...IMPORT_STATES.map((state) => state.toUpperCase())],
    ...(["publishable", "secret"] as const).map((type) => [type, ...IMPORT_STATES.map((state) => String(report.by_type[type][state]))]),
  ]);
  const verb = report.dry_run ? "Would import" : "Imported";
  return [
    `${verb} ${report.imported} of ${report.found} keys (${report.already_present} already here, ${report.refused.length} refused) and ${report.links} sales-channel links.`,
    counts,
    ...report.refused.map((row) => safe`Refused ${row.id}: ${row.reason}`),
    ...(report.dry_run ? ["Dry run: nothing was written."] : []),
  ].join("\n");
}

export function buildProgram(run: (work: (service: ApiKeyService) => Promise<void>) => Promise<void>): Command {
  const program = new Command("express-api-keys")
    .description("Manage API keys for express-api-keys.")
    .option("--database <url>", "postgres://, mysql://, mariadb://, sqlite:// or pglite:// URL (default: DATABASE_URL, else ./.express-api-keys)")
    .option("--read-database <url>", "a postgres:// streaming replica of the database, for `list` (default: DATABASE_READ_URL, else none)")
    .option("--schema <name>", "PostgreSQL schema of the key tables (default: API_KEYS_SCHEMA, else the search path)")
    .addOption(new Option("--redis <url>", "the apps' Redis, so that they see changes at once (default: REDIS_URL, else none)").conflicts(otherRedisFlags("redis")))
    .addOption(
      new Option("--redis-cluster-nodes <host:port,...>", "instead of --redis: some nodes of the apps' Redis Cluster (default: REDIS_CLUSTER_NODES)").conflicts(otherRedisFlags("redisClusterNodes")),
    )
    .addOption(
      new Option("--redis-sentinels <host:port,...>", "instead of --redis: the Sentinels of the apps' Redis (default: REDIS_SENTINELS)").conflicts(otherRedisFlags("redisSentinels")),
    )
    .option("--redis-sentinel-name <name>", "with --redis-sentinels: the master's name (default: REDIS_SENTINEL_NAME)")
    .option("--redis-prefix <prefix>", "the apps' cache.redisPrefix (default: API_KEYS_REDIS_PREFIX, else apikey:)")
    .option("--pepper-file <path>", "file holding the apps' pepper (default: API_KEYS_PEPPER, else none)", pepperFile)
    .option("--token-prefix <segment>", "the apps' tokenPrefix, put into new tokens (default: API_KEYS_TOKEN_PREFIX, else none)")
    .option("--actor <name>", "who makes the changes, as the audit log records it", defaultActor())
    // Usage errors quote the arguments back; help shows defaults. Subcommands inherit this. A
    // usage error is one line that points to --help, rather than the whole help after it.
    .configureOutput({
      writeOut: (text) => process.stdout.write(terminalLines(text)),
      writeErr: (text) => process.stderr.write(terminalLines(text)),
      outputError: (text, write) => write(terminalLines(`${text.trimEnd()} (--help shows usage)\n`)),
    })
    .exitOverride();
  // Every change names who made it, for the audit log.
  const as = (): Context => ({ actor: program.opts<GlobalOptions>().actor });

  const create = program
    .command("create")
    .description("Create a key; a secret key's token is printed this once.")
    .requiredOption("--title <title>", "what the key is for")
    .addOption(new Option("--type <type>", "key type").choices(["secret", "publishable"]).makeOptionMandatory())
    .option("--created-by <actor>", "who creates it", defaultActor());
  addPolicyOptions(create, false)
    .option("--json", "print the key as JSON")
    .action((options: PolicyFlags & { title: string; type: ApiKeyType; createdBy: string; json?: boolean }) =>
      run(async (service) => {
        const data = { title: options.title, type: options.type, created_by: options.createdBy, ...policyFields(options, false, new Date()) };
        const key = await service.createApiKeys(data, as());
        const warning = key.type === "secret" ? "\nStore it now: it cannot be shown again." : "";
        print(Boolean(options.json), key, safe`Created ${key.type} key ${key.id} "${key.title}"\ntoken: ${key.token}` + warning);
      }),
    );

  const update = program
    .command("update <id>")
    .description("Change a key's title or policy; flags left out leave the key as it is.")
    .option("--title <title>", "what the key is for");
  addPolicyOptions(update, true)
    .option("--json", "print the key as JSON")
    .action((id: string, options: PolicyFlags & { title?: string; json?: boolean }) => {
      const data = { ...(options.title === undefined ? {} : { title: options.title }), ...policyFields(options, true, new Date()) };
      if (Object.keys(data).length === 0) update.error("error: nothing to update: give --title or a policy flag.", { exitCode: EXIT_USAGE });
      return run(async (service) => {
        const key = await service.updateApiKeys(id, data, as());
        print(Boolean(options.json), key, safe`Updated ${key.id} "${key.title}": ${keyStatus(key, new Date())}`);
      });
    });

  program
    .command("list")
    .description("List keys, newest first.")
    .addOption(new Option("--type <type>", "only this type").choices(["secret", "publishable"]))
    .option("--search <words>", "words in the title or redacted key")
    .option("--owner <id>", "only the keys of this owner")
    .option("--active", "only keys that are not revoked or expired")
    .option("--deleted", "show soft-deleted keys too")
    .option("--limit <n>", "most keys shown", positiveInteger, 50)
    .option("--json", "print JSON")
    .action((options: { type?: ApiKeyType; search?: string; owner?: string; active?: boolean; deleted?: boolean; limit: number; json?: boolean }) =>
      run(async (service) => {
        const now = new Date();
        const filters: FilterableApiKeyProps & Record<string, unknown> = {};
        if (options.type) filters.type = options.type;
        if (options.search) filters.q = options.search;
        if (options.owner !== undefined) filters.owner_id = options.owner;
        if (options.active) {
          filters.$and = [{ $or: [{ revoked_at: null }, { revoked_at: { $gt: now } }] }];
          filters.$and.push({ $or: [{ expires_at: null }, { expires_at: { $gt: now } }] });
        }
        const config = { take: options.limit, order: { created_at: "DESC" as const }, withDeleted: Boolean(options.deleted) };
        const [keys, count] = await service.listAndCountApiKeys(filters, config);
        print(Boolean(options.json), { api_keys: keys, count }, `${table(keys)}\n${keys.length} of ${count} keys`);
      }),
    );

  for (const [name, description] of [
    ["revoke", "Revoke a key, now or in --in seconds."],
    ["roll", "Replace a key: revoke it (now or in --in seconds) and print its successor's token."],
  ] as const) {
    program
      .command(`${name} <id>`)
      .description(description)
      .option("--in <seconds>", "delay before the old key stops working", seconds)
      .option("--by <actor>", "who does it", defaultActor())
      .option("--json", "print the key as JSON")
      .action((id: string, options: { in?: number; by: string; json?: boolean }) =>
        run(async (service) => {
          const data = { revoked_by: options.by, revoke_in: options.in };
          if (name === "revoke") {
            const key = await service.revoke(id, data, as());
            print(Boolean(options.json), key, safe`Revoked ${key.id}: stops working at ${key.revoked_at!.toISOString()}`);
          } else {
            const key = await service.roll(id, data, as());
            print(Boolean(options.json), key, safe`Rolled ${id} into ${key.id}\ntoken: ${key.token}\nStore it now: it cannot be shown again.`);
          }
        }),
      );
  }

  program
    .command("delete <ids...>")
    .description("Delete revoked keys for good.")
    .action((ids: string[]) =>
      run(async (service) => {
        // The service skips unknown ids, as the reference does; a command line says so.
        const found = new Set((await service.listApiKeys({ id: ids }, { withDeleted: true, select: ["id"] })).map((key) => key.id));
        await service.deleteApiKeys(ids, as());
        reportAffected("Deleted", ids, found);
      }),
    );

  for (const [name, description, verb] of [
    ["soft-delete", "Hide keys and stop them working, so that restore can bring them back.", "Soft-deleted"],
    ["restore", "Bring soft-deleted keys back (revoked or expired ones stay refused).", "Restored"],
  ] as const) {
    program
      .command(`${name} <ids...>`)
      .description(description)
      .action((ids: string[]) =>
        run(async (service) => {
          const { api_key_id } = await (name === "restore" ? service.restoreApiKeys(ids, as()) : service.softDeleteApiKeys(ids, as()));
          reportAffected(verb, ids, new Set(api_key_id), name === "restore" ? "not soft-deleted" : "already soft-deleted");
        }),
      );
  }

  program
    .command("link <id>")
    .description("Link a publishable key to sales channels, or unlink it.")
    .option("--add <ids...>", "sales channel ids to link", [])
    .option("--remove <ids...>", "sales channel ids to unlink", [])
    .action((id: string, options: { add: string[]; remove: string[] }) =>
      run(async (service) => {
        const linked = await service.updateLinks(id, { add: options.add, remove: options.remove }, as());
        console.log(safe`${id} sales channels: ${linked.length > 0 ? linked.join(", ") : "(none)"}`);
      }),
    );

  program
    .command("audit")
    .description("Show the audit log, newest first: every change to a key, who made it, and what it changed.")
    .option("--key <id>", "only this key's events")
    .option("--limit <n>", "most events shown", positiveInteger, 50)
    .option("--json", "print JSON")
    .action((options: { key?: string; limit: number; json?: boolean }) =>
      run(async (service) => {
        const filters = options.key === undefined ? {} : { key_id: options.key };
        const [events, count] = await service.listAndCountAuditEvents(filters, { take: options.limit, order: { at: "DESC" } });
        print(Boolean(options.json), { events, count }, [...events.map(auditLine), safe`${events.length} of ${count} events`].join("\n"));
      }),
    );

  program
    .command("usage <id>")
    .description("Show a key's verifications per UTC day, by code (counts reach the database within lastUsedFlushInterval).")
    .option("--days <n>", "days back from today", positiveInteger, 7)
    .option("--json", "print JSON")
    .action((id: string, options: { days: number; json?: boolean }) =>
      run(async (service) => {
        const today = Math.floor(Date.now() / 86_400_000) * 86_400_000;
        const from = new Date(today - (options.days - 1) * 86_400_000);
        const usage = await service.getUsage({ key_id: id, from, granularity: "day" });
        print(Boolean(options.json), { usage }, usage.length > 0 ? usageTable(usage) : safe`No verifications of ${id} since ${from.toISOString().slice(0, 10)}`);
      }),
    );

  program
    .command("import-medusa <database-url>")
    .description("Copy the keys of a Medusa database with their ids, fields and sales channels; their tokens keep working. Run again, it adds nothing.")
    .option("--dry-run", "read and count everything, write nothing")
    .option("--json", "print JSON")
    .action((url: string, options: { dryRun?: boolean; json?: boolean }) =>
      run(async (service) => {
        const report = await service.importMedusaKeys(url, { dryRun: Boolean(options.dryRun), onProgress: progressLine }, as());
        print(Boolean(options.json), report, importSummary(report));
      }),
    );

  program
    .command("status")
    .description("Show how many keys imported from Medusa can still authenticate, and how many secret ones await their first use.")
    .option("--json", "print JSON")
    .action((options: { json?: boolean }) =>
      run(async (service) => {
        const status = await service.importedKeysStatus();
        print(Boolean(options.json), status, `Keys imported from Medusa: ${status.imported} can authenticate, ${status.awaiting_first_use} secret ones await their first use.`);
      }),
    );

  program
    .command("migrate")
    .description("Create or update the key tables (every other command does this too).")
    .action(() =>
      run(async () => {
        console.log("The key tables are up to date.");
      }),
    );

  return program;
}

interface GlobalOptions {
  database?: string;
  readDatabase?: string;
  schema?: string;
  redis?: string;
  redisClusterNodes?: string;
  redisSentinels?: string;
  redisSentinelName?: string;
  redisPrefix?: string;
  pepperFile?: Buffer;
  tokenPrefix?: string;
  actor: string;
}

/** The `redis` option the Redis flags make; initialize() checks the addresses as it checks the environment's. */
function redisOption({ redis, redisClusterNodes, redisSentinels, redisSentinelName }: GlobalOptions): ApiKeysOptions["redis"] {
  if (redisClusterNodes !== undefined) return { clusterNodes: redisClusterNodes.split(",") };
  if (redisSentinels !== undefined) return { sentinels: redisSentinels.split(","), sentinelName: redisSentinelName };
  return redis;
}

async function main(argv: string[]): Promise<number> {
  let exitCode = 0;
  const program = buildProgram(async (work) => {
    const flags = program.opts<GlobalOptions>();
    const { database, readDatabase, schema, redisPrefix, pepperFile, tokenPrefix } = flags;
    if (flags.redisSentinelName !== undefined && flags.redisSentinels === undefined) {
      program.error("error: --redis-sentinel-name goes with --redis-sentinels.", { exitCode: EXIT_USAGE });
    }
    // Flags left out stay undefined, so that initialize() falls back to the environment as an app does.
    const cache = redisPrefix === undefined ? undefined : { redisPrefix };
    const service = await initialize({ database, readDatabase, schema, redis: redisOption(flags), cache, pepper: pepperFile, tokenPrefix, logger: cliLogger });
    try {
      await work(service);
    } finally {
      await service.close();
    }
  });
  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      exitCode = error.exitCode === 0 ? 0 : EXIT_USAGE;
    } else if (isApiKeyError(error) || error instanceof TypeError) {
      console.error(`error: ${terminalText(error.message)}`);
      exitCode = EXIT_FAILED;
    } else {
      console.error(terminalLines(inspect(error)));
      exitCode = EXIT_FAILED;
    }
  }
  return exitCode;
}

void main(process.argv).then((code) => {
  process.exitCode = code;
});

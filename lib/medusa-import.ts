// The import of Medusa's keys (`@medusajs/api-key`): every row of its `api_key` table becomes a
// key here with the same id, title, type, creator, timestamps, `redacted`, revocation and soft
// delete, and every live row of `publishable_api_key_sales_channel` a sales-channel link. Tokens
// are not re-issued: see lib/imported-keys.ts for how they keep working.
//
// Rows are read in batches by id, and each batch is written in one transaction with its links
// and audit events, so an import cut short leaves whole batches and the next run carries on.
// A key whose id is here already is left as it is: a second run adds nothing.
import { policyDefaults } from "./columns";
import { IMPORTED_TOKEN_FORMAT, importedHashValue, isMedusaSecretHash } from "./imported-keys";
import { keyState } from "./key-status";
import type { ApiKeyRecord } from "./store";
import { type ApiKeyType, redactToken } from "./tokens";

/** A row of Medusa's `api_key` table, as its migrations declare it. */
export interface MedusaKeyRow {
  id: string;
  /** A publishable key's token; a secret key's scrypt hash, as hex. */
  token: string;
  /** "" for publishable keys; 16 random bytes as hex for secret ones. */
  salt: string;
  redacted: string;
  title: string;
  type: string;
  last_used_at: Date | string | null;
  created_by: string;
  created_at: Date | string;
  updated_at: Date | string;
  revoked_by: string | null;
  revoked_at: Date | string | null;
  deleted_at: Date | string | null;
}

/** A live row of Medusa's `publishable_api_key_sales_channel` table. */
export interface MedusaSalesChannelLink {
  publishable_key_id: string;
  sales_channel_id: string;
}

/** Where the rows come from: store/medusa-source.ts reads them from a Medusa database. */
export interface MedusaKeySource {
  /** How many rows `api_key` holds, for progress. */
  count(): Promise<number>;
  /** Up to `limit` rows with ids after `afterId` (from the first without it), by id. */
  keys(afterId: string | undefined, limit: number): Promise<MedusaKeyRow[]>;
  /** The links of these publishable keys that are not soft-deleted. */
  salesChannels(publishableKeyIds: string[]): Promise<MedusaSalesChannelLink[]>;
  close(): Promise<void>;
}

export interface MedusaImportOptions {
  /** Reads and counts everything, writes nothing. */
  dryRun?: boolean;
  /** Called after each batch. */
  onProgress?(progress: { done: number; total: number }): void;
}

/** A key's state at the import, as the report counts them. */
export type ImportedKeyState = "active" | "revocation_scheduled" | "revoked" | "deleted";

export interface MedusaImportReport {
  dry_run: boolean;
  /** Rows read from `api_key`. */
  found: number;
  /** Keys written by this run (that would be, in a dry run). */
  imported: number;
  /** Keys whose id was here already: left as they are. */
  already_present: number;
  /** Rows that are not shaped as Medusa writes them, by id, with why: not imported. */
  refused: { id: string; reason: string }[];
  /** Sales-channel links written with the imported keys. */
  links: number;
  /** The keys found, by type and state. */
  by_type: Record<ApiKeyType, Record<ImportedKeyState, number>>;
}

/** What the import needs of the service: which ids exist, and one transaction per batch. */
export interface ImportTarget {
  existingIds(ids: string[]): Promise<Set<string>>;
  write(records: ApiKeyRecord[], links: MedusaSalesChannelLink[]): Promise<void>;
}

/** Rows per batch: one transaction each. */
export const IMPORT_BATCH_SIZE = 500;

const PUBLISHABLE_TOKEN = /^pk_[0-9a-f]{64}$/;
const SECRET_REDACTED = /^sk_[0-9a-f]{3}\*\*\*[0-9a-f]{3}$/;
const ID = /^[A-Za-z0-9_-]{1,64}$/;

function emptyCounts(): Record<ImportedKeyState, number> {
  return { active: 0, revocation_scheduled: 0, revoked: 0, deleted: 0 };
}

function instant(value: Date | string | null, field: string): Date | null {
  if (value === null) return null;
  const date = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(date.getTime())) throw new Error(`'${field}' is not a date`);
  return date;
}

function text(value: unknown, field: string): string {
  if (typeof value !== "string") throw new Error(`'${field}' is not text`);
  return value;
}

/** The key a Medusa row becomes; throws, with the reason, for a row Medusa would not write. */
export function recordFromMedusa(row: MedusaKeyRow): ApiKeyRecord {
  if (typeof row.id !== "string" || !ID.test(row.id)) throw new Error("'id' is not an id");
  const token = text(row.token, "token");
  const salt = row.salt ?? "";
  let stored: string;
  if (row.type === "publishable") {
    if (!PUBLISHABLE_TOKEN.test(token)) throw new Error("'token' is not a Medusa publishable token");
    stored = token;
  } else if (row.type === "secret") {
    if (!isMedusaSecretHash(salt, token)) throw new Error("'token' and 'salt' are not a Medusa scrypt hash");
    if (!SECRET_REDACTED.test(row.redacted)) throw new Error("'redacted' is not the redacted form of a Medusa secret token");
    stored = importedHashValue(salt, token);
  } else {
    throw new Error("'type' is neither publishable nor secret");
  }
  const created_at = instant(row.created_at, "created_at")!;
  return {
    id: row.id,
    token: stored,
    // A publishable token's own redaction, whatever the row says; a secret one's is all there is to find it by.
    redacted: row.type === "publishable" ? redactToken(token) : row.redacted,
    title: text(row.title, "title"),
    type: row.type,
    last_used_at: instant(row.last_used_at, "last_used_at"),
    created_by: text(row.created_by, "created_by"),
    created_at,
    updated_at: instant(row.updated_at, "updated_at") ?? created_at,
    deleted_at: instant(row.deleted_at, "deleted_at"),
    revoked_by: row.revoked_by === null ? null : text(row.revoked_by, "revoked_by"),
    revoked_at: instant(row.revoked_at, "revoked_at"),
    ...policyDefaults(),
    token_format: IMPORTED_TOKEN_FORMAT,
  };
}

function stateOf(record: ApiKeyRecord, now: Date): ImportedKeyState {
  const state = keyState(record, now);
  if (state.state === "active") return state.ends ? "revocation_scheduled" : "active";
  return state.state === "expired" ? "revoked" : state.state;
}

/** Copies every key and live link of `source` into `target`, batch by batch. */
export async function importMedusaKeys(source: MedusaKeySource, target: ImportTarget, now: Date, options: MedusaImportOptions = {}): Promise<MedusaImportReport> {
  const dryRun = options.dryRun === true;
  const report: MedusaImportReport = {
    dry_run: dryRun,
    found: 0,
    imported: 0,
    already_present: 0,
    refused: [],
    links: 0,
    by_type: { publishable: emptyCounts(), secret: emptyCounts() },
  };
  const total = await source.count();
  let afterId: string | undefined;
  for (;;) {
    const rows = await source.keys(afterId, IMPORT_BATCH_SIZE);
    if (rows.length === 0) break;
    afterId = rows.at(-1)!.id;
    report.found += rows.length;
    const records: ApiKeyRecord[] = [];
    for (const row of rows) {
      try {
        records.push(recordFromMedusa(row));
      } catch (error) {
        report.refused.push({ id: String(row.id), reason: (error as Error).message });
      }
    }
    const existing = await target.existingIds(records.map((record) => record.id));
    const fresh = records.filter((record) => !existing.has(record.id));
    for (const record of records) report.by_type[record.type][stateOf(record, now)]++;
    const publishable = fresh.filter((record) => record.type === "publishable").map((record) => record.id);
    const links = publishable.length > 0 ? await source.salesChannels(publishable) : [];
    if (!dryRun && fresh.length > 0) await target.write(fresh, links);
    report.imported += fresh.length;
    report.already_present += records.length - fresh.length;
    report.links += links.length;
    options.onProgress?.({ done: report.found, total: Math.max(total, report.found) });
  }
  return report;
}

// Opens the read replica (`readDatabase`, else DATABASE_READ_URL) and what reads from it: a
// Knex store on the replica, the watch on how far it has replayed, and the router the service
// sends the reads that may lag to. Only PostgreSQL with streaming replication qualifies: that is
// where a replica can be told to have caught up, by WAL position.
import type { Knex } from "knex";
import { failConfiguration } from "../lib/errors";
import type { Logger } from "../lib/logger";
import { type DatabaseOption, isPostgresServer, openDatabase } from "../store/connect";
import { KnexApiKeyStore } from "../store/knex-store";
import { ReplicaFreshness } from "../store/replica-freshness";
import { ReplicaReadRouter } from "../store/replica-reads";

export interface OpenedReplica {
  /** Hears every change and resync: the cache's observer. */
  freshness: ReplicaFreshness;
  reads: ReplicaReadRouter;
  /** Releases what was opened from a URL; an app's Knex stays open. */
  close(): Promise<void>;
}

export interface ReplicaSettings {
  schema: string | undefined;
  timeout: number;
  logger: Logger;
  /** Whether the invalidation channel hears every change now. */
  listening: () => boolean;
}

export async function openReplica(readDatabase: DatabaseOption, primary: Knex, settings: ReplicaSettings): Promise<OpenedReplica> {
  if (!isPostgresServer(primary)) {
    failConfiguration("`readDatabase` needs `database` on PostgreSQL (through pg): only a streaming replica can be told to have caught up.");
  }
  const opened = await openDatabase(readDatabase);
  if (!isPostgresServer(opened.knex)) {
    await opened.close();
    failConfiguration("`readDatabase` must be a pg Knex instance or a postgres:// URL of a streaming replica.");
  }
  const { schema, timeout, logger, listening } = settings;
  const freshness = new ReplicaFreshness(primary, opened.knex, listening, logger);
  const reads = new ReplicaReadRouter(new KnexApiKeyStore(opened.knex, schema), freshness, timeout, logger);
  return { freshness, reads, close: () => opened.close() };
}

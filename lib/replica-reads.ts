// The reads a read replica may serve, as the service sees them. The service sends here only
// authentication lookups that missed every cache and list and retrieve calls made outside an
// app's transaction; everything else (writes, reads inside transactions and locks, quotas, the
// deployment secret, the legacy-token probe, the post-commit probe) goes to the primary store as
// it always did. store/replica-reads.ts implements this over a PostgreSQL streaming replica.
import type { ApiKeyStore } from "./store";

/**
 * What a read must see. A `lookup` decides an authentication: it must see every change this
 * instance made or heard of, and the instance must be listening for every other change. A
 * `list` (list and retrieve) must see every change this instance made or heard of.
 */
export type ReplicaReadKind = "lookup" | "list";

export interface ReplicaReadOptions<T> {
  /**
   * Whether an answer found something. One that did not is asked of the primary again: the row
   * may be too new for the replica (a key created a moment ago on another instance).
   */
  found: (answer: T) => boolean;
  /** The read must see every committed change, heard of or not: it goes to the primary. */
  latest?: boolean;
}

export interface ReplicaReads {
  /**
   * Runs `work` on the replica when it has every change a `kind` read must see, and on `primary`
   * otherwise, or when the replica fails, is slow, or finds nothing. Rejects only with the
   * primary's error.
   */
  read<T>(kind: ReplicaReadKind, primary: ApiKeyStore, work: (store: ApiKeyStore) => Promise<T>, options: ReplicaReadOptions<T>): Promise<T>;
}

// Carries invalidations between instances over PostgreSQL LISTEN/NOTIFY, for deployments without
// Redis. One dedicated connection, opened with the Knex's settings but outside its pool, LISTENs
// on a channel named after the schema of our tables, and announces each committed change with
// pg_notify(), in the messages Redis carries (invalidation-message.ts). Sending on that
// connection rather than the pool means a change never waits for a pool connection (an app's
// transaction may hold the only one), and its own message has come back and been applied before
// the change returns (PostgreSQL delivers a session's own notifications before it answers).
// Anyone who may NOTIFY can send anything, so a message is checked before it is believed.
// After a drop the connection comes back by itself, and then resyncs: messages sent meanwhile
// were lost.
import { createHash } from "node:crypto";
import type { Knex } from "knex";
import type { Client, Notification } from "pg";
import type { Logger } from "../../lib/logger";
import { FailureRun } from "./failure-run";
import type { InvalidationChannel, InvalidationListener } from "./invalidation-channel";
import { invalidationMessages, parseInvalidation } from "./invalidation-message";

/** A NOTIFY payload must stay under 8,000 bytes: 100 keys are 6,702. */
export const MAX_NOTIFY_KEYS = 100;
/** PostgreSQL's identifier limit: LISTEN truncates a longer name, pg_notify() refuses it. */
const MAX_CHANNEL_BYTES = 63;
/** The first reconnect comes this soon after a drop; each failure doubles the wait, up to the most. */
const RECONNECT_FIRST_MS = 50;
const RECONNECT_MOST_MS = 2_000;
/**
 * How long a NOTIFY may take. One that takes longer means the connection has gone deaf (a
 * half-open TCP connection, say): it is replaced, and "drop everything" is sent in its place.
 */
const SEND_TIMEOUT_MS = 1_000;
/** How long a run of ignored messages must stop before the warning about them is lifted. */
const QUIET_MS = 60_000;

/** The channel of the tables in `schema`: every instance and CLI using those tables shares it. */
export function channelName(schema: string): string {
  const name = `api_key_invalidate:${schema}`;
  if (Buffer.byteLength(name) <= MAX_CHANNEL_BYTES) return name;
  return `api_key_invalidate:${createHash("sha256").update(schema).digest("hex").slice(0, 40)}`;
}

export class PgNotifyChannel implements InvalidationChannel {
  readonly #knex: Knex;
  readonly #schema: string | undefined;
  readonly #logger: Logger;
  readonly #outage: FailureRun;
  readonly #badMessages: FailureRun;
  #listener: InvalidationListener | undefined;
  /** The listening connection, while it listens. */
  #client: Client | undefined;
  /** Resolved once, when first listening. */
  #channel = "";
  #everListened = false;
  /** Invalidations could not be sent: "drop everything" is owed, and sent once listening again. */
  #owed = false;
  #closed = false;
  #reconnectDelay = RECONNECT_FIRST_MS;
  #reconnect: NodeJS.Timeout | undefined;

  /** `knex`: a pg Knex on the primary, which stays its owner's. `schema`: that of our tables (the search path's when undefined). */
  constructor(knex: Knex, schema: string | undefined, logger: Logger) {
    this.#knex = knex;
    this.#schema = schema;
    this.#logger = logger;
    const now = () => new Date();
    this.#outage = new FailureRun(logger, now, 0, {
      start: "express-api-keys: cannot listen for invalidations on PostgreSQL; changes made elsewhere reach this instance within cache.ttl until it can",
      end: "express-api-keys: listening for invalidations on PostgreSQL again",
    });
    this.#badMessages = new FailureRun(logger, now, QUIET_MS, {
      start: "express-api-keys: ignored a message on the PostgreSQL invalidation channel that is not one of ours",
      end: "express-api-keys: the PostgreSQL invalidation channel carries only well-formed messages again",
    });
  }

  get live(): boolean {
    return this.#client !== undefined;
  }

  /** Listens; when PostgreSQL cannot be reached, resolves anyway and keeps trying in the background. */
  async start(listener: InvalidationListener): Promise<void> {
    this.#listener = listener;
    await this.#connect();
  }

  /** Named after where our tables are: `schema`, else the search path of the Knex's pooled connections. */
  async #channelName(): Promise<string> {
    if (this.#schema !== undefined) return channelName(this.#schema);
    const { rows } = await this.#knex.raw<{ rows: { schema: string | null }[] }>("select current_schema() as schema");
    return channelName(rows[0]?.schema ?? "");
  }

  async #connect(): Promise<void> {
    this.#reconnect = undefined;
    let client: Client | undefined;
    try {
      this.#channel ||= await this.#channelName();
      client = (await (this.#knex.client as Knex.Client).acquireRawConnection()) as Client;
      const opened = client;
      opened.on("notification", (notification) => this.#onNotification(notification));
      opened.on("error", (error) => this.#dropped(opened, error));
      opened.on("end", () => this.#dropped(opened, new Error("the connection ended")));
      await opened.query(`listen ${opened.escapeIdentifier(this.#channel)}`);
      if (this.#closed) {
        await opened.end();
        return;
      }
      this.#client = opened;
      this.#reconnectDelay = RECONNECT_FIRST_MS;
      this.#outage.succeeded();
      if (this.#everListened) this.#listener?.resync();
      this.#everListened = true;
      if (this.#owed) await this.#send(opened, ["*"]);
    } catch (error) {
      client?.end().catch(() => undefined);
      this.#outage.failed(error);
      this.#scheduleReconnect();
    }
  }

  /**
   * The connection is gone. Nothing is resynced yet: while PostgreSQL is down nothing changes,
   * and the in-process tier keeps serving recently verified keys (cache.staleIfError); the
   * resync comes when the connection is back.
   */
  #dropped(client: Client, error: unknown): void {
    // Late events of a connection already replaced or closed change nothing.
    if (client !== this.#client) return;
    this.#client = undefined;
    client.end().catch(() => undefined);
    if (this.#closed) return;
    this.#outage.failed(error);
    this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    if (this.#closed || this.#reconnect) return;
    this.#reconnect = setTimeout(() => void this.#connect(), this.#reconnectDelay).unref();
    this.#reconnectDelay = Math.min(this.#reconnectDelay * 2, RECONNECT_MOST_MS);
  }

  /** Acts on one notification; nothing here may throw, since it runs in the driver's event handler. */
  #onNotification({ channel, payload }: Notification): void {
    if (channel !== this.#channel) return;
    const cacheKeys = parseInvalidation(payload);
    if (!cacheKeys) {
      this.#badMessages.failed();
      return;
    }
    this.#badMessages.succeeded();
    try {
      this.#listener?.invalidated(cacheKeys);
    } catch (error) {
      this.#logger.error("express-api-keys: could not apply an invalidation", error);
    }
  }

  /** Announces a committed change; what cannot be sent now is owed as "drop everything". */
  async publish(cacheKeys: string[]): Promise<void> {
    if (cacheKeys.length === 0) return;
    const client = this.#client;
    if (client) await this.#send(client, invalidationMessages(cacheKeys, MAX_NOTIFY_KEYS));
    else this.#owed = true;
  }

  async #send(client: Client, messages: string[]): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const sql = `select ${messages.map((_, i) => `pg_notify($1, $${i + 2})`).join(", ")}`;
    try {
      await Promise.race([
        client.query(sql, [this.#channel, ...messages]),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`a NOTIFY took longer than ${SEND_TIMEOUT_MS} ms`)), SEND_TIMEOUT_MS);
        }),
      ]);
      this.#owed = false;
    } catch (error) {
      this.#owed = true;
      this.#dropped(client, error);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Closes the listening connection; the Knex stays open. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#reconnect);
    const client = this.#client;
    this.#client = undefined;
    await client?.end().catch(() => undefined);
  }
}

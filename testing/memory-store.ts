// An ApiKeyStore that keeps keys in process memory, with no Knex and no SQL: an example for store
// authors, and the proof that the store interface is enough on its own. Keys vanish when the
// process ends, and two processes do not share them, so it suits tests and demos only.
//
// Every write, and every transaction, runs one at a time behind a single lock; a transaction
// works on a copy of the data that replaces the original only when the work succeeds. That
// makes read-check-write sequences serialisable without row locks. Records go in and out as
// deep copies (they hold arrays and objects), so no caller ever shares what the store keeps.
import type { AuditEvent, AuditFilter, AuditQuery } from "../lib/audit-log";
import { ApiKeyError } from "../lib/errors";
import type { Condition, NormalizedFindConfig } from "../lib/filters";
import { IMPORTED_HASH_PREFIX, IMPORTED_TOKEN_FORMAT } from "../lib/imported-keys";
import { type QuotaConsumption, type QuotaRefill, refillIntervalStart } from "../lib/quota";
import type { ApiKeyPatch, ApiKeyRecord, ApiKeyStore, PublishableRecord } from "../lib/store";
import type { ApiKeyType } from "../lib/types";
import type { UsageCount, UsageQuery } from "../lib/usage-analytics";

interface Data {
  keys: Map<string, ApiKeyRecord>;
  /** api key id -> resource type -> resource ids */
  links: Map<string, Map<string, Set<string>>>;
  /** api key id -> when its usage quota was last refilled (absent: never, creation counts) */
  refilledAt: Map<string, Date>;
  /** The audit log, in the order its events were stored. */
  audit: AuditEvent[];
  /** Verification counts by "key id (or empty) | hour (epoch ms) | code". */
  usage: Map<string, UsageCount>;
}

type Truth = boolean | null;
type Cell = string | Date | null;

function copyData(data: Data): Data {
  return {
    keys: new Map([...data.keys].map(([id, record]) => [id, structuredClone(record)])),
    links: new Map([...data.links].map(([id, types]) => [id, new Map([...types].map(([type, ids]) => [type, new Set(ids)]))])),
    refilledAt: new Map(data.refilledAt),
    audit: [...data.audit],
    usage: new Map([...data.usage].map(([name, count]) => [name, { ...count }])),
  };
}

/** SQL's comparison of two non-null values: dates by instant, text by code point. */
function compareCells(a: Cell, b: Cell): number {
  const left = a instanceof Date ? a.getTime() : a;
  const right = b instanceof Date ? b.getTime() : b;
  return left! < right! ? -1 : left! > right! ? 1 : 0;
}

function likeToRegExp(pattern: string, flags: string): RegExp {
  let source = "";
  for (let i = 0; i < pattern.length; i++) {
    const char = pattern[i]!;
    if (char === "\\" && i + 1 < pattern.length) source += pattern[++i]!.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    else if (char === "%") source += "[\\s\\S]*";
    else if (char === "_") source += "[\\s\\S]";
    else source += char.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${source}$`, flags);
}

function not(value: Truth): Truth {
  return value === null ? null : !value;
}

/** Evaluates a condition with SQL's three-valued logic, so NULLs behave as in the SQL stores. */
function evaluate(condition: Condition, record: ApiKeyRecord): Truth {
  const cell = (field: keyof ApiKeyRecord) => record[field] as Cell;
  switch (condition.kind) {
    case "and": {
      let result: Truth = true;
      for (const item of condition.items) {
        const value = evaluate(item, record);
        if (value === false) return false;
        if (value === null) result = null;
      }
      return result;
    }
    case "or": {
      let result: Truth = false;
      for (const item of condition.items) {
        const value = evaluate(item, record);
        if (value === true) return true;
        if (value === null) result = null;
      }
      return result;
    }
    case "not":
      return not(evaluate(condition.item, record));
    case "compare": {
      const value = cell(condition.field);
      if (value === null) return null;
      const order = compareCells(value, condition.value);
      switch (condition.op) {
        case "=": return order === 0;
        case "<>": return order !== 0;
        case ">": return order > 0;
        case ">=": return order >= 0;
        case "<": return order < 0;
        case "<=": return order <= 0;
      }
      return null;
    }
    case "in": {
      if (condition.values.length === 0) return condition.negated;
      const value = cell(condition.field);
      if (value === null) return null;
      const found = condition.values.some((candidate) => compareCells(value, candidate) === 0);
      return condition.negated ? !found : found;
    }
    case "null":
      return (cell(condition.field) === null) !== condition.negated;
    case "match": {
      const value = cell(condition.field);
      if (value === null) return null;
      const text = String(value);
      if (condition.op === "regex") return new RegExp(condition.pattern).test(text);
      return likeToRegExp(condition.pattern, condition.op === "ilike" ? "i" : "").test(text);
    }
    case "search":
      return condition.words.every((word) => {
        const needle = word.toLowerCase();
        return record.title.toLowerCase().includes(needle) || record.redacted.toLowerCase().includes(needle);
      });
  }
}

export class MemoryApiKeyStore implements ApiKeyStore {
  #data: Data;
  /** Shared by a store and the transaction stores made from it: one write at a time. */
  readonly #lock: { tail: Promise<void> };
  readonly #secrets: Map<string, string>;
  readonly #inTransaction: boolean;

  constructor(shared?: { data: Data; lock: { tail: Promise<void> }; secrets: Map<string, string>; inTransaction: boolean }) {
    this.#data = shared?.data ?? { keys: new Map(), links: new Map(), refilledAt: new Map(), audit: [], usage: new Map() };
    this.#lock = shared?.lock ?? { tail: Promise.resolve() };
    this.#secrets = shared?.secrets ?? new Map<string, string>();
    this.#inTransaction = shared?.inTransaction ?? false;
  }

  /** Runs `work` alone: after every write and transaction before it, before any after it. */
  async #exclusive<T>(work: () => T | Promise<T>): Promise<T> {
    if (this.#inTransaction) return work();
    const previous = this.#lock.tail;
    let release!: () => void;
    this.#lock.tail = new Promise((resolve) => (release = resolve));
    await previous;
    try {
      return await work();
    } finally {
      release();
    }
  }

  #matching(condition: Condition, withDeleted: boolean): ApiKeyRecord[] {
    return [...this.#data.keys.values()].filter(
      (record) => (withDeleted || record.deleted_at === null) && evaluate(condition, record) === true,
    );
  }

  async find(condition: Condition, config: NormalizedFindConfig): Promise<ApiKeyRecord[]> {
    const rows = this.#matching(condition, config.withDeleted).sort((a, b) => {
      for (const [field, direction] of config.order) {
        const left = a[field];
        const right = b[field];
        // NULLs sort last going up and first going down, as PostgreSQL does.
        const order = left === null ? (right === null ? 0 : 1) : right === null ? -1 : compareCells(left, right);
        if (order !== 0) return direction === "asc" ? order : -order;
      }
      return 0;
    });
    const start = config.skip ?? 0;
    const end = config.take === undefined ? undefined : start + config.take;
    return rows.slice(start, end).map((record) => structuredClone(record));
  }

  async count(condition: Condition, withDeleted: boolean): Promise<number> {
    return this.#matching(condition, withDeleted).length;
  }

  async findByToken(storedToken: string, type: ApiKeyType): Promise<ApiKeyRecord | undefined> {
    for (const record of this.#data.keys.values()) {
      if (record.token === storedToken && record.type === type && record.deleted_at === null) return structuredClone(record);
    }
    return undefined;
  }

  async findPublishable(token: string): Promise<PublishableRecord | undefined> {
    const record = await this.findByToken(token, "publishable");
    return record && { ...record, sales_channel_ids: await this.linkedIds(record.id, "sales_channel") };
  }

  insert(records: ApiKeyRecord[]): Promise<void> {
    return this.#exclusive(() => {
      const tokens = new Set([...this.#data.keys.values()].map((record) => record.token));
      for (const record of records) {
        if (this.#data.keys.has(record.id) || tokens.has(record.token)) {
          throw new ApiKeyError("invalid_data", `A key with id ${record.id} or the same token exists already`);
        }
        tokens.add(record.token);
      }
      for (const record of records) this.#data.keys.set(record.id, structuredClone(record));
    });
  }

  update(ids: string[], patch: ApiKeyPatch): Promise<void> {
    return this.#exclusive(() => {
      for (const id of ids) {
        const record = this.#data.keys.get(id);
        if (record) this.#data.keys.set(id, structuredClone({ ...record, ...patch }));
      }
    });
  }

  delete(ids: string[]): Promise<void> {
    return this.#exclusive(() => {
      for (const id of ids) {
        this.#data.keys.delete(id);
        this.#data.links.delete(id);
        this.#data.refilledAt.delete(id);
      }
    });
  }

  async linkedIds(apiKeyId: string, resourceType: string): Promise<string[]> {
    return [...(this.#data.links.get(apiKeyId)?.get(resourceType) ?? [])].sort();
  }

  addLinks(apiKeyId: string, resourceType: string, resourceIds: string[]): Promise<void> {
    return this.#exclusive(() => {
      if (!this.#data.keys.has(apiKeyId)) return;
      const types = this.#data.links.get(apiKeyId) ?? new Map<string, Set<string>>();
      const ids = types.get(resourceType) ?? new Set<string>();
      for (const id of resourceIds) ids.add(id);
      types.set(resourceType, ids);
      this.#data.links.set(apiKeyId, types);
    });
  }

  removeLinks(apiKeyId: string, resourceType: string, resourceIds: string[]): Promise<void> {
    return this.#exclusive(() => {
      const ids = this.#data.links.get(apiKeyId)?.get(resourceType);
      for (const id of resourceIds) ids?.delete(id);
    });
  }

  copyLinks(fromId: string, toId: string): Promise<void> {
    return this.#exclusive(() => {
      const types = this.#data.links.get(fromId);
      if (!types || !this.#data.keys.has(toId)) return;
      this.#data.links.set(toId, new Map([...types].map(([type, ids]) => [type, new Set(ids)])));
    });
  }

  recordLastUsed(uses: [id: string, at: Date][]): Promise<void> {
    return this.#exclusive(() => {
      for (const [id, at] of uses) {
        const record = this.#data.keys.get(id);
        if (record && (record.last_used_at === null || record.last_used_at < at)) {
          this.#data.keys.set(id, { ...record, last_used_at: at });
        }
      }
    });
  }

  /** Check, refill and take in one step behind the lock, so concurrent calls never overspend. */
  consumeQuota(id: string, cost: number, now: Date, refill?: QuotaRefill): Promise<QuotaConsumption> {
    return this.#exclusive(() => {
      const record = this.#data.keys.get(id);
      if (!record || record.deleted_at !== null) return { admitted: false, remaining: null, refilled: false };
      const current = record.remaining ?? null;
      if (current === null) return { admitted: true, remaining: null, refilled: false };
      let remaining = current;
      let refilled = false;
      const lastRefill = this.#data.refilledAt.get(id) ?? record.created_at;
      if (refill && lastRefill < refillIntervalStart(now, refill.interval)) {
        remaining = refill.amount;
        refilled = true;
        this.#data.refilledAt.set(id, now);
      }
      const admitted = remaining >= cost;
      if (admitted) remaining -= cost;
      this.#data.keys.set(id, { ...record, remaining });
      return { admitted, remaining, refilled };
    });
  }

  /** Gives unspent leased units back, if the key is as it was and was not refilled since they were taken. */
  returnQuota(id: string, units: number, takenAt: Date, version: Date): Promise<void> {
    return this.#exclusive(() => {
      const record = this.#data.keys.get(id);
      if (!record || record.deleted_at !== null || record.remaining === null || record.updated_at.getTime() !== version.getTime()) return;
      if ((this.#data.refilledAt.get(id) ?? record.created_at) > takenAt) return;
      this.#data.keys.set(id, { ...record, remaining: record.remaining + units });
    });
  }

  transaction<T>(work: (store: ApiKeyStore) => Promise<T>): Promise<T> {
    return this.#exclusive(async () => {
      const draft = copyData(this.#data);
      const result = await work(new MemoryApiKeyStore({ data: draft, lock: this.#lock, secrets: this.#secrets, inTransaction: true }));
      // Only a transaction that succeeded replaces the data; a thrown error leaves it untouched.
      this.#data.keys = draft.keys;
      this.#data.links = draft.links;
      this.#data.refilledAt = draft.refilledAt;
      this.#data.audit = draft.audit;
      this.#data.usage = draft.usage;
      return result;
    });
  }

  insertAuditEvents(events: AuditEvent[]): Promise<void> {
    return this.#exclusive(() => {
      this.#data.audit.push(...structuredClone(events));
    });
  }

  #auditMatching(where: AuditFilter): AuditEvent[] {
    const { gt, gte, lt, lte } = where.at ?? {};
    return this.#data.audit.filter(
      (event) =>
        (!where.key_id || where.key_id.includes(event.key_id)) &&
        (!where.actor_id || (event.actor_id !== null && where.actor_id.includes(event.actor_id))) &&
        (!where.action || where.action.includes(event.action)) &&
        (!gt || event.at > gt) &&
        (!gte || event.at >= gte) &&
        (!lt || event.at < lt) &&
        (!lte || event.at <= lte),
    );
  }

  async findAuditEvents(query: AuditQuery): Promise<AuditEvent[]> {
    const sign = query.order === "asc" ? 1 : -1;
    const events = this.#auditMatching(query.where).sort((a, b) => sign * (a.at.getTime() - b.at.getTime() || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)));
    const start = query.skip ?? 0;
    return structuredClone(events.slice(start, query.take === undefined ? undefined : start + query.take));
  }

  async countAuditEvents(where: AuditFilter): Promise<number> {
    return this.#auditMatching(where).length;
  }

  recordUsage(counts: UsageCount[]): Promise<void> {
    return this.#exclusive(() => {
      for (const count of counts) {
        const name = `${count.key_id ?? ""}|${count.hour.getTime()}|${count.code}`;
        const stored = this.#data.usage.get(name);
        if (stored) stored.count += count.count;
        else this.#data.usage.set(name, { ...count, hour: new Date(count.hour) });
      }
    });
  }

  async findUsage(query: UsageQuery): Promise<UsageCount[]> {
    const owned = (id: string | null) => id !== null && this.#data.keys.get(id)?.owner_id === query.owner_id;
    return [...this.#data.usage.values()]
      .filter((count) => count.hour >= query.from && count.hour <= query.to)
      .filter((count) => query.key_id === undefined || count.key_id === query.key_id)
      .filter((count) => query.owner_id === undefined || owned(count.key_id))
      .map((count) => ({ ...count, hour: new Date(count.hour) }));
  }

  deleteUsageBefore(hour: Date): Promise<void> {
    return this.#exclusive(() => {
      for (const [name, count] of this.#data.usage) if (count.hour < hour) this.#data.usage.delete(name);
    });
  }

  /** A key with a format-1 token (absent counts as 1) that is not revoked by `now`. */
  async hasLegacyTokens(now: Date): Promise<boolean> {
    return [...this.#data.keys.values()].some(
      (record) => (record.token_format ?? 1) === 1 && (record.revoked_at === null || record.revoked_at > now),
    );
  }

  /** Imported keys (format 3) not revoked by `now`, and those of them still holding Medusa's hash. */
  async importedKeys(now: Date): Promise<{ live: number; awaiting: number }> {
    const live = [...this.#data.keys.values()].filter(
      (record) => record.token_format === IMPORTED_TOKEN_FORMAT && (record.revoked_at === null || record.revoked_at > now),
    );
    return { live: live.length, awaiting: live.filter((record) => record.token.startsWith(IMPORTED_HASH_PREFIX)).length };
  }

  async loadSecret(name: string, create: () => string): Promise<string> {
    if (!this.#secrets.has(name)) this.#secrets.set(name, create());
    return this.#secrets.get(name)!;
  }
}

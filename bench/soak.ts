// Soak: two app instances on one PostgreSQL and one Redis, mixed traffic of valid, invalid,
// revoked and scheduled-revoked keys while keys are created, rolled, revoked and deleted.
// Every answer is checked against a model of which keys are valid at that instant, allowing
// only the propagation bound. `npm run soak` runs 60 s; SOAK_SECONDS changes it.
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import express from "express";
import type { Knex } from "knex";
import knexFactory from "knex";
import { type ApiKeyService, apiKeyAuth, initialize } from "../index";
import { generateToken } from "../lib/tokens";

/** How late another instance may still accept a revoked key (the Redis pub/sub bound). */
export const PROPAGATION_BOUND_MS = 100;

export interface SoakReport {
  seconds: number;
  requests: number;
  mutations: number;
  false_accepts: number;
  false_rejects: number;
  server_errors: number;
  memory_start_mib: number;
  memory_end_mib: number;
  problems: string[];
}

interface ModelKey {
  id: string;
  token: string;
  type: "secret" | "publishable";
  /** When the create call returned: from then on the key must work. */
  usableFrom: number;
  /** The instant it stops working (revoked_at), if revoked or scheduled. */
  revokedAt: number | null;
  deleted: boolean;
}

const pick = <T>(items: T[]): T => items[Math.floor(Math.random() * items.length)]!;

function header(key: { token: string; type: string }): Record<string, string> {
  return key.type === "secret"
    ? { authorization: `Basic ${Buffer.from(`${key.token}:`).toString("base64")}` }
    : { "x-publishable-api-key": key.token };
}

async function listen(service: ApiKeyService): Promise<{ server: Server; base: string }> {
  const app = express();
  app.get("/admin", apiKeyAuth({ service }), (_req, res) => void res.json({ ok: true }));
  app.get("/store", apiKeyAuth({ service, type: "publishable" }), (_req, res) => void res.json({ ok: true }));
  const server = await new Promise<Server>((resolve) => {
    const listening = app.listen(0, "127.0.0.1", () => resolve(listening));
  });
  return { server, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

export async function runSoak(options: { seconds: number; database: Knex | string; redis: string }): Promise<SoakReport> {
  const mib = () => process.memoryUsage().rss / 1024 / 1024;
  const memoryStart = mib();
  const knex = typeof options.database === "string" ? knexFactory({ client: "pg", connection: options.database }) : options.database;
  const schema = `soak_${process.pid}_${randomBytes(3).toString("hex")}`;
  const prefix = `soak:${randomBytes(4).toString("hex")}:`;
  const open = () => initialize({ database: knex, schema, redis: options.redis, cache: { redisPrefix: prefix } });
  const instances = [await open(), await open()];
  const servers = await Promise.all(instances.map(listen));
  const keys: ModelKey[] = [];
  const report: SoakReport = {
    seconds: options.seconds,
    requests: 0,
    mutations: 0,
    false_accepts: 0,
    false_rejects: 0,
    server_errors: 0,
    memory_start_mib: memoryStart,
    memory_end_mib: 0,
    problems: [],
  };
  const problem = (text: string) => {
    if (report.problems.length < 20) report.problems.push(text);
  };

  async function create(type: "secret" | "publishable"): Promise<void> {
    const key = await pick(instances).createApiKeys({ title: "soak", type, created_by: "soak" });
    keys.push({ id: key.id, token: key.token, type, usableFrom: Date.now(), revokedAt: null, deleted: false });
  }

  async function mutate(): Promise<void> {
    const live = keys.filter((key) => key.revokedAt === null && !key.deleted);
    const action = Math.random();
    if (action < 0.3 || live.length < 4) return create(Math.random() < 0.5 ? "secret" : "publishable");
    const service = pick(instances);
    const target = pick(live);
    if (action < 0.55) {
      const revokeIn = pick([0, 0, 1, 2]);
      const next = await service.roll(target.id, { revoked_by: "soak", revoke_in: revokeIn });
      keys.push({ id: next.id, token: next.token, type: target.type, usableFrom: Date.now(), revokedAt: null, deleted: false });
      target.revokedAt = (await service.retrieveApiKey(target.id)).revoked_at!.getTime();
    } else if (action < 0.85) {
      const revoked = await service.revoke(target.id, { revoked_by: "soak", revoke_in: pick([0, 0, 1]) });
      target.revokedAt = revoked.revoked_at!.getTime();
    } else {
      const gone = keys.find((key) => key.revokedAt !== null && key.revokedAt < Date.now() && !key.deleted);
      if (!gone) return;
      await service.deleteApiKeys(gone.id);
      gone.deleted = true;
    }
  }

  async function request(): Promise<void> {
    const { base } = pick(servers);
    const roll = Math.random();
    const known = keys.length > 0 && roll < 0.75 ? pick(keys) : undefined;
    const key = known ?? { token: roll < 0.9 ? generateToken(Math.random() < 0.5 ? "secret" : "publishable") : `sk_${randomBytes(20).toString("hex")}`, type: Math.random() < 0.5 ? "secret" : "publishable" };
    const path = key.type === "secret" ? "/admin" : "/store";
    const started = Date.now();
    const response = await fetch(`${base}${path}`, { headers: header(key) });
    const ended = Date.now();
    await response.arrayBuffer();
    report.requests++;
    if (response.status >= 500) {
      report.server_errors++;
      problem(`${response.status} for ${key.token.slice(0, 6)}`);
      return;
    }
    const accepted = response.status === 200;
    if (!known) {
      if (accepted) {
        report.false_accepts++;
        problem(`unknown token accepted on ${base}`);
      }
      return;
    }
    const revokedBy = known.revokedAt;
    if (accepted && revokedBy !== null && started > revokedBy + PROPAGATION_BOUND_MS) {
      report.false_accepts++;
      problem(`${known.id} accepted ${started - revokedBy} ms after its revocation`);
    }
    if (!accepted && started >= known.usableFrom && (revokedBy === null || ended < revokedBy)) {
      report.false_rejects++;
      problem(`${known.id} rejected (${response.status}) while valid`);
    }
  }

  try {
    for (let i = 0; i < 6; i++) await create(i % 2 ? "secret" : "publishable");
    const deadline = Date.now() + options.seconds * 1000;
    const mutator = (async () => {
      while (Date.now() < deadline) {
        try {
          await mutate();
          report.mutations++;
        } catch (error) {
          // Concurrent traffic cannot make a mutation invalid; any failure here is a finding.
          problem(`mutation failed: ${String(error)}`);
        }
        await sleep(25);
      }
    })();
    const workers = Array.from({ length: 8 }, async () => {
      while (Date.now() < deadline) await request();
    });
    await Promise.all([mutator, ...workers]);
  } finally {
    for (const { server } of servers) server.close();
    await Promise.all(instances.map((instance) => instance.close()));
    await knex.raw("drop schema if exists ?? cascade", [schema]);
    if (typeof options.database === "string") await knex.destroy();
  }
  report.memory_end_mib = mib();
  return report;
}

if (require.main === module) {
  const seconds = Number(process.env.SOAK_SECONDS ?? 60);
  const database = process.env.SOAK_DATABASE ?? "postgres://postgres@127.0.0.1:5432/test";
  const redis = process.env.SOAK_REDIS ?? "redis://127.0.0.1:6379";
  console.error(`soak: ${seconds} s, two instances on one PostgreSQL and one Redis ...`);
  runSoak({ seconds, database, redis }).then(
    (report) => {
      console.log(`requests          ${report.requests}`);
      console.log(`mutations         ${report.mutations}`);
      console.log(`false accepts     ${report.false_accepts}   (must be 0)`);
      console.log(`false rejects     ${report.false_rejects}   (must be 0, outside the ${PROPAGATION_BOUND_MS} ms bound)`);
      console.log(`5xx               ${report.server_errors}   (must be 0)`);
      console.log(`memory            ${report.memory_start_mib.toFixed(0)} MiB at start, ${report.memory_end_mib.toFixed(0)} MiB at end`);
      for (const line of report.problems) console.log(`  ${line}`);
      process.exitCode = report.false_accepts + report.false_rejects + report.server_errors + report.problems.length === 0 ? 0 : 1;
    },
    (error: unknown) => {
      console.error(error);
      process.exitCode = 1;
    },
  );
}

/**
 * The chaos suite's own services: the state dir and port offset it was given, the URLs that
 * `scripts/services env` prints for them, `scripts/services down|up SERVICE` for the faults, and
 * the per-run Postgres database and Kafka topic.
 *
 * The suite refuses to run against the default state dir: its faults stop services, and the
 * default services belong to every other test run on this machine.
 */
import { spawn } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import pg from 'pg';
import { AbortedError, SetupError, log, sleep } from './common';

export const repoRoot = resolve(__dirname, '../..');

export type ServiceName = 'etcd' | 'postgres' | 'redis' | 'kafka';

export interface ChaosServices {
  stateDir: string;
  portOffset: number;
  etcd: string;
  postgres: string;
  redis: string;
  kafkaBrokers: string[];
}

function realpathOrSelf(path: string): string {
  return existsSync(path) ? realpathSync(path) : resolve(path);
}

/** Runs `bash scripts/services ARGS...` with this process's environment; resolves with its stdout. */
export function runServices(
  args: string[],
  timeoutMs: number,
  abort?: AbortSignal,
): Promise<string> {
  return new Promise((resolveRun, reject) => {
    if (abort?.aborted) return reject(new AbortedError());
    const child = spawn('bash', ['scripts/services', ...args], {
      cwd: repoRoot,
      env: process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
    const onAbort = (): void => {
      child.kill('SIGTERM');
    };
    abort?.addEventListener('abort', onAbort, { once: true });
    child.once('error', (error) => {
      clearTimeout(timer);
      abort?.removeEventListener('abort', onAbort);
      reject(error);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      abort?.removeEventListener('abort', onAbort);
      if (abort?.aborted) return reject(new AbortedError());
      if (code === 0) return resolveRun(stdout);
      const tail = stderr.trim().split('\n').slice(-15).join('\n');
      reject(
        new SetupError(
          `scripts/services ${args.join(' ')} failed (${signal ?? `exit ${code}`}):\n${tail}`,
        ),
      );
    });
  });
}

/** The suite's services, from its environment; refuses the default state dir. */
export async function chaosServices(): Promise<ChaosServices> {
  const stateVar = process.env['HOURGLASS_STATE_DIR']?.trim();
  const offsetVar = process.env['HOURGLASS_PORT_OFFSET']?.trim();
  if (!stateVar || !offsetVar) {
    throw new SetupError(
      'HOURGLASS_STATE_DIR and HOURGLASS_PORT_OFFSET must name the suite’s own services ' +
        '(run it through `npm run chaos`, i.e. scripts/chaos/run)',
    );
  }
  const stateDir = realpathOrSelf(stateVar);
  if (stateDir === realpathOrSelf(resolve(repoRoot, '.hourglass'))) {
    throw new SetupError(
      `refusing to run against the default state dir ${stateDir}: its services are shared ` +
        'with every other test run, and the faults stop them',
    );
  }
  const portOffset = Number(offsetVar);
  if (!Number.isInteger(portOffset) || portOffset === 0) {
    throw new SetupError(`HOURGLASS_PORT_OFFSET must be a non-zero integer, got ${offsetVar}`);
  }
  const env = new Map<string, string>();
  for (const line of (await runServices(['env'], 30_000)).split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) env.set(line.slice(0, eq), line.slice(eq + 1));
  }
  const pick = (name: string): string => {
    const value = env.get(name);
    if (!value) throw new SetupError(`scripts/services env printed no ${name}`);
    return value;
  };
  return {
    stateDir,
    portOffset,
    etcd: pick('HOURGLASS_ETCD'),
    postgres: pick('HOURGLASS_PG'),
    redis: pick('HOURGLASS_REDIS'),
    kafkaBrokers: pick('HOURGLASS_KAFKA').split(','),
  };
}

/** A kafkajs client that keeps retrying through a broker restart instead of giving up. */
export function kafka(brokers: string[], clientId: string): Kafka {
  return new Kafka({
    clientId,
    brokers,
    logLevel: logLevel.NOTHING,
    connectionTimeout: 2_000,
    requestTimeout: 10_000,
    retry: { retries: 12, initialRetryTime: 100, maxRetryTime: 1_000 },
  });
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

/**
 * A fresh database `chaos_<run>` in the suite's Postgres; the databases of earlier runs are
 * dropped first (the last run's is kept until the next run, for inspection).
 */
export async function freshDatabase(postgresUrl: string, runId: string): Promise<string> {
  const name = `chaos_${runId}`;
  const client = new pg.Client({ connectionString: withDatabase(postgresUrl, 'postgres') });
  await client.connect();
  try {
    const old = await client.query<{ datname: string }>(
      "SELECT datname FROM pg_database WHERE datname LIKE 'chaos\\_%'",
    );
    for (const { datname } of old.rows) {
      await client.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
    }
    await client.query(`CREATE DATABASE "${name}"`);
  } finally {
    await client.end();
  }
  return withDatabase(postgresUrl, name);
}

/**
 * Creates the run's topic with broker-side timestamps (`LogAppendTime`: every record carries the
 * time Kafka appended it, whatever the consumer's own lag) and waits until every partition has a
 * leader; then deletes the topics of earlier runs (best effort).
 */
export async function createRunTopic(
  brokers: string[],
  topic: string,
  partitions: number,
): Promise<void> {
  const admin = kafka(brokers, 'hourglass-chaos-admin').admin();
  await admin.connect();
  try {
    await admin.createTopics({
      topics: [
        {
          topic,
          numPartitions: partitions,
          replicationFactor: 1,
          configEntries: [{ name: 'message.timestamp.type', value: 'LogAppendTime' }],
        },
      ],
      timeout: 30_000,
    });
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
        const found = topics.find((t) => t.name === topic);
        if (
          found &&
          found.partitions.length === partitions &&
          found.partitions.every((p) => p.leader >= 0)
        )
          break;
      } catch {
        // UNKNOWN_TOPIC_OR_PARTITION while the creation propagates
      }
      if (Date.now() > deadline) throw new SetupError(`topic ${topic} has no leaders after 30 s`);
      await sleep(100);
    }
    const old = (await admin.listTopics()).filter(
      (name) => name.startsWith('chaos.') && name !== topic,
    );
    if (old.length > 0) {
      log(`deleting ${old.length} topic(s) of earlier runs`);
      await admin.deleteTopics({ topics: old, timeout: 30_000 }).catch(() => undefined);
    }
  } finally {
    await admin.disconnect();
  }
}

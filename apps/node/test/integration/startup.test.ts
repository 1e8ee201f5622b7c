/**
 * A node whose start fails says why (which port, which schema problem) and leaves nothing open:
 * no pools, Redis or Kafka connections, timers, etcd client or listening socket. The leak check is
 * the strongest there is: a child process that runs startNode, catches the failure and then
 * simply returns must exit by itself (support/start-attempts.ts never calls process.exit).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import type { Server } from 'node:net';
import { resolve } from 'node:path';
import { PgMessageStore, SchemaMismatchError } from '@hourglass/postgres';
import type { TestDatabase } from '@hourglass/testkit';
import { createTestDatabase, etcdPrefix, redisPrefix, serviceUrls } from '@hourglass/testkit';
import { Client } from 'pg';
import { ListenError } from '../../src/node';
import type { ConfigOverrides } from '../support/harness';
import { freePort, startInProcess, testConfig } from '../support/harness';

const repoRoot = resolve(__dirname, '../../../..');

interface Attempt {
  attempt?: number;
  ok?: boolean;
  name?: string;
  message?: string;
  httpUrl?: string;
  stillOpen?: string[];
}

/** Runs support/start-attempts.ts; resolves with its JSON lines once it exited by itself. */
function runAttempts(
  attempts: ConfigOverrides[],
  exitWithinMs: number,
): Promise<{ code: number | null; lines: Attempt[]; output: string }> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(
      process.execPath,
      ['--require', 'tsx/cjs', 'apps/node/test/support/start-attempts.ts'],
      {
        cwd: repoRoot,
        env: { ...process.env, HG_START_ATTEMPTS: JSON.stringify(attempts) },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(
          `the process did not exit within ${exitWithinMs} ms after its start attempts: something was left open\n${output}`,
        ),
      );
    }, exitWithinMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      const lines = output
        .split('\n')
        .filter((line) => line.startsWith('{"attempt"') || line.startsWith('{"stillOpen"'))
        .map((line) => JSON.parse(line) as Attempt);
      resolveRun({ code, lines, output });
    });
  });
}

/** A listening socket on a free loopback port, standing for "some other process holds it". */
async function holdPort(): Promise<{ port: number; server: Server }> {
  const server = createServer();
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolveListen());
  });
  const address = server.address();
  assert.ok(address && typeof address === 'object');
  return { port: address.port, server };
}

describe('node start failures: a clear error, and nothing left open', function () {
  this.timeout(60_000);
  const urls = serviceUrls();
  let db: TestDatabase;
  let held: { port: number; server: Server };
  let base: ConfigOverrides;

  before(async () => {
    db = await createTestDatabase();
    held = await holdPort();
    base = {
      postgres: { url: db.connectionString },
      kafka: { brokers: urls.kafkaBrokers, createTopics: false },
      redis: { url: urls.redis, keyPrefix: redisPrefix() },
      etcd: { endpoints: [urls.etcd] },
      apps: [],
    };
  });

  after(async () => {
    await new Promise((resolveClose) => held?.server.close(resolveClose));
    await db?.drop();
  });

  it('refuses a taken HTTP port at once, naming the port and the key to change', async () => {
    const started = Date.now();
    await assert.rejects(
      startInProcess(testConfig({ ...base, http: { port: held.port } })),
      (error) => {
        assert.ok(error instanceof ListenError, String(error));
        assert.equal(error.listener, 'HTTP');
        assert.equal(error.port, held.port);
        assert.match(
          error.message,
          new RegExp(`127\\.0\\.0\\.1:${held.port}: port ${held.port} is already in use`),
        );
        assert.match(error.message, /http\.port \(HOURGLASS__HTTP__PORT\)/);
        return true;
      },
    );
    // Refused before connecting to anything: no etcd join (and rebalance) for a node that cannot serve.
    assert.ok(Date.now() - started < 2_000, `took ${Date.now() - started} ms`);
  });

  it('refuses a taken gRPC port, naming the gRPC port', async () => {
    await assert.rejects(
      startInProcess(testConfig({ ...base, grpc: { port: held.port } })),
      (error) => {
        assert.ok(error instanceof ListenError, String(error));
        assert.equal(error.listener, 'gRPC');
        assert.match(
          error.message,
          new RegExp(`gRPC on 127\\.0\\.0\\.1:${held.port}: port ${held.port} is already in use`),
        );
        assert.match(error.message, /grpc\.port \(HOURGLASS__GRPC__PORT\)/);
        return true;
      },
    );
  });

  it('stops what it started when a later step fails: the process exits by itself, and a start on free ports then works', async () => {
    const [httpPort, grpcPort] = [await freePort(), await freePort()];
    const { code, lines, output } = await runAttempts(
      [
        // Fails at the coordinator, after Postgres (migrated), Redis, Kafka and the engine started.
        {
          ...base,
          cluster: { mode: 'etcd', etcdPrefix: etcdPrefix().replace(/\/$/, '') },
          etcd: { endpoints: [`http://127.0.0.1:${await freePort()}`] },
        },
        { ...base, grpc: { port: held.port } },
        { ...base, http: { port: httpPort }, grpc: { port: grpcPort } },
      ],
      30_000,
    );
    assert.equal(code, 0, output);
    assert.deepEqual(
      lines.map((line) => [line.attempt, line.ok, line.name]),
      [
        [0, false, 'HourglassError'],
        [1, false, 'ListenError'],
        [2, true, undefined],
      ],
      output,
    );
    assert.match(lines[0]?.message ?? '', /etcd is unavailable/);
    assert.match(lines[1]?.message ?? '', new RegExp(`port ${held.port} is already in use`));
    assert.equal(lines[2]?.httpUrl, `http://127.0.0.1:${httpPort}`);
  });

  it('refuses a schema that does not match its recorded migrations, saying what is wrong and how to reset it', async () => {
    const broken = await createTestDatabase();
    try {
      // What an early text of 002_apps left behind: version 2 recorded, no cluster id.
      await new PgMessageStore({ connectionString: broken.connectionString }).migrate(256);
      const client = new Client({ connectionString: broken.connectionString });
      await client.connect();
      try {
        await client.query(`DELETE FROM cluster_meta WHERE key = 'cluster_id'`);
      } finally {
        await client.end();
      }
      const config = testConfig({ ...base, postgres: { url: broken.connectionString } });
      await assert.rejects(startInProcess(config), (error) => {
        assert.ok(error instanceof SchemaMismatchError, String(error));
        assert.match(
          error.message,
          /schema_migrations records 002_apps, but cluster_meta has no cluster_id row/,
        );
        assert.match(
          error.message,
          new RegExp(`DROP SCHEMA "${broken.schema}" CASCADE; CREATE SCHEMA "${broken.schema}"`),
        );
        return true;
      });
    } finally {
      await broken.drop();
    }
  });
});

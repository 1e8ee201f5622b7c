/**
 * Issue #7 end to end on an in-process node against the real Postgres, Redis and Kafka: apps and
 * tokens in Postgres, topic grants, quotas in Redis (and what a Redis outage does), the admin API
 * behind the admin token, the `hourglass` CLI, and tokens never stored or logged in clear.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import type { HourglassConfig } from '@hourglass/config';
import type { KafkaCollector, TestDatabase } from '@hourglass/testkit';
import {
  collectKafka,
  createTestDatabase,
  createTopics,
  deleteTopics,
  kafkaClient,
  randomTopicName,
  redisPrefix,
  serviceUrls,
} from '@hourglass/testkit';
import { Client } from 'pg';
import pino from 'pino';
import { openApiDocument } from '@hourglass/http-api';
import { startNode } from '../../src/node';
import type { RunningNode } from '../../src/node';
import { api, testConfig } from '../support/harness';

const ADMIN = 'admin-secret-0001';
const BOOT_TOKEN = 'boot-token-0001';
const CLI = resolve(__dirname, '../../../cli/bin/hourglass');
const run = promisify(execFile);

type ErrorBody = { error: { code: string; message: string; details?: Array<{ path: string }> } };
type AppBody = { name: string; topics: string[]; disabled: boolean; tokens: unknown[] };
type Issued = { app: AppBody; token: string };

/** Everything the node logs, as text: the test greps it for tokens. */
class LogCapture extends Writable {
  text = '';
  override _write(chunk: Buffer, _encoding: BufferEncoding, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

async function sql<T = Record<string, unknown>>(
  db: TestDatabase,
  text: string,
  values?: unknown[],
): Promise<T[]> {
  const client = new Client({ connectionString: db.connectionString });
  await client.connect();
  try {
    return (await client.query(text, values)).rows as T[];
  } finally {
    await client.end();
  }
}

function nodeConfig(db: TestDatabase, overrides: Record<string, unknown> = {}): HourglassConfig {
  const urls = serviceUrls();
  return testConfig({
    postgres: { url: db.connectionString },
    kafka: { brokers: urls.kafkaBrokers, createTopics: false, topicPartitions: 1 },
    redis: { url: urls.redis, keyPrefix: redisPrefix() },
    grpc: { port: 0 },
    auth: { adminToken: ADMIN },
    apps: [],
    ...overrides,
  });
}

describe('apps, topics, quotas and the admin API (issue #7)', function () {
  const urls = serviceUrls();
  const logs = new LogCapture();
  const issuedTokens: string[] = [BOOT_TOKEN];
  let db: TestDatabase;
  let node: RunningNode;
  let topic: string;
  let otherTopic: string;
  const createdTopics: string[] = [];

  const admin = <T = Record<string, unknown>>(method: string, path: string, body?: unknown) =>
    api<T>(node.httpUrl, method, path, ADMIN, body);
  const createApp = async (name: string, extra: Record<string, unknown> = {}): Promise<string> => {
    const response = await admin<Issued>('POST', '/v1/admin/apps', { name, ...extra });
    assert.equal(response.status, 201, JSON.stringify(response.body));
    issuedTokens.push(response.body.token);
    return response.body.token;
  };

  before(async () => {
    db = await createTestDatabase();
    topic = randomTopicName('admin');
    otherTopic = randomTopicName('admin-other');
    await createTopics(urls.kafkaBrokers, [topic, otherTopic], 1);
    node = await startNode(
      nodeConfig(db, {
        apps: [{ name: 'boot', token: BOOT_TOKEN, topics: [topic] }],
        log: { level: 'debug' },
      }),
      pino({ level: 'debug' }, logs),
    );
  });

  after(async () => {
    await node?.stop();
    await deleteTopics(urls.kafkaBrokers, [topic, otherTopic, ...createdTopics]).catch(
      () => undefined,
    );
    await db?.drop();
  });

  it('bootstraps config apps into Postgres, with the config token working', async () => {
    const rows = await sql<{ name: string }>(db, 'SELECT name FROM apps');
    assert.deepEqual(
      rows.map((r) => r.name),
      ['boot'],
    );
    const sent = await api(node.httpUrl, 'POST', '/v1/messages', BOOT_TOKEN, {
      topic,
      payload: 1,
      delayMs: 60_000,
    });
    assert.equal(sent.status, 201, JSON.stringify(sent.body));
  });

  it('rejects app tokens (403 forbidden) and missing or unknown tokens (401) on every admin route of the OpenAPI document', async () => {
    const appToken = await createApp('probe', { topics: [topic] });
    const params: Record<string, string> = { app: 'boot', id: 'm1', topic, slot: '0' };
    const routes: Array<[string, string]> = [];
    for (const [template, item] of Object.entries(
      openApiDocument.paths as Record<string, Record<string, unknown>>,
    )) {
      if (!template.startsWith('/v1/admin')) continue;
      for (const method of ['get', 'post', 'put', 'patch', 'delete']) {
        if (!item[method]) continue;
        routes.push([
          method.toUpperCase(),
          template.replace(/\{(\w+)\}/g, (_m, name: string) => params[name] ?? 'node-1'),
        ]);
      }
    }
    // The colleague's cluster routes are in the document too; make sure the iteration saw them.
    assert.ok(routes.some(([, path]) => path === '/v1/admin/cluster'));
    assert.ok(routes.some(([, path]) => path.startsWith('/v1/admin/slots/')));
    assert.ok(routes.length >= 17, `only ${routes.length} admin routes`);
    for (const [method, path] of routes) {
      const body = method === 'GET' || method === 'DELETE' ? undefined : {};
      const asApp = await api<ErrorBody>(node.httpUrl, method, path, appToken, body);
      assert.equal(
        asApp.status,
        403,
        `${method} ${path} with an app token: ${JSON.stringify(asApp.body)}`,
      );
      assert.equal(asApp.body.error.code, 'forbidden');
      const anonymous = await api<ErrorBody>(node.httpUrl, method, path, null, body);
      assert.equal(anonymous.status, 401, `${method} ${path} without a token`);
      const unknown = await api<ErrorBody>(node.httpUrl, method, path, 'not-a-token-at-all', body);
      assert.equal(unknown.status, 401, `${method} ${path} with an unknown token`);
    }
    // Nothing was changed by the refused calls.
    assert.equal((await admin('GET', '/v1/admin/apps/boot')).status, 200);
  });

  it('validates admin bodies and parameters against the OpenAPI document', async () => {
    const bad = await admin<ErrorBody>('POST', '/v1/admin/apps', {
      name: 'Not Valid',
      quotas: { ratePerSecond: -1 },
      colour: 'red',
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'invalid_request');
    assert.deepEqual(bad.body.error.details?.map((d) => d.path).sort(), [
      'colour',
      'name',
      'quotas/ratePerSecond',
    ]);
    const slot = await admin<ErrorBody>('PUT', '/v1/admin/slots/abc/pin', { node: 'x' });
    assert.equal(slot.status, 400);
    assert.equal(
      (await admin<ErrorBody>('POST', '/v1/admin/apps', 'not json')).body.error.code,
      'malformed_json',
    );
    assert.equal(
      (await api(node.httpUrl, 'POST', '/v1/admin/apps', ADMIN, 'name=x', 'text/plain')).status,
      415,
    );
    const served = await api<{ openapi: string; paths: Record<string, unknown> }>(
      node.httpUrl,
      'GET',
      '/v1/openapi.json',
      null,
    );
    assert.equal(served.status, 200);
    assert.equal(served.body.openapi, '3.1.0');
    assert.ok(served.body.paths['/v1/admin/apps/{app}/quotas']);
  });

  it("keeps apps apart: no reading or cancelling another app's messages, no publishing to topics not granted", async () => {
    const a = await createApp('alpha', { topics: [topic] });
    const b = await createApp('beta', { topics: [otherTopic] });
    const sent = await api<{ id: string }>(node.httpUrl, 'POST', '/v1/messages', a, {
      id: 'secret-1',
      topic,
      payload: 1,
      delayMs: 600_000,
    });
    assert.equal(sent.status, 201);
    assert.equal((await api(node.httpUrl, 'GET', '/v1/messages/secret-1', b)).status, 404);
    assert.equal((await api(node.httpUrl, 'DELETE', '/v1/messages/secret-1', b)).status, 404);
    const denied = await api<ErrorBody>(node.httpUrl, 'POST', '/v1/messages', b, {
      topic,
      payload: 1,
      delayMs: 5,
    });
    assert.equal(denied.status, 403);
    assert.equal(denied.body.error.code, 'topic_not_allowed');
    // The admin sees and cancels any app's message.
    const seen = await admin<{ app: string; state: string }>(
      'GET',
      '/v1/admin/messages/alpha/secret-1',
    );
    assert.equal(seen.status, 200);
    assert.equal(seen.body.app, 'alpha');
    assert.equal((await admin('GET', '/v1/admin/messages/beta/secret-1')).status, 404);
    assert.deepEqual((await admin('DELETE', '/v1/admin/messages/alpha/secret-1')).body, {
      id: 'secret-1',
      state: 'cancelled',
    });
    // Revoking takes effect at once (the caches are invalidated), and granting again restores it.
    assert.equal((await admin('DELETE', `/v1/admin/apps/alpha/topics/${topic}`)).status, 200);
    assert.equal(
      (await api(node.httpUrl, 'POST', '/v1/messages', a, { topic, payload: 1, delayMs: 5 }))
        .status,
      403,
    );
    assert.equal((await admin('POST', '/v1/admin/apps/alpha/topics', { topic })).status, 200);
    assert.equal(
      (await api(node.httpUrl, 'POST', '/v1/messages', a, { topic, payload: 1, delayMs: 600_000 }))
        .status,
      201,
    );
  });

  it("refuses a disabled app (403) until it is enabled again; a deleted app's token is unknown (401)", async () => {
    const token = await createApp('sleepy', { topics: [topic] });
    assert.equal(
      (
        await api(node.httpUrl, 'POST', '/v1/messages', token, {
          topic,
          payload: 1,
          delayMs: 600_000,
        })
      ).status,
      201,
    );
    assert.equal(
      (await admin<AppBody>('PATCH', '/v1/admin/apps/sleepy', { disabled: true })).body.disabled,
      true,
    );
    for (const [method, path, body] of [
      ['POST', '/v1/messages', { topic, payload: 1, delayMs: 5 }],
      ['POST', '/v1/messages/batch', { messages: [{ topic, payload: 1, delayMs: 5 }] }],
      ['GET', '/v1/messages/whatever', undefined],
    ] as const) {
      const refused = await api<ErrorBody>(node.httpUrl, method, path, token, body);
      assert.equal(refused.status, 403, `${method} ${path}`);
      assert.equal(refused.body.error.code, 'forbidden');
    }
    await admin('PATCH', '/v1/admin/apps/sleepy', { disabled: false });
    assert.equal(
      (
        await api(node.httpUrl, 'POST', '/v1/messages', token, {
          topic,
          payload: 2,
          delayMs: 600_000,
        })
      ).status,
      201,
    );
    assert.equal((await admin('DELETE', '/v1/admin/apps/sleepy')).status, 200);
    assert.equal(
      (await api(node.httpUrl, 'POST', '/v1/messages', token, { topic, payload: 3, delayMs: 5 }))
        .status,
      401,
    );
    assert.equal((await admin('GET', '/v1/admin/apps/sleepy')).status, 404);
  });

  it('rotates tokens: the old one works during the grace period, and not after a rotation with no grace', async () => {
    const first = await createApp('rotor', { topics: [topic] });
    const rotated = await admin<Issued & { graceSeconds: number }>(
      'POST',
      '/v1/admin/apps/rotor/tokens',
      { graceSeconds: 600 },
    );
    assert.equal(rotated.status, 201);
    issuedTokens.push(rotated.body.token);
    assert.notEqual(rotated.body.token, first);
    assert.match(rotated.body.token, /^hg_[A-Za-z0-9_-]{43}$/);
    for (const token of [first, rotated.body.token]) {
      assert.equal(
        (
          await api(node.httpUrl, 'POST', '/v1/messages', token, {
            topic,
            payload: 1,
            delayMs: 600_000,
          })
        ).status,
        201,
      );
    }
    const hard = await admin<Issued>('POST', '/v1/admin/apps/rotor/tokens', { graceSeconds: 0 });
    issuedTokens.push(hard.body.token);
    assert.equal(hard.body.app.tokens.length, 1);
    for (const token of [first, rotated.body.token]) {
      assert.equal(
        (await api(node.httpUrl, 'POST', '/v1/messages', token, { topic, payload: 1, delayMs: 5 }))
          .status,
        401,
      );
    }
    assert.equal(
      (
        await api(node.httpUrl, 'POST', '/v1/messages', hard.body.token, {
          topic,
          payload: 1,
          delayMs: 600_000,
        })
      ).status,
      201,
    );
  });

  describe('quotas', () => {
    const pending = async (app: string): Promise<number> =>
      Number(
        (
          await sql<{ n: string }>(db, 'SELECT count(*) AS n FROM messages WHERE app = $1', [app])
        )[0]!.n,
      );

    it('answers 429 with Retry-After over the rate, and stores nothing of the refused request', async () => {
      const token = await createApp('busy', {
        topics: [topic],
        quotas: { ratePerSecond: 0.5, burst: 2 },
      });
      const statuses: number[] = [];
      let refused: Awaited<ReturnType<typeof api<ErrorBody>>> | undefined;
      for (let i = 0; i < 3; i++) {
        const response = await api<ErrorBody>(node.httpUrl, 'POST', '/v1/messages', token, {
          id: `r${i}`,
          topic,
          payload: i,
          delayMs: 600_000,
        });
        statuses.push(response.status);
        if (response.status === 429) refused = response;
      }
      assert.deepEqual(statuses, [201, 201, 429]);
      assert.equal(refused?.body.error.code, 'rate_limited');
      const retryAfter = Number(refused?.headers.get('retry-after'));
      assert.ok(retryAfter >= 1 && retryAfter <= 2, `Retry-After ${retryAfter}`);
      const batch = await api<ErrorBody>(node.httpUrl, 'POST', '/v1/messages/batch', token, {
        messages: [{ id: 'b1', topic, payload: 1, delayMs: 5 }],
      });
      assert.equal(batch.status, 429);
      assert.equal(await pending('busy'), 2);
      assert.equal(
        (await sql(db, "SELECT 1 FROM messages WHERE app = 'busy' AND id IN ('r2', 'b1')")).length,
        0,
      );
    });

    it('caps pending messages, and applies per-app payload and delay limits', async () => {
      const token = await createApp('hoarder', {
        topics: [topic],
        quotas: { maxPending: 2, maxPayloadBytes: 16, maxDelayMs: 3_600_000 },
      });
      assert.equal(
        (
          await api(node.httpUrl, 'POST', '/v1/messages', token, {
            id: 'p1',
            topic,
            payload: 1,
            delayMs: 600_000,
          })
        ).status,
        201,
      );
      assert.equal(
        (
          await api(node.httpUrl, 'POST', '/v1/messages', token, {
            id: 'p2',
            topic,
            payload: 2,
            delayMs: 600_000,
          })
        ).status,
        201,
      );
      const full = await api<ErrorBody>(node.httpUrl, 'POST', '/v1/messages', token, {
        id: 'p3',
        topic,
        payload: 3,
        delayMs: 600_000,
      });
      assert.equal(full.status, 429);
      assert.equal(full.body.error.code, 'rate_limited');
      assert.ok(Number(full.headers.get('retry-after')) >= 1);
      assert.equal(await pending('hoarder'), 2);
      const big = await api<ErrorBody>(node.httpUrl, 'POST', '/v1/messages', token, {
        topic,
        payload: 'x'.repeat(20),
        delayMs: 5,
      });
      assert.equal(big.status, 413);
      const far = await api<ErrorBody>(node.httpUrl, 'POST', '/v1/messages', token, {
        topic,
        payload: 1,
        delayMs: 7_200_000,
      });
      assert.equal(far.status, 400);
      assert.equal(far.body.error.code, 'delay_too_long');
      // Cancelling frees room once the counter is reconciled from Postgres (within 2 s).
      assert.equal((await api(node.httpUrl, 'DELETE', '/v1/messages/p1', token)).status, 200);
      await new Promise((r) => setTimeout(r, 2200));
      assert.equal(
        (
          await api(node.httpUrl, 'POST', '/v1/messages', token, {
            id: 'p4',
            topic,
            payload: 4,
            delayMs: 600_000,
          })
        ).status,
        201,
      );
      // Lifting the quotas takes effect at once.
      const lifted = await admin<AppBody>('PUT', '/v1/admin/apps/hoarder/quotas', {});
      assert.equal(lifted.status, 200);
      assert.equal(
        (
          await api(node.httpUrl, 'POST', '/v1/messages', token, {
            id: 'p5',
            topic,
            payload: 'x'.repeat(20),
            delayMs: 600_000,
          })
        ).status,
        201,
      );
    });
  });

  it('reports statistics: totals by state and app, pending by due-time bucket, number of apps', async () => {
    const stats = await admin<{
      apps: number;
      byState: Record<string, number>;
      byApp: Array<{ app: string }>;
      pendingByApp: Array<{ app: string; buckets: Record<string, number> }>;
    }>('GET', '/v1/admin/stats');
    assert.equal(stats.status, 200);
    const apps = (await sql<{ n: string }>(db, 'SELECT count(*) AS n FROM apps'))[0]!.n;
    assert.equal(stats.body.apps, Number(apps));
    const total = Number(
      (await sql<{ n: string }>(db, 'SELECT count(*) AS n FROM messages'))[0]!.n,
    );
    assert.equal(
      Object.values(stats.body.byState).reduce((a, b) => a + b, 0),
      total,
    );
    // rotor scheduled three messages due in 10 minutes; boot one due within the minute.
    const rotor = stats.body.pendingByApp.find((entry) => entry.app === 'rotor');
    assert.deepEqual(rotor?.buckets, {
      overdue: 0,
      within1m: 0,
      within1h: 3,
      within1d: 0,
      later: 0,
    });
    assert.equal(
      stats.body.pendingByApp.find((entry) => entry.app === 'boot')?.buckets.within1m,
      1,
    );
    assert.ok(stats.body.byApp.some((entry) => entry.app === 'alpha'));
  });

  it('takes a newcomer from nothing to a delivered message with the CLI', async () => {
    const newTopic = randomTopicName('newcomer');
    createdTopics.push(newTopic);
    const env = { ...process.env, HOURGLASS_URL: node.httpUrl, HOURGLASS_ADMIN_TOKEN: ADMIN };
    const cli = async (...args: string[]) => run(CLI, args, { env, timeout: 60_000 });

    const created = JSON.parse(
      (await cli('apps', 'create', 'newcomer', '--description', 'first app', '--json')).stdout,
    ) as Issued;
    issuedTokens.push(created.token);
    const added = await cli('topics', 'add', 'newcomer', newTopic, '--partitions', '1');
    assert.match(added.stdout, new RegExp(`topics:\\s+${newTopic}`));
    const listed = await cli('apps', 'list');
    assert.match(listed.stdout, /^NAME\s+DISABLED\s+TOPICS/);
    assert.match(listed.stdout, /newcomer/);

    const collector: KafkaCollector = await collectKafka(urls.kafkaBrokers, newTopic);
    try {
      const sent = await api<{ id: string }>(node.httpUrl, 'POST', '/v1/messages', created.token, {
        topic: newTopic,
        payload: { hello: 'world' },
        delayMs: 500,
      });
      assert.equal(sent.status, 201, JSON.stringify(sent.body));
      const record = await collector.waitForRecord(
        (r) => r.headers['hourglass-id'] === sent.body.id,
        20_000,
      );
      assert.equal(record.value.toString(), '{"hello":"world"}');
      const shown = await cli('messages', 'get', 'newcomer', sent.body.id);
      assert.match(shown.stdout, /state:\s+delivered/);
    } finally {
      await collector.stop();
    }
    // The topic really exists in Kafka with the partitions asked for.
    const kafkaAdmin = kafkaClient(urls.kafkaBrokers).admin();
    await kafkaAdmin.connect();
    try {
      const meta = await kafkaAdmin.fetchTopicMetadata({ topics: [newTopic] });
      assert.equal(meta.topics[0]?.partitions.length, 1);
    } finally {
      await kafkaAdmin.disconnect();
    }
    // Errors show the server's code; app tokens are refused; exit codes 1 and 2.
    await assert.rejects(
      cli('apps', 'get', 'nobody'),
      (error: { code: number; stderr: string }) =>
        error.code === 1 && /404 not_found/.test(error.stderr),
    );
    await assert.rejects(
      cli('apps', 'list', '--token', created.token),
      (error: { code: number; stderr: string }) =>
        error.code === 1 && /403 forbidden/.test(error.stderr),
    );
    await assert.rejects(cli('apps', 'frobnicate'), (error: { code: number }) => error.code === 2);
    const stats = await cli('stats');
    assert.match(stats.stdout, /^apps: \d+/);
  });

  it('never stores or logs a token in clear', async () => {
    assert.ok(issuedTokens.length >= 8);
    const tables = await sql<{ table_name: string }>(
      db,
      'SELECT table_name FROM information_schema.tables WHERE table_schema = $1',
      [db.schema],
    );
    assert.ok(tables.some((t) => t.table_name === 'app_tokens'));
    for (const { table_name } of tables) {
      const rows = await sql<{ row: string }>(db, `SELECT t::text AS row FROM "${table_name}" t`);
      for (const { row } of rows) {
        for (const token of issuedTokens)
          assert.ok(!row.includes(token), `a token in clear in ${table_name}`);
      }
    }
    assert.ok(logs.text.length > 1000, 'the node logged nothing?');
    assert.ok(logs.text.includes('"msg":"request"'), 'request logs were not captured');
    for (const token of issuedTokens)
      assert.ok(!logs.text.includes(token), 'a token in clear in the logs');
    assert.ok(!logs.text.includes(ADMIN), 'the admin token in the logs');
  });
});

describe('quotas while Redis is down', function () {
  for (const failMode of ['open', 'closed'] as const) {
    describe(`failMode: ${failMode}`, () => {
      let db: TestDatabase;
      let node: RunningNode;
      const topic = randomTopicName('redis-down');

      before(async () => {
        db = await createTestDatabase();
        node = await startNode(
          nodeConfig(db, {
            // Nothing listens on port 1: every Redis command fails at once.
            redis: { url: 'redis://127.0.0.1:1', keyPrefix: redisPrefix() },
            quotas: { failMode },
            apps: [{ name: 'plain', token: 'plain-token-0001', topics: [topic] }],
          }),
          pino({ level: 'silent' }),
        );
      });

      after(async () => {
        await node?.stop();
        await db?.drop();
      });

      it('keeps auth, reads and unthrottled apps working; quota-limited apps follow the fail mode', async () => {
        const created = await api<Issued>(node.httpUrl, 'POST', '/v1/admin/apps', ADMIN, {
          name: 'limited',
          topics: [],
          quotas: { ratePerSecond: 100 },
        });
        assert.equal(created.status, 201, JSON.stringify(created.body));
        // Kafka topic creation is not the point here: grant through the app's config-free path.
        const plain = await api(node.httpUrl, 'POST', '/v1/messages', 'plain-token-0001', {
          id: 'x1',
          topic,
          payload: 1,
          delayMs: 600_000,
        });
        assert.equal(plain.status, 201, JSON.stringify(plain.body));
        assert.equal(
          (await api(node.httpUrl, 'GET', '/v1/messages/x1', 'plain-token-0001')).status,
          200,
        );
        await sqlGrant(db, 'limited', topic);
        const limited = await api<ErrorBody>(
          node.httpUrl,
          'POST',
          '/v1/messages',
          created.body.token,
          { id: 'y1', topic, payload: 1, delayMs: 600_000 },
        );
        if (failMode === 'open') {
          assert.equal(limited.status, 201, JSON.stringify(limited.body));
        } else {
          assert.equal(limited.status, 503, JSON.stringify(limited.body));
          assert.equal(limited.body.error.code, 'unavailable');
          assert.equal((await sql(db, "SELECT 1 FROM messages WHERE app = 'limited'")).length, 0);
        }
      });
    });
  }
});

/** A grant written straight to Postgres: the node reads it on the next uncached lookup (nothing cached it yet). */
async function sqlGrant(db: TestDatabase, app: string, topic: string): Promise<void> {
  await sql(db, 'INSERT INTO app_topics (app, topic, granted_at) VALUES ($1, $2, 0)', [app, topic]);
}

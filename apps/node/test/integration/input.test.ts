/**
 * "No 5xx for any input": what the fuzzer (npm run fuzz) found, end to end on an in-process node
 * against the real Postgres, Redis and Kafka. Bad input gets a 4xx with a stable code and details
 * naming the field; in a batch only the offending entry fails.
 */
import assert from 'node:assert/strict';
import type { TestDatabase } from '@hourglass/testkit';
import {
  createTestDatabase,
  createTopics,
  deleteTopics,
  kafkaClient,
  randomTopicName,
  redisPrefix,
  serviceUrls,
} from '@hourglass/testkit';
import { startNode } from '../../src/node';
import type { RunningNode } from '../../src/node';
import pino from 'pino';
import { api, testConfig } from '../support/harness';

const ADMIN = 'admin-secret-input';
const APP_TOKEN = 'input-token-0001';

type ErrorBody = { error: { code: string; message: string; details?: Array<{ path: string }> } };
type BatchBody = {
  results: Array<{ status: number; error?: { code: string; details?: Array<{ path: string }> } }>;
};

function paths(body: ErrorBody): string[] {
  return (body.error.details ?? []).map((d) => d.path);
}

/** `{"a": …}` nested `depth` levels as JSON text (built as text: no stack involved). */
function nestedJson(depth: number): string {
  return `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
}

describe('bad input gets a 4xx with a code and the field, never a 5xx', function () {
  const urls = serviceUrls();
  let db: TestDatabase;
  let node: RunningNode;
  let topic: string;
  const created: string[] = [];
  const send = <T = ErrorBody>(method: string, path: string, body?: unknown, token = APP_TOKEN) =>
    api<T>(node.httpUrl, method, path, token, body);
  const admin = <T = ErrorBody>(method: string, path: string, body?: unknown) =>
    api<T>(node.httpUrl, method, path, ADMIN, body);

  before(async () => {
    db = await createTestDatabase();
    topic = randomTopicName('input');
    await createTopics(urls.kafkaBrokers, [topic], 1);
    node = await startNode(
      testConfig({
        postgres: { url: db.connectionString },
        kafka: { brokers: urls.kafkaBrokers, createTopics: false, topicPartitions: 1 },
        redis: { url: urls.redis, keyPrefix: redisPrefix() },
        auth: { adminToken: ADMIN },
        apps: [{ name: 'input', token: APP_TOKEN, topics: [topic] }],
      }),
      pino({ level: 'silent' }),
    );
  });

  after(async () => {
    await node?.stop();
    await deleteTopics(urls.kafkaBrokers, [topic, ...created]).catch(() => undefined);
    await db?.drop();
  });

  describe('messages', () => {
    const message = { topic: '', payload: { n: 1 }, delayMs: 600_000 };
    beforeEach(() => (message.topic = topic));

    it('refuses NUL or a lone surrogate in the key or a header (not storable as sent) with 400 naming the field', async () => {
      for (const [extra, field] of [
        [{ key: 'a\u0000b' }, 'key'],
        [{ headers: { 'x-foo': 'bar\u0000' } }, 'headers/x-foo'],
        [{ headers: { 'x\u0000': 'bar' } }, 'headers/x\u0000'],
        // A lone surrogate has no UTF-8 form: it would be stored (and produced) as U+FFFD.
        [{ key: 'a\ud800' }, 'key'],
      ] as const) {
        const refused = await send('POST', '/v1/messages', { ...message, ...extra });
        assert.equal(refused.status, 400, JSON.stringify(refused.body));
        assert.equal(refused.body.error.code, 'invalid_request');
        assert.deepEqual(paths(refused.body), [field]);
      }
    });

    it('fails only the entry with a NUL in a batch; the others are stored', async () => {
      const messages = [0, 1, 2, 3, 4].map((i) => ({
        ...message,
        id: `nul-${i}`,
        key: i === 3 ? 'k\u0000' : `k${i}`,
      }));
      const batch = await send<BatchBody>('POST', '/v1/messages/batch', { messages });
      assert.equal(batch.status, 200, JSON.stringify(batch.body));
      assert.deepEqual(
        batch.body.results.map((r) => r.status),
        [201, 201, 201, 400, 201],
      );
      assert.equal(batch.body.results[3]?.error?.code, 'invalid_request');
      assert.deepEqual(
        batch.body.results[3]?.error?.details?.map((d) => d.path),
        ['messages/3/key'],
      );
      assert.equal((await send('GET', '/v1/messages/nul-4')).status, 200);
      assert.equal((await send('GET', '/v1/messages/nul-3')).status, 404);
    });

    it('refuses a payload nested 100,000 levels deep with 400, and one just over the limit as its own entry', async () => {
      const deep = await send(
        'POST',
        '/v1/messages',
        `{"topic":"${topic}","delayMs":5,"payload":${nestedJson(100_000)}}`,
      );
      assert.equal(deep.status, 400, JSON.stringify(deep.body));
      assert.equal(deep.body.error.code, 'invalid_request');
      // Over limits.maxPayloadDepth (64) but inside the body's allowance: named as the payload.
      const over = await send(
        'POST',
        '/v1/messages',
        `{"topic":"${topic}","delayMs":5,"payload":${nestedJson(65)}}`,
      );
      assert.equal(over.status, 400);
      assert.deepEqual(paths(over.body), ['payload']);
      assert.match(over.body.error.message, /64 levels/);
      const batch = await send<BatchBody>(
        'POST',
        '/v1/messages/batch',
        `{"messages":[{"topic":"${topic}","delayMs":600000,"payload":${nestedJson(64)}},` +
          `{"topic":"${topic}","delayMs":600000,"payload":${nestedJson(70)}}]}`,
      );
      assert.equal(batch.status, 200, JSON.stringify(batch.body));
      assert.deepEqual(
        batch.body.results.map((r) => r.status),
        [201, 400],
      );
      assert.deepEqual(
        batch.body.results[1]?.error?.details?.map((d) => d.path),
        ['messages/1/payload'],
      );
      // A body nested millions of levels deep is refused before it is parsed.
      const started = Date.now();
      const huge = await send('POST', '/v1/messages/batch', nestedJson(2_000_000));
      assert.equal(huge.status, 400);
      assert.equal(huge.body.error.code, 'invalid_request');
      assert.ok(Date.now() - started < 2000, `took ${Date.now() - started} ms`);
    });

    it('refuses the topics "." and ".." (Kafka does)', async () => {
      for (const name of ['.', '..']) {
        const refused = await send('POST', '/v1/messages', { ...message, topic: name });
        assert.equal(refused.status, 400);
        assert.deepEqual(paths(refused.body), ['topic']);
      }
    });
  });

  describe('admin', () => {
    it('refuses NUL in an app description with 400 naming the field', async () => {
      const createdApp = await admin('POST', '/v1/admin/apps', {
        name: 'nul-desc',
        description: 'a\u0000b',
      });
      assert.equal(createdApp.status, 400, JSON.stringify(createdApp.body));
      assert.deepEqual(paths(createdApp.body), ['description']);
      const patched = await admin('PATCH', '/v1/admin/apps/input', { description: '\u0000' });
      assert.equal(patched.status, 400);
      assert.deepEqual(paths(patched.body), ['description']);
      // A required body that is missing is a 400, whatever the Content-Type says.
      const empty = await api(node.httpUrl, 'POST', '/v1/admin/apps', ADMIN, '');
      assert.equal(empty.status, 400, JSON.stringify(empty.body));
    });

    it('checks topic names, partitions and the replication factor before Kafka: 400, not 503', async () => {
      const grant = (body: Record<string, unknown>) =>
        admin('POST', '/v1/admin/apps/input/topics', body);
      for (const name of ['.', '..']) {
        const refused = await grant({ topic: name });
        assert.equal(refused.status, 400, JSON.stringify(refused.body));
        assert.deepEqual(paths(refused.body), ['topic']);
      }
      const name = randomTopicName('input-rf');
      const replication = await grant({ topic: name, replicationFactor: 30 });
      assert.equal(replication.status, 400, JSON.stringify(replication.body));
      assert.equal(replication.body.error.code, 'invalid_request');
      assert.deepEqual(paths(replication.body), ['replicationFactor']);
      assert.match(replication.body.error.message, /broker/);
      const partitions = await grant({ topic: name, partitions: 65 });
      assert.equal(partitions.status, 400);
      assert.deepEqual(paths(partitions.body), ['partitions']);
      assert.match(partitions.body.error.message, /maxTopicPartitions/);
      // Nothing was created in Kafka by the refusals.
      const kafkaAdmin = kafkaClient(urls.kafkaBrokers).admin();
      await kafkaAdmin.connect();
      try {
        const topics = await kafkaAdmin.listTopics();
        for (const refused of ['.', '..', name]) assert.ok(!topics.includes(refused), refused);
      } finally {
        await kafkaAdmin.disconnect();
      }
    });

    it('refuses a topic that collides with an existing one ("." and "_" are alike to Kafka)', async () => {
      const dotted = `${randomTopicName('input')}.x_y`;
      created.push(dotted);
      const first = await admin('POST', '/v1/admin/apps/input/topics', { topic: dotted });
      assert.equal(first.status, 200, JSON.stringify(first.body));
      const twin = dotted.replaceAll('.', '_');
      const collides = await admin('POST', '/v1/admin/apps/input/topics', { topic: twin });
      assert.equal(collides.status, 400, JSON.stringify(collides.body));
      assert.deepEqual(paths(collides.body), ['topic']);
      assert.match(collides.body.error.message, /collides/);
      const asCreate = await admin('POST', '/v1/admin/apps', { name: 'twin', topics: [twin] });
      assert.equal(asCreate.status, 400);
      assert.deepEqual(paths(asCreate.body), ['topics']);
    });
  });

  describe('one admin gate', () => {
    it('refuses a disabled app the same way (403 forbidden) on every admin route, app and cluster alike', async () => {
      const issued = await admin<{ token: string }>('POST', '/v1/admin/apps', {
        name: 'gated',
        topics: [topic],
      });
      assert.equal(issued.status, 201);
      const token = issued.body.token;
      const routes: Array<[string, string, unknown?]> = [
        ['GET', '/v1/admin/apps'],
        ['GET', '/v1/admin/stats'],
        ['GET', '/v1/admin/cluster'],
        ['PUT', '/v1/admin/slots/0/pin', { node: 'x' }],
        ['DELETE', '/v1/admin/slots/0/pin'],
        ['POST', '/v1/admin/nodes/x/drain'],
      ];
      const refusals = async (): Promise<string[]> => {
        const messages: string[] = [];
        for (const [method, path, body] of routes) {
          const refused = await api<ErrorBody>(node.httpUrl, method, path, token, body);
          assert.equal(refused.status, 403, `${method} ${path}: ${JSON.stringify(refused.body)}`);
          assert.equal(refused.body.error.code, 'forbidden');
          messages.push(refused.body.error.message);
        }
        return messages;
      };
      const enabled = await refusals();
      assert.equal(new Set(enabled).size, 1, enabled.join(' | '));
      assert.equal((await admin('PATCH', '/v1/admin/apps/gated', { disabled: true })).status, 200);
      const disabled = await refusals();
      assert.equal(new Set(disabled).size, 1, disabled.join(' | '));
      // The message API refuses the disabled app too; the admin token passes the gate.
      assert.equal((await send('GET', '/v1/messages/x', undefined, token)).status, 403);
      assert.equal((await admin('GET', '/v1/admin/cluster')).status, 200);
      assert.equal((await api(node.httpUrl, 'GET', '/v1/admin/cluster', 'nope')).status, 401);
      assert.equal((await api(node.httpUrl, 'GET', '/v1/admin/cluster', null)).status, 401);
    });
  });

  describe('routing', () => {
    it('answers 405 with Allow for a documented path and another method, and OPTIONS with 204', async () => {
      const put = await send('PUT', '/v1/messages', { topic });
      assert.equal(put.status, 405);
      assert.equal(put.body.error.code, 'method_not_allowed');
      assert.equal(put.headers.get('allow'), 'GET, POST, HEAD, OPTIONS');
      const trace = await api(node.httpUrl, 'PATCH', '/healthz', null);
      assert.equal(trace.status, 405);
      assert.equal(trace.headers.get('allow'), 'GET, HEAD, OPTIONS');
      const options = await admin('OPTIONS', '/v1/admin/apps/input');
      assert.equal(options.status, 204);
      assert.equal(options.headers.get('allow'), 'GET, DELETE, PATCH, HEAD, OPTIONS');
      assert.equal((await admin('PUT', '/v1/admin/apps/input')).status, 405);
      // Answered from the document, not from the routes Express happens to match.
      const batch = await send('OPTIONS', '/v1/messages/batch');
      assert.equal(batch.status, 204);
      assert.equal(batch.headers.get('allow'), 'POST, OPTIONS');
      assert.equal((await admin('GET', '/v1/admin/nowhere')).status, 404);
    });

    it('serves admin routes only as documented: no case-folded or trailing-slash path skips validation', async () => {
      for (const path of ['/v1/admin/APPS', '/v1/admin/apps/', '/V1/admin/apps']) {
        const response = await admin('POST', path, { name: 'sneaky' });
        assert.equal(response.status, 404, `${path}: ${JSON.stringify(response.body)}`);
      }
      const nul = await admin('GET', '/v1/admin/apps/%00/');
      assert.ok(nul.status === 400 || nul.status === 404, String(nul.status));
      assert.equal((await admin('GET', '/v1/admin/apps/sneaky')).status, 404);
    });
  });
});

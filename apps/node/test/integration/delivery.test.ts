/**
 * Issue #3 end to end on one node: accept over HTTP, persist in Postgres, wheel, fire to a real
 * Kafka topic read by a real kafkajs consumer.
 */
import assert from 'node:assert/strict';
import {
  collectKafka,
  createTestDatabase,
  createTopics,
  randomTopicName,
  serviceUrls,
} from '@hourglass/testkit';
import type { RunningNode } from '../../src/node';
import { api, startInProcess, testConfig } from '../support/harness';

const TOKEN = 'shop-token-0001';
const OTHER_TOKEN = 'other-token-0001';

describe('delivery on one node (HTTP → Postgres → wheel → Kafka)', function () {
  const urls = serviceUrls();
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let topic: string;
  let node: RunningNode;
  let collector: Awaited<ReturnType<typeof collectKafka>>;

  before(async () => {
    db = await createTestDatabase();
    topic = randomTopicName('delivery');
    await createTopics(urls.kafkaBrokers, [topic], 2);
    collector = await collectKafka(urls.kafkaBrokers, topic);
    node = await startInProcess(
      testConfig({
        postgres: { url: db.connectionString },
        kafka: { brokers: urls.kafkaBrokers, createTopics: false },
        // A short horizon makes messages due beyond it take the Postgres → loader path within a test.
        core: { horizonMinutes: 0.1, loaderIntervalMs: 200 },
        apps: [
          { name: 'shop', token: TOKEN, topics: [topic] },
          { name: 'other', token: OTHER_TOKEN, topics: [topic] },
        ],
      }),
    );
  });

  after(async () => {
    await node?.stop();
    await collector?.stop();
    await db?.drop();
  });

  const recordsWithId = (id: string) =>
    collector.records.filter((record) => record.headers['hourglass-id'] === id);

  it('delivers messages due from now to beyond the horizon exactly once, never early, with bytes intact', async () => {
    const delays = [0, 50, 500, 1500, 3000, 5500, 9000, 14000, 20000];
    const sent = new Map<string, { deliverAt: number; body: Record<string, unknown> }>();
    for (const [index, delayMs] of delays.entries()) {
      const id = `order-${index}-${Date.now()}`;
      const binary = index % 2 === 1;
      const body: Record<string, unknown> = {
        id,
        topic,
        key: `customer-${index}`,
        headers: { 'x-trace': `trace-${index}` },
        delayMs,
        ...(binary
          ? { payloadBase64: Buffer.from([0, 255, index, 10, 13]).toString('base64') }
          : { payload: { orderId: index, note: 'ünïcode ✓' } }),
      };
      const response = await api(node.httpUrl, 'POST', '/v1/messages', TOKEN, body);
      assert.equal(response.status, 201, JSON.stringify(response.body));
      assert.equal(response.body.state, 'scheduled');
      assert.equal(response.body.id, id);
      sent.set(id, { deliverAt: Date.parse(String(response.body.deliverAt)), body });
    }
    await collector.waitFor(delays.length, 60_000);
    for (const [id, { deliverAt, body }] of sent) {
      const records = recordsWithId(id);
      assert.equal(records.length, 1, `message ${id} arrived ${records.length} times`);
      const record = records[0]!;
      assert.ok(
        record.receivedAtMs >= deliverAt,
        `message ${id} arrived ${deliverAt - record.receivedAtMs} ms early`,
      );
      assert.equal(record.key, body.key);
      assert.equal(record.headers['x-trace'], (body.headers as Record<string, string>)['x-trace']);
      assert.equal(record.headers['hourglass-app'], 'shop');
      assert.equal(record.headers['hourglass-deliver-at'], String(deliverAt));
      const expected =
        body.payloadBase64 !== undefined
          ? Buffer.from(body.payloadBase64 as string, 'base64')
          : Buffer.from(JSON.stringify(body.payload));
      assert.deepEqual(record.value, expected);
      const view = await api(node.httpUrl, 'GET', `/v1/messages/${id}`, TOKEN);
      assert.equal(view.body.state, 'delivered');
      assert.equal(typeof view.body.deliveredAt, 'string');
    }
  });

  it('never delivers a message cancelled while it sits in the wheel', async () => {
    const stamp = Date.now();
    const cancelled = `cancel-me-${stamp}`;
    const sentinel = `sentinel-${stamp}`;
    const before = collector.records.length;
    const first = await api(node.httpUrl, 'POST', '/v1/messages', TOKEN, {
      id: cancelled,
      topic,
      payload: 'x',
      delayMs: 1500,
    });
    assert.equal(first.status, 201);
    assert.ok(node.engine.heldMessages > 0, 'the message should be in the wheel');
    const second = await api(node.httpUrl, 'POST', '/v1/messages', TOKEN, {
      id: sentinel,
      topic,
      payload: 'y',
      delayMs: 2500,
    });
    assert.equal(second.status, 201);
    const cancel = await api(node.httpUrl, 'DELETE', `/v1/messages/${cancelled}`, TOKEN);
    assert.equal(cancel.status, 200);
    assert.deepEqual(cancel.body, { id: cancelled, state: 'cancelled' });
    await collector.waitFor(before + 1, 20_000);
    assert.equal(recordsWithId(sentinel).length, 1);
    assert.equal(recordsWithId(cancelled).length, 0);
    const again = await api<{ error: { code: string } }>(
      node.httpUrl,
      'DELETE',
      `/v1/messages/${cancelled}`,
      TOKEN,
    );
    assert.equal(again.status, 409);
    assert.equal(again.body.error.code, 'already_cancelled');
    const late = await api<{ error: { code: string } }>(
      node.httpUrl,
      'DELETE',
      `/v1/messages/${sentinel}`,
      TOKEN,
    );
    assert.equal(late.status, 409);
    assert.equal(late.body.error.code, 'already_delivered');
    const view = await api(node.httpUrl, 'GET', `/v1/messages/${cancelled}`, TOKEN);
    assert.equal(view.body.state, 'cancelled');
  });

  it('answers an identical re-send with 200 and delivers once; a different one gets 409', async () => {
    const id = `idem-${Date.now()}`;
    const body = { id, topic, payload: { a: 1 }, delayMs: 300 };
    const before = collector.records.length;
    const first = await api(node.httpUrl, 'POST', '/v1/messages', TOKEN, body);
    assert.equal(first.status, 201);
    const again = await api(node.httpUrl, 'POST', '/v1/messages', TOKEN, body);
    assert.equal(again.status, 200);
    assert.equal(again.body.id, id);
    assert.equal(again.body.deliverAt, first.body.deliverAt);
    const conflict = await api<{ error: { code: string } }>(
      node.httpUrl,
      'POST',
      '/v1/messages',
      TOKEN,
      { ...body, payload: { a: 2 } },
    );
    assert.equal(conflict.status, 409);
    assert.equal(conflict.body.error.code, 'id_conflict');
    const sentinel = `idem-sentinel-${Date.now()}`;
    await api(node.httpUrl, 'POST', '/v1/messages', TOKEN, {
      id: sentinel,
      topic,
      payload: 1,
      delayMs: 1500,
    });
    // The re-sent message and then the sentinel due after it; a duplicate would have come first.
    await collector.waitFor(before + 2, 20_000);
    assert.equal(recordsWithId(sentinel).length, 1);
    assert.equal(recordsWithId(id).length, 1);
  });

  it('accepts a batch in one request with a result per message, in order', async () => {
    const stamp = Date.now();
    const response = await api<{
      results: Array<{ status: number; message?: { id: string }; error?: { code: string } }>;
    }>(node.httpUrl, 'POST', '/v1/messages/batch', TOKEN, {
      messages: [
        { id: `b1-${stamp}`, topic, payload: 1, delayMs: 100 },
        { id: `b2-${stamp}`, topic: 'not-granted', payload: 2, delayMs: 100 },
        { id: `b3-${stamp}`, topic, payload: 3 },
        { id: `b1-${stamp}`, topic, payload: 1, delayMs: 100 },
        { id: `b1-${stamp}`, topic, payload: 'different', delayMs: 100 },
      ],
    });
    assert.equal(response.status, 200);
    assert.deepEqual(
      response.body.results.map((result) => [result.status, result.error?.code]),
      [
        [201, undefined],
        [403, 'topic_not_allowed'],
        [400, 'invalid_request'],
        [200, undefined],
        [409, 'id_conflict'],
      ],
    );
  });

  it("keeps apps apart: another app's ids are not found", async () => {
    const id = `private-${Date.now()}`;
    assert.equal(
      (
        await api(node.httpUrl, 'POST', '/v1/messages', TOKEN, {
          id,
          topic,
          payload: 1,
          delayMs: 60_000,
        })
      ).status,
      201,
    );
    assert.equal((await api(node.httpUrl, 'GET', `/v1/messages/${id}`, OTHER_TOKEN)).status, 404);
    assert.equal(
      (await api(node.httpUrl, 'DELETE', `/v1/messages/${id}`, OTHER_TOKEN)).status,
      404,
    );
    // The same id is free for the other app.
    assert.equal(
      (
        await api(node.httpUrl, 'POST', '/v1/messages', OTHER_TOKEN, {
          id,
          topic,
          payload: 2,
          delayMs: 60_000,
        })
      ).status,
      201,
    );
    assert.equal((await api(node.httpUrl, 'DELETE', `/v1/messages/${id}`, TOKEN)).status, 200);
  });

  describe('bad input gets a 4xx with a stable code, never a 5xx', () => {
    const cases: Array<{
      name: string;
      status: number;
      code: string;
      body: unknown;
      token?: string | null;
      contentType?: string;
      path?: string;
    }> = [
      { name: 'malformed JSON', status: 400, code: 'malformed_json', body: '{"topic": "a",' },
      {
        name: 'wrong types',
        status: 400,
        code: 'invalid_request',
        body: { topic: 42, payload: 1, delayMs: 'soon' },
      },
      {
        name: 'an oversized payload',
        status: 413,
        code: 'payload_too_large',
        body: {
          topic: 'T',
          payloadBase64: Buffer.alloc(1024 * 1024 + 1).toString('base64'),
          delayMs: 0,
        },
      },
      {
        name: 'both deliverAt and delayMs',
        status: 400,
        code: 'invalid_request',
        body: { topic: 'T', payload: 1, delayMs: 5, deliverAt: '2030-01-01T00:00:00Z' },
      },
      {
        name: 'an unknown topic',
        status: 403,
        code: 'topic_not_allowed',
        body: { topic: 'no.such.topic', payload: 1, delayMs: 5 },
      },
      {
        name: 'bad characters in the id',
        status: 400,
        code: 'invalid_request',
        body: { id: 'a b/c', topic: 'T', payload: 1, delayMs: 5 },
      },
      {
        name: 'a due time beyond the maximum delay',
        status: 400,
        code: 'delay_too_long',
        body: { topic: 'T', payload: 1, deliverAt: '2999-01-01T00:00:00Z' },
      },
      {
        name: 'a zone-less deliverAt',
        status: 400,
        code: 'invalid_request',
        body: { topic: 'T', payload: 1, deliverAt: '2030-01-01T00:00:00' },
      },
      {
        name: 'an unknown field',
        status: 400,
        code: 'invalid_request',
        body: { topic: 'T', payload: 1, delay: 5 },
      },
      {
        name: 'a non-JSON content type',
        status: 415,
        code: 'unsupported_media_type',
        body: 'topic=x',
        contentType: 'text/plain',
      },
      {
        name: 'a missing token',
        status: 401,
        code: 'unauthenticated',
        body: { topic: 'T', payload: 1, delayMs: 5 },
        token: null,
      },
      {
        name: 'an unknown token',
        status: 401,
        code: 'unauthenticated',
        body: { topic: 'T', payload: 1, delayMs: 5 },
        token: 'nope-nope-nope',
      },
      {
        name: 'an empty batch',
        status: 400,
        code: 'batch_too_large',
        body: { messages: [] },
        path: '/v1/messages/batch',
      },
      { name: 'a JSON array body', status: 400, code: 'invalid_request', body: [1, 2] },
    ];
    for (const testCase of cases) {
      it(`rejects ${testCase.name} with ${testCase.status} ${testCase.code}`, async () => {
        const body =
          typeof testCase.body === 'object' &&
          testCase.body !== null &&
          !Array.isArray(testCase.body)
            ? (JSON.parse(
                JSON.stringify(testCase.body).replaceAll('"T"', JSON.stringify(topic)),
              ) as unknown)
            : testCase.body;
        const response = await api<{ error: { code: string; message: string } }>(
          node.httpUrl,
          'POST',
          testCase.path ?? '/v1/messages',
          testCase.token === undefined ? TOKEN : testCase.token,
          body,
          testCase.contentType,
        );
        assert.equal(response.status, testCase.status, JSON.stringify(response.body));
        assert.equal(response.body.error.code, testCase.code);
        assert.ok(response.body.error.message.length > 0);
      });
    }

    it('answers unknown routes and bad ids on GET with 4xx', async () => {
      assert.equal((await api(node.httpUrl, 'GET', '/v1/nothing', TOKEN)).status, 404);
      const bad = await api<{ error: { code: string } }>(
        node.httpUrl,
        'GET',
        `/v1/messages/${'x'.repeat(200)}`,
        TOKEN,
      );
      assert.equal(bad.status, 400);
      assert.equal(bad.body.error.code, 'invalid_request');
    });
  });

  it('serves health, readiness and metrics', async () => {
    assert.equal((await api(node.httpUrl, 'GET', '/healthz', null)).status, 200);
    const ready = await api(node.httpUrl, 'GET', '/readyz', null);
    assert.equal(ready.status, 200, JSON.stringify(ready.body));
    const metrics = await api<string>(node.httpUrl, 'GET', '/metrics', null);
    for (const name of [
      'hourglass_messages_accepted_total',
      'hourglass_messages_delivered_total',
      'hourglass_messages_cancelled_total',
      'hourglass_delivery_lateness_seconds_bucket',
      'hourglass_wheel_size',
      'hourglass_loader_lag_seconds',
    ]) {
      assert.ok(metrics.body.includes(name), `missing metric ${name}`);
    }
  });
});

/**
 * The schedule routes are served without Express (libs/http-api/src/fast-schedule.ts) when the
 * headers say the plain case, and by Express otherwise. Both must answer alike: every request
 * here goes once to `/v1/messages` (the direct handler) and once to `/v1/messages?via=express`
 * (a query string sends it to Express), and the two answers must have the same status, code and
 * headers that matter. Also: single schedules sent together share one insert statement (group
 * commit) and each is answered only once it is stored.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { gzipSync } from 'node:zlib';
import type { TestDatabase } from '@hourglass/testkit';
import {
  createTestDatabase,
  createTopics,
  deleteTopics,
  randomTopicName,
  redisPrefix,
  serviceUrls,
} from '@hourglass/testkit';
import pino from 'pino';
import pg from 'pg';
import { startNode } from '../../src/node';
import type { RunningNode } from '../../src/node';
import { testConfig } from '../support/harness';

const APP_TOKEN = 'direct-token-0001';
const MAX_BYTES = 64 * 1024;

interface Answer {
  status: number;
  code: string | undefined;
  contentType: string | undefined;
  location: string | undefined;
  body: Record<string, unknown>;
}

/** One raw request (raw, so bodies, lengths and headers can be anything). */
function send(
  url: string,
  path: string,
  headers: Record<string, string>,
  body: Buffer | string | undefined,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { method: 'POST', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const parsed = (text ? JSON.parse(text) : {}) as Record<string, unknown>;
        resolve({
          status: res.statusCode ?? 0,
          code: (parsed.error as { code?: string } | undefined)?.code,
          contentType: res.headers['content-type'],
          location: res.headers.location,
          body: parsed,
        });
      });
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

describe('schedule routes: the direct handler answers like Express', function () {
  const urls = serviceUrls();
  let db: TestDatabase;
  let node: RunningNode;
  let topic: string;
  let n = 0;

  before(async () => {
    db = await createTestDatabase();
    topic = randomTopicName('direct');
    await createTopics(urls.kafkaBrokers, [topic], 1);
    node = await startNode(
      testConfig({
        postgres: { url: db.connectionString },
        kafka: { brokers: urls.kafkaBrokers, createTopics: false, topicPartitions: 1 },
        redis: { url: urls.redis, keyPrefix: redisPrefix() },
        limits: { maxRequestBytes: MAX_BYTES, maxPayloadBytes: MAX_BYTES },
        apps: [{ name: 'direct', token: APP_TOKEN, topics: [topic] }],
      }),
      pino({ level: 'silent' }),
    );
  });

  after(async () => {
    await node?.stop();
    await deleteTopics(urls.kafkaBrokers, [topic]).catch(() => undefined);
    await db?.drop();
  });

  const json = { 'content-type': 'application/json', authorization: `Bearer ${APP_TOKEN}` };
  const message = (extra: Record<string, unknown> = {}) =>
    JSON.stringify({ id: `m-${++n}`, topic, payload: { n }, delayMs: 600_000, ...extra });

  /** Sends the same request both ways and checks the answers agree; returns the direct one. */
  async function both(
    path: '/v1/messages' | '/v1/messages/batch',
    headers: Record<string, string>,
    body: () => Buffer | string | undefined,
  ): Promise<Answer> {
    const direct = await send(node.httpUrl, path, headers, body());
    const viaExpress = await send(node.httpUrl, `${path}?via=express`, headers, body());
    const shape = (answer: Answer) => ({
      status: answer.status,
      code: answer.code,
      contentType: answer.contentType,
      location: answer.location !== undefined,
    });
    assert.deepEqual(shape(direct), shape(viaExpress), JSON.stringify(direct.body));
    return direct;
  }

  it('answers a new message 201 with Location and a re-send 200, like Express', async () => {
    const first = message({ id: 'same-1' });
    const direct = await send(node.httpUrl, '/v1/messages', json, first);
    const viaExpress = await send(
      node.httpUrl,
      '/v1/messages?x=1',
      json,
      message({ id: 'same-2' }),
    );
    assert.equal(direct.status, 201);
    assert.equal(direct.location, '/v1/messages/same-1');
    assert.equal(direct.contentType, 'application/json; charset=utf-8');
    assert.deepEqual(Object.keys(direct.body).sort(), Object.keys(viaExpress.body).sort());
    const again = await send(node.httpUrl, '/v1/messages', json, first);
    assert.equal(again.status, 200);
    assert.equal(again.location, undefined);
  });

  it('refuses the same bad requests with the same statuses and codes', async () => {
    const cases: Array<
      [string, Record<string, string>, () => Buffer | string | undefined, number, string]
    > = [
      ['malformed JSON', json, () => '{"topic": ', 400, 'malformed_json'],
      ['a JSON string, not an object', json, () => '"just a string"', 400, 'malformed_json'],
      ['an empty body', json, () => '', 400, 'invalid_request'],
      ['no token', { 'content-type': 'application/json' }, () => message(), 401, 'unauthenticated'],
      [
        'an unknown token',
        { ...json, authorization: 'Bearer nobody-knows-me' },
        () => message(),
        401,
        'unauthenticated',
      ],
      [
        'a body over the limit',
        json,
        () => message({ payload: { big: 'x'.repeat(MAX_BYTES) } }),
        413,
        'payload_too_large',
      ],
      [
        'a body nested too deep',
        json,
        () => `${'['.repeat(200)}${']'.repeat(200)}`,
        400,
        'invalid_request',
      ],
      [
        'a missing field',
        json,
        () => JSON.stringify({ topic, payload: 1 }),
        400,
        'invalid_request',
      ],
      [
        'an ungranted topic',
        json,
        () => message({ topic: 'not-granted' }),
        403,
        'topic_not_allowed',
      ],
    ];
    for (const [name, headers, body, status, code] of cases) {
      const answer = await both('/v1/messages', headers, body);
      assert.equal(answer.status, status, `${name}: ${JSON.stringify(answer.body)}`);
      assert.equal(answer.code, code, name);
    }
  });

  it('leaves what it does not parse itself to Express: other types, charsets, compressed bodies', async () => {
    const plain = await both('/v1/messages', { ...json, 'content-type': 'text/plain' }, () =>
      message(),
    );
    assert.equal(plain.status, 415);
    const latin1 = await both(
      '/v1/messages',
      { ...json, 'content-type': 'application/json; charset=latin1' },
      () => message(),
    );
    assert.equal(latin1.status, 415);
    const gzipped = await send(
      node.httpUrl,
      '/v1/messages',
      { ...json, 'content-encoding': 'gzip' },
      gzipSync(message()),
    );
    assert.equal(gzipped.status, 201, JSON.stringify(gzipped.body));
  });

  it('answers batches alike, one result per entry', async () => {
    const batch = () =>
      JSON.stringify({ messages: [JSON.parse(message()), { topic, payload: 1 }] });
    const answer = await both('/v1/messages/batch', json, batch);
    assert.equal(answer.status, 200);
    const results = answer.body.results as Array<{ status: number }>;
    assert.deepEqual(
      results.map((result) => result.status),
      [201, 400],
    );
  });

  it('stores concurrent single schedules in shared statements, each answered after its commit', async () => {
    const ids = Array.from({ length: 64 }, (_, i) => `group-${i}`);
    const answers = await Promise.all(
      ids.map((id) => send(node.httpUrl, '/v1/messages', json, message({ id }))),
    );
    assert.deepEqual(
      answers.map((answer) => answer.status),
      ids.map(() => 201),
    );
    // Every 201 is in Postgres, read on a connection of our own.
    const client = new pg.Client({ connectionString: db.connectionString });
    await client.connect();
    try {
      const { rows } = await client.query<{ count: string }>(
        'SELECT count(*) FROM messages WHERE id = ANY($1)',
        [ids],
      );
      assert.equal(Number(rows[0]?.count), ids.length);
    } finally {
      await client.end();
    }
    // And they shared statements: fewer statements than messages.
    const metrics = await (await fetch(`${node.httpUrl}/metrics`)).text();
    const count = Number(/^hourglass_insert_group_messages_count (\d+)/m.exec(metrics)?.[1]);
    const sum = Number(/^hourglass_insert_group_messages_sum (\d+)/m.exec(metrics)?.[1]);
    assert.ok(sum >= ids.length, metrics);
    assert.ok(count < sum, `${count} grouped statements for ${sum} messages`);
  });
});

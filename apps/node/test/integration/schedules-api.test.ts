/**
 * Recurring schedules over HTTP (issue 14), on an in-process standalone node (it owns every slot,
 * so it materialises every schedule) against the real Postgres, Redis and Kafka: create, the
 * idempotent re-send, get, list with cursors, next, pause, resume, change, delete, the quota, and
 * 4xx for bad input. Occurrences are ordinary messages: GET /v1/messages/{id} shows them.
 */
import assert from 'node:assert/strict';
import type { TestDatabase } from '@hourglass/testkit';
import {
  createTestDatabase,
  createTopics,
  deleteTopics,
  pollUntil,
  randomTopicName,
  redisPrefix,
  serviceUrls,
} from '@hourglass/testkit';
import pino from 'pino';
import { startNode } from '../../src/node';
import type { RunningNode } from '../../src/node';
import { api, testConfig } from '../support/harness';

const APP_TOKEN = 'schedules-token-0001';
const QUOTA = 6;

interface ScheduleBody {
  id: string;
  state: string;
  revision: number;
  occurrences: number;
  lastOccurrenceId: string | null;
  nextOccurrenceAt: string | null;
  materializedUntil: string | null;
  cron?: string;
  every?: string;
  cancelledOccurrences?: number;
}
type ErrorBody = { error: { code: string; details?: Array<{ path: string }> } };

describe('recurring schedules over HTTP', function () {
  this.timeout(60_000);
  const urls = serviceUrls();
  let db: TestDatabase;
  let node: RunningNode;
  const topic = randomTopicName('sched');
  const send = <T = ScheduleBody>(method: string, path: string, body?: unknown) =>
    api<T>(node.httpUrl, method, path, APP_TOKEN, body);
  const message = { topic, payload: { hello: 'world' } };

  before(async () => {
    db = await createTestDatabase();
    await createTopics(urls.kafkaBrokers, [topic], 1);
    node = await startNode(
      testConfig({
        postgres: { url: db.connectionString },
        kafka: { brokers: urls.kafkaBrokers, createTopics: false, topicPartitions: 1 },
        redis: { url: urls.redis, keyPrefix: redisPrefix() },
        auth: { adminToken: 'admin-schedules' },
        apps: [{ name: 'sched', token: APP_TOKEN, topics: [topic] }],
        core: { horizonMinutes: 0.5 },
        limits: { maxSchedulesPerApp: QUOTA },
        schedules: { passIntervalMs: 500, misfireGraceMs: 60_000 },
      }),
      pino({ level: 'silent' }),
    );
  });

  after(async () => {
    await node?.stop();
    await deleteTopics(urls.kafkaBrokers, [topic]).catch(() => undefined);
    await db?.drop();
  });

  it('creates a schedule, answers an identical re-send with it and a different one with 409', async () => {
    const body = { id: 'every-2s', every: '2s', message };
    const created = await send('POST', '/v1/schedules', body);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.headers.get('location'), '/v1/schedules/every-2s');
    assert.equal(created.body.state, 'active');
    assert.equal(created.body.every, '2s');
    const again = await send('POST', '/v1/schedules', body);
    assert.equal(again.status, 200);
    assert.equal(again.body.id, 'every-2s');
    const other = await send<ErrorBody>('POST', '/v1/schedules', { ...body, every: '3s' });
    assert.equal(other.status, 409);
    assert.equal(other.body.error.code, 'id_conflict');
  });

  it('materialises occurrences as ordinary messages, ahead of time', async () => {
    const view = await pollUntil(
      () => send('GET', '/v1/schedules/every-2s'),
      (response) => response.body.lastOccurrenceId !== null,
      10_000,
    );
    assert.equal(view.status, 200);
    // 30 s of horizon plus two passes ahead, one every 2 s.
    assert.ok(view.body.occurrences >= 14, `only ${view.body.occurrences} occurrences`);
    assert.match(view.body.lastOccurrenceId ?? '', /^every-2s:1:\d{13}$/);
    const occurrence = await api<{ state: string; deliverAt: string }>(
      node.httpUrl,
      'GET',
      `/v1/messages/${view.body.lastOccurrenceId}`,
      APP_TOKEN,
    );
    assert.equal(occurrence.status, 200);
    assert.equal(occurrence.body.state, 'scheduled');
    const at = Number(view.body.lastOccurrenceId?.split(':')[2]);
    assert.equal(Date.parse(occurrence.body.deliverAt), at);
    // The first occurrence is delivered at its time.
    const first = `every-2s:1:${at - (view.body.occurrences - 1) * 2000}`;
    const delivered = await pollUntil(
      () => api<{ state: string }>(node.httpUrl, 'GET', `/v1/messages/${first}`, APP_TOKEN),
      (response) => response.body.state === 'delivered',
      10_000,
    );
    assert.equal(delivered.body.state, 'delivered');
  });

  it('previews the coming occurrences with their message ids', async () => {
    const next = await send<{ occurrences: Array<{ at: string; messageId: string }> }>(
      'GET',
      '/v1/schedules/every-2s/next?count=3',
    );
    assert.equal(next.status, 200);
    const times = next.body.occurrences.map((o) => Date.parse(o.at));
    assert.equal(times.length, 3);
    assert.deepEqual([times[1]! - times[0]!, times[2]! - times[1]!], [2000, 2000]);
    assert.equal(next.body.occurrences[0]?.messageId, `every-2s:1:${times[0]}`);
    const bad = await send<ErrorBody>('GET', '/v1/schedules/every-2s/next?count=0');
    assert.equal(bad.status, 400);
  });

  it('pauses (cancelling what was materialised), resumes under a new revision, and changes', async () => {
    const before = await send('GET', '/v1/schedules/every-2s');
    const paused = await send('PATCH', '/v1/schedules/every-2s', { paused: true });
    assert.equal(paused.status, 200, JSON.stringify(paused.body));
    assert.equal(paused.body.state, 'paused');
    assert.ok((paused.body.cancelledOccurrences ?? 0) > 0, 'materialised occurrences cancelled');
    const cancelled = await api<{ state: string }>(
      node.httpUrl,
      'GET',
      `/v1/messages/${before.body.lastOccurrenceId}`,
      APP_TOKEN,
    );
    assert.equal(cancelled.body.state, 'cancelled');
    const resumed = await send('PATCH', '/v1/schedules/every-2s', { paused: false });
    assert.equal(resumed.body.state, 'active');
    assert.equal(resumed.body.revision, paused.body.revision + 1);
    const materialised = await pollUntil(
      () => send('GET', '/v1/schedules/every-2s'),
      (response) =>
        response.body.lastOccurrenceId?.startsWith(`every-2s:${resumed.body.revision}:`) === true,
      10_000,
    );
    assert.ok(materialised.body.lastOccurrenceId?.startsWith(`every-2s:${resumed.body.revision}:`));
    const changed = await send('PATCH', '/v1/schedules/every-2s', {
      cron: '0 9 * * 1',
      timezone: 'Asia/Shanghai',
    });
    assert.equal(changed.status, 200, JSON.stringify(changed.body));
    assert.equal(changed.body.cron, '0 9 * * 1');
    assert.equal(changed.body.every, undefined);
    // Mondays 09:00 in Shanghai are 01:00Z.
    assert.match(changed.body.nextOccurrenceAt ?? '', /T01:00:00\.000Z$/);
    const bad = await send<ErrorBody>('PATCH', '/v1/schedules/every-2s', { cron: '0 25 * * *' });
    assert.equal(bad.status, 400);
    assert.deepEqual(
      bad.body.error.details?.map((d) => d.path),
      ['cron'],
    );
  });

  it('lists schedules a page at a time', async () => {
    for (const id of ['list-a', 'list-b'])
      assert.equal(
        (await send('POST', '/v1/schedules', { id, cron: '0 0 1 1 *', message })).status,
        201,
      );
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: {
        status: number;
        body: { schedules: ScheduleBody[]; nextCursor: string | null };
      } = await send('GET', `/v1/schedules?limit=1${cursor ? `&cursor=${cursor}` : ''}`);
      assert.equal(page.status, 200);
      assert.ok(page.body.schedules.length <= 1);
      seen.push(...page.body.schedules.map((s) => s.id));
      cursor = page.body.nextCursor;
    } while (cursor !== null);
    assert.deepEqual(seen, ['every-2s', 'list-a', 'list-b']);
  });

  it('deletes a schedule and cancels its occurrences not yet delivered', async () => {
    // The first occurrence is 20 s away: within the 31 s materialised ahead.
    const created = await send('POST', '/v1/schedules', {
      id: 'short-lived',
      every: '20s',
      message,
    });
    assert.equal(created.status, 201);
    const materialised = await pollUntil(
      () => send('GET', '/v1/schedules/short-lived'),
      (response) => response.body.occurrences > 0,
      10_000,
    );
    assert.equal(materialised.body.occurrences, 1);
    const deleted = await send<{ deleted: boolean; cancelledOccurrences: number }>(
      'DELETE',
      '/v1/schedules/short-lived',
    );
    assert.equal(deleted.status, 200);
    assert.equal(deleted.body.deleted, true);
    assert.equal(deleted.body.cancelledOccurrences, 1);
    assert.equal((await send('GET', '/v1/schedules/short-lived')).status, 404);
    assert.equal((await send('DELETE', '/v1/schedules/short-lived')).status, 404);
  });

  it('refuses bad input with 4xx naming the field', async () => {
    const cases: Array<[unknown, number, string, string | undefined]> = [
      [{ cron: '61 * * * *', message }, 400, 'invalid_request', 'cron'],
      [{ cron: '* * *', message }, 400, 'invalid_request', 'cron'],
      [
        { cron: '0 9 * * *', timezone: 'Europe/Atlantis', message },
        400,
        'invalid_request',
        'timezone',
      ],
      [{ every: '500ms', message }, 400, 'invalid_request', 'every'],
      [{ everyMs: 10, message }, 400, 'invalid_request', 'everyMs'],
      [{ every: 'often', message }, 400, 'invalid_request', 'every'],
      [{ every: '1m' }, 400, 'invalid_request', 'message'],
      [
        { every: '1m', message: { ...message, deliverAt: 5 } },
        400,
        'invalid_request',
        'message/deliverAt',
      ],
      [{ every: '1m', message, color: 'red' }, 400, 'invalid_request', 'color'],
      [{ every: '1m', endAt: '2001-01-01T00:00:00Z', message }, 400, 'invalid_request', 'endAt'],
      [
        { every: '1m', message: { topic: 'not-granted', payload: 1 } },
        403,
        'topic_not_allowed',
        'message/topic',
      ],
    ];
    for (const [body, status, code, path] of cases) {
      const response = await send<ErrorBody>('POST', '/v1/schedules', body);
      assert.equal(
        response.status,
        status,
        `${JSON.stringify(body)}: ${JSON.stringify(response.body)}`,
      );
      assert.equal(response.body.error.code, code);
      if (path)
        assert.ok(
          response.body.error.details?.some((d) => d.path === path),
          JSON.stringify(response.body),
        );
    }
    assert.equal((await send<ErrorBody>('GET', '/v1/schedules/bad:id')).status, 400);
    assert.equal((await send<ErrorBody>('GET', '/v1/schedules?limit=1000')).status, 400);
    assert.equal((await send<ErrorBody>('GET', '/v1/schedules/nope')).status, 404);
    const unauthenticated = await api(node.httpUrl, 'GET', '/v1/schedules', null);
    assert.equal(unauthenticated.status, 401);
  });

  it(`refuses more than limits.maxSchedulesPerApp (${QUOTA}) schedules with 429`, async () => {
    const existing = 3; // every-2s, list-a, list-b
    for (let i = existing; i < QUOTA; i++)
      assert.equal(
        (await send('POST', '/v1/schedules', { id: `quota-${i}`, cron: '0 0 1 1 *', message }))
          .status,
        201,
      );
    const over = await send<ErrorBody>('POST', '/v1/schedules', {
      id: 'one-too-many',
      every: '1h',
      message,
    });
    assert.equal(over.status, 429);
    assert.equal(over.body.error.code, 'schedule_quota_exceeded');
    // An identical re-send of an existing one is still answered.
    assert.equal(
      (await send('POST', '/v1/schedules', { id: 'list-a', cron: '0 0 1 1 *', message })).status,
      200,
    );
    assert.equal((await send('DELETE', '/v1/schedules/list-b')).status, 200);
    assert.equal(
      (await send('POST', '/v1/schedules', { id: 'one-too-many', every: '1h', message })).status,
      201,
    );
  });
});

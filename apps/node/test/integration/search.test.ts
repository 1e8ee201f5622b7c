/**
 * Issue 14, search and bulk operations, end to end on an in-process node (real Postgres, Redis,
 * Kafka): GET /v1/messages with its filters and cursors, the 400s naming each bad parameter,
 * GET /v1/admin/messages across apps, POST /v1/messages/cancel by ids and by filter (in
 * requests bounded by the time budget), and a message cancelled by key never reaching Kafka.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import type { KafkaCollector, TestDatabase } from '@hourglass/testkit';
import {
  collectKafka,
  createTestDatabase,
  createTopics,
  randomTopicName,
  serviceUrls,
} from '@hourglass/testkit';
import type { RunningNode } from '../../src/node';
import { api, startInProcess, testConfig } from '../support/harness';

const TOKEN = 'search-shop-0001';
const OTHER_TOKEN = 'search-other-0001';
const ADMIN = 'search-admin-0001';
const CLI = resolve(__dirname, '../../../cli/bin/hourglass');
const exec = promisify(execFile);

type Page = {
  messages: Array<{ id: string; app: string; key: string | null }>;
  nextCursor: string | null;
};
type ErrorBody = { error: { code: string; details?: Array<{ path: string }> } };

describe('search and bulk cancel over HTTP (issue 14)', function () {
  this.timeout(120_000);
  const urls = serviceUrls();
  let db: TestDatabase;
  let topic: string;
  let node: RunningNode;
  let collector: KafkaCollector;
  const stamp = Date.now().toString(36);

  before(async () => {
    db = await createTestDatabase();
    topic = randomTopicName('search');
    await createTopics(urls.kafkaBrokers, [topic], 2);
    collector = await collectKafka(urls.kafkaBrokers, topic);
    node = await startInProcess(
      testConfig({
        postgres: { url: db.connectionString },
        kafka: { brokers: urls.kafkaBrokers, createTopics: false },
        auth: { adminToken: ADMIN },
        // One message per cancel statement and a 10 ms budget: a filter cancel of a few dozen
        // messages needs several requests, which is what the cursor is for.
        search: { cancelBatchSize: 1, cancelBudgetMs: 10, scanRowsPerPage: 1000 },
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

  async function schedule(
    token: string,
    count: number,
    fields: Record<string, unknown>,
  ): Promise<string[]> {
    const response = await api<{ results: Array<{ status: number; message: { id: string } }> }>(
      node.httpUrl,
      'POST',
      '/v1/messages/batch',
      token,
      { messages: Array.from({ length: count }, () => ({ topic, payload: 1, ...fields })) },
    );
    assert.equal(response.status, 200);
    return response.body.results.map((result) => {
      assert.equal(result.status, 201);
      return result.message.id;
    });
  }

  async function listAll(path: string, token: string): Promise<string[]> {
    const ids: string[] = [];
    let cursor: string | null = null;
    for (let pages = 0; pages < 1000; pages++) {
      const separator = path.includes('?') ? '&' : '?';
      const url: string =
        cursor === null ? path : `${path}${separator}cursor=${encodeURIComponent(cursor)}`;
      const page = await api<Page>(node.httpUrl, 'GET', url, token);
      assert.equal(page.status, 200, JSON.stringify(page.body));
      ids.push(...page.body.messages.map((m) => `${m.app}/${m.id}`));
      cursor = page.body.nextCursor;
      if (cursor === null) return ids;
    }
    throw new Error('the listing never ended');
  }

  it('lists the calling app’s messages by filter, page by page, each once', async () => {
    const key = `list-${stamp}`;
    const later = await schedule(TOKEN, 7, { key, delayMs: 3_600_000 });
    const sooner = await schedule(TOKEN, 3, { key, delayMs: 600_000 });
    await schedule(OTHER_TOKEN, 4, { key, delayMs: 600_000 });

    const all = await listAll(`/v1/messages?key=${key}&limit=3`, TOKEN);
    assert.equal(all.length, 10);
    assert.equal(new Set(all).size, 10);
    assert.ok(all.every((id) => id.startsWith('shop/')));
    // In descending id order (newest first for the default, time-ordered ids).
    assert.deepEqual(all, [...all].sort().reverse());

    const dueBefore = new Date(Date.now() + 1_800_000).toISOString();
    const due = await api<Page>(
      node.httpUrl,
      'GET',
      `/v1/messages?key=${key}&state=scheduled&target=kafka&dueBefore=${dueBefore}`,
      TOKEN,
    );
    assert.equal(due.status, 200);
    assert.deepEqual(due.body.messages.map((m) => m.id).sort(), [...sooner].sort());
    assert.equal(due.body.nextCursor, null);
    const delivered = await api<Page>(
      node.httpUrl,
      'GET',
      `/v1/messages?key=${key}&state=delivered,failed`,
      TOKEN,
    );
    assert.deepEqual(delivered.body.messages, []);
    const http = await api<Page>(node.httpUrl, 'GET', `/v1/messages?key=${key}&target=http`, TOKEN);
    assert.deepEqual(http.body.messages, []);
    assert.equal(later.length, 7);
  });

  it('answers 400 invalid_request naming the parameter for bad filters and cursors', async () => {
    const bad = async (query: string, path: string): Promise<void> => {
      const response = await api<ErrorBody>(node.httpUrl, 'GET', `/v1/messages?${query}`, TOKEN);
      assert.equal(response.status, 400, query);
      assert.equal(response.body.error.code, 'invalid_request', query);
      assert.ok(
        response.body.error.details?.some((detail) => detail.path === path),
        `${query}: ${JSON.stringify(response.body)}`,
      );
    };
    await bad('state=pending', 'state');
    await bad('state=scheduled,', 'state');
    await bad('limit=0', 'limit');
    await bad('limit=1001', 'limit');
    await bad('limit=ten', 'limit');
    await bad('dueAfter=tomorrow', 'dueAfter');
    await bad('dueBefore=2030-01-01T10:00:00', 'dueBefore');
    await bad('createdAfter=1700000000000', 'createdAfter');
    await bad('target=smtp', 'target');
    await bad('topic=bad%20topic', 'topic');
    await bad('key=a&key=b', 'key');
    await bad('stat=scheduled', 'stat');
    await bad('app=shop', 'app');
    await bad('cursor=not-a-cursor', 'cursor');
    await bad('cursor=%2F%2F', 'cursor');
    // A cursor continues only the listing it came from.
    await schedule(TOKEN, 3, { key: `cursor-${stamp}`, delayMs: 600_000 });
    const first = await api<Page>(
      node.httpUrl,
      'GET',
      `/v1/messages?key=cursor-${stamp}&limit=1`,
      TOKEN,
    );
    const cursor = first.body.nextCursor;
    assert.ok(cursor);
    await bad(`key=other-${stamp}&limit=1&cursor=${cursor}`, 'cursor');
    const foreign = await api<ErrorBody>(
      node.httpUrl,
      'GET',
      `/v1/messages?key=cursor-${stamp}&limit=1&cursor=${cursor}`,
      OTHER_TOKEN,
    );
    assert.equal(foreign.status, 400);
    assert.equal((await api(node.httpUrl, 'GET', '/v1/messages', null)).status, 401);
    assert.equal((await api(node.httpUrl, 'GET', '/v1/messages', ADMIN)).status, 401);
  });

  it('lists every app’s messages for the admin, or one app’s', async () => {
    const key = `admin-${stamp}`;
    const shop = await schedule(TOKEN, 2, { key, delayMs: 600_000 });
    const other = await schedule(OTHER_TOKEN, 3, { key, delayMs: 600_000 });
    const everyone = await listAll(`/v1/admin/messages?key=${key}&limit=2`, ADMIN);
    assert.deepEqual(
      everyone.sort(),
      [...shop.map((id) => `shop/${id}`), ...other.map((id) => `other/${id}`)].sort(),
    );
    const one = await listAll(`/v1/admin/messages?key=${key}&app=other`, ADMIN);
    assert.deepEqual(one.sort(), other.map((id) => `other/${id}`).sort());
    const forbidden = await api<ErrorBody>(node.httpUrl, 'GET', '/v1/admin/messages', TOKEN);
    assert.equal(forbidden.status, 403);
    const badApp = await api<ErrorBody>(node.httpUrl, 'GET', '/v1/admin/messages?app=Nope!', ADMIN);
    assert.equal(badApp.status, 400);
    assert.equal(badApp.body.error.details?.[0]?.path, 'app');
  });

  it('cancels named ids with counts, and refuses malformed bulk cancels', async () => {
    const [a, b, c] = await schedule(TOKEN, 3, { delayMs: 600_000 });
    assert.ok(a && b && c);
    assert.equal((await api(node.httpUrl, 'DELETE', `/v1/messages/${c}`, TOKEN)).status, 200);
    const [foreign] = await schedule(OTHER_TOKEN, 1, { delayMs: 600_000 });
    const cancel = await api(node.httpUrl, 'POST', '/v1/messages/cancel', TOKEN, {
      ids: [a, b, c, a, foreign, 'never-was'],
    });
    assert.equal(cancel.status, 200, JSON.stringify(cancel.body));
    assert.deepEqual(cancel.body, {
      cancelled: 2,
      alreadyFinished: 1,
      deliveryInProgress: 0,
      notFound: 2,
    });
    for (const id of [a, b])
      assert.equal(
        (await api(node.httpUrl, 'GET', `/v1/messages/${id}`, TOKEN)).body.state,
        'cancelled',
      );
    assert.equal(
      (await api(node.httpUrl, 'GET', `/v1/messages/${foreign}`, OTHER_TOKEN)).body.state,
      'scheduled',
    );
    const refusals: Array<[unknown, string]> = [
      [{ ids: [] }, 'ids'],
      [{ ids: Array.from({ length: 1001 }, (_, i) => `m-${i}`) }, 'ids'],
      [{ ids: ['ok', 'not ok'] }, 'ids/1'],
      [{ ids: [a], filter: { key: 'k' } }, 'filter'],
      [{}, 'ids'],
      [{ filter: { state: 'delivered' } }, 'filter/state'],
      [{ filter: { key: 'k', colour: 'red' } }, 'filter/colour'],
      [{ filter: { dueBefore: 'soon' } }, 'filter/dueBefore'],
      [{ filter: { key: 'k' }, cursor: 'nope' }, 'cursor'],
    ];
    for (const [body, path] of refusals) {
      const response = await api<ErrorBody>(
        node.httpUrl,
        'POST',
        '/v1/messages/cancel',
        TOKEN,
        body,
      );
      assert.equal(response.status, 400, JSON.stringify(body));
      assert.ok(
        response.body.error.details?.some((detail) => detail.path === path),
        `${JSON.stringify(body)}: ${JSON.stringify(response.body)}`,
      );
    }
    const text = await api(
      node.httpUrl,
      'POST',
      '/v1/messages/cancel',
      TOKEN,
      'ids=a',
      'text/plain',
    );
    assert.equal(text.status, 415);
  });

  it('never delivers messages cancelled by key, even from the wheel', async () => {
    const key = `doomed-${stamp}`;
    const survivorKey = `kept-${stamp}`;
    const doomed = await schedule(TOKEN, 40, { key, delayMs: 2500 });
    // Due after the doomed ones: once they arrived, the doomed ones would have too.
    const kept = await schedule(TOKEN, 2, { key: survivorKey, delayMs: 3500 });
    const otherApp = await schedule(OTHER_TOKEN, 2, { key, delayMs: 2500 });
    const heldBefore = node.engine.heldMessages;
    assert.ok(heldBefore >= doomed.length, 'the messages are in the wheel');

    let cancelled = 0;
    let requests = 0;
    let sawMore = false;
    let cursor: string | undefined;
    for (;;) {
      requests++;
      const response = await api<{
        cancelled: number;
        notCancellable: number;
        more: boolean;
        budgetMs?: number;
        cursor?: string;
      }>(node.httpUrl, 'POST', '/v1/messages/cancel', TOKEN, {
        filter: { key, state: 'scheduled' },
        ...(cursor ? { cursor } : {}),
      });
      assert.equal(response.status, 200, JSON.stringify(response.body));
      cancelled += response.body.cancelled;
      assert.equal(response.body.notCancellable, 0);
      if (!response.body.more) break;
      sawMore = true;
      assert.equal(response.body.budgetMs, 10);
      cursor = response.body.cursor;
      assert.ok(cursor);
      assert.ok(requests < 200, 'the cancel never finished');
    }
    assert.equal(cancelled, doomed.length);
    assert.ok(sawMore, 'a 10 ms budget with one message per statement stops early');
    assert.ok(
      node.engine.heldMessages <= heldBefore - doomed.length,
      `the wheel let go: ${heldBefore} → ${node.engine.heldMessages}`,
    );
    const metrics = await api<string>(node.httpUrl, 'GET', '/metrics', null);
    assert.match(metrics.body, /hourglass_messages_cancelled_total\{app="shop"\} (4\d|[5-9]\d)/);

    await collector.waitFor(kept.length + otherApp.length, 30_000);
    const arrived = new Set(collector.records.map((record) => record.headers['hourglass-id']));
    for (const id of [...kept, ...otherApp]) assert.ok(arrived.has(id), `${id} was delivered`);
    for (const id of doomed) assert.ok(!arrived.has(id), `cancelled ${id} was delivered`);
    const left = await api<Page>(
      node.httpUrl,
      'GET',
      `/v1/messages?key=${key}&state=scheduled`,
      TOKEN,
    );
    assert.deepEqual(left.body.messages, []);
  });
  it('lists and cancels by key with the CLI', async () => {
    const key = `cli-${stamp}`;
    const ids = await schedule(TOKEN, 3, { key, delayMs: 600_000 });
    const env = { ...process.env, HOURGLASS_URL: node.httpUrl, HOURGLASS_ADMIN_TOKEN: ADMIN };
    const cli = async (...args: string[]) =>
      (await exec(CLI, args, { env, timeout: 60_000 })).stdout;

    const listed = JSON.parse(
      await cli('messages', 'list', '--key', key, '--limit', '2', '--all', '--json'),
    ) as Page;
    assert.deepEqual(listed.messages.map((m) => m.id).sort(), [...ids].sort());
    assert.equal(listed.nextCursor, null);
    const table = await cli('messages', 'list', '--key', key, '--app', 'shop');
    assert.match(table, /^APP\s+ID\s+STATE/);
    for (const id of ids) assert.match(table, new RegExp(`shop\\s+${id}\\s+scheduled`));

    const cancelled = await cli('messages', 'cancel', '--app-token', TOKEN, '--key', key);
    assert.match(cancelled, /cancelled:\s+3\n/);
    const after = JSON.parse(
      await cli('messages', 'list', '--key', key, '--state', 'cancelled', '--json'),
    ) as Page;
    assert.equal(after.messages.length, 3);
  });
});

/**
 * Issue 14: debounce across nodes. Three node processes in an etcd cluster; 50 concurrent sends
 * of one debounce key, spread over the three, must yield exactly one delivery: with the last
 * payload in trailing mode, the first in leading mode. A key whose message is delivered starts a
 * new window.
 */
import assert from 'node:assert/strict';
import type { KafkaCollector, TestDatabase } from '@hourglass/testkit';
import {
  collectKafka,
  createTestDatabase,
  createTopics,
  etcdPrefix,
  randomTopicName,
  serviceUrls,
} from '@hourglass/testkit';
import { APP_TOKEN, TestCluster } from '../support/cluster';
import { api } from '../support/harness';

const NODES = ['db-1', 'db-2', 'db-3'];
const SENDS = 50;

interface Answer {
  id: string;
  createdAt: string;
  version: number;
  debounced?: boolean;
  deliverAt: string;
  error?: { code: string };
}

describe('debounce across three nodes', function () {
  this.timeout(120_000);
  const urls = serviceUrls();
  const topic = randomTopicName('debounce');
  let db: TestDatabase;
  let cluster: TestCluster;
  let collector: KafkaCollector;

  before(async () => {
    db = await createTestDatabase();
    await createTopics(urls.kafkaBrokers, [topic], 3);
    collector = await collectKafka(urls.kafkaBrokers, topic);
    cluster = new TestCluster({
      postgresUrl: db.connectionString,
      kafkaBrokers: urls.kafkaBrokers,
      etcdEndpoints: [urls.etcd],
      etcdPrefix: etcdPrefix().replace(/\/$/, ''),
      slots: 16,
      leaseTtlSeconds: 2,
      rebalanceDelayMs: 500,
      topic,
    });
    await cluster.startBalanced(NODES);
  });

  after(async () => {
    await cluster?.stopAll();
    await collector?.stop();
    await db?.drop();
  });

  /** Records of one run, told apart by the payload's `run`. */
  const recordsOf = (run: string) =>
    collector.records.filter(
      (record) => (JSON.parse(record.value.toString()) as { run?: string }).run === run,
    );

  /** SENDS concurrent sends of one key, round-robin over the nodes; the answers in send order. */
  async function sendAll(run: string, debounce: Record<string, unknown>, extra = {}) {
    return Promise.all(
      Array.from({ length: SENDS }, async (_, index) => {
        const node = cluster.node(NODES[index % NODES.length]!);
        const response = await api<Answer>(node.url, 'POST', '/v1/messages', APP_TOKEN, {
          topic,
          payload: { run, index },
          debounce: { key: `cart-${run}`, ...debounce },
          ...extra,
        });
        assert.ok([200, 201].includes(response.status), JSON.stringify(response.body));
        return { index, status: response.status, body: response.body };
      }),
    );
  }

  /** A sentinel through the same nodes, due after `delayMs`: once it arrived, so did anything due before it. */
  async function sentinel(delayMs: number): Promise<void> {
    const run = `sentinel-${Date.now()}`;
    const response = await api(cluster.node('db-2').url, 'POST', '/v1/messages', APP_TOKEN, {
      topic,
      payload: { run },
      delayMs,
    });
    assert.equal(response.status, 201);
    await collector.waitForRecord(
      (record) => (JSON.parse(record.value.toString()) as { run?: string }).run === run,
      30_000,
    );
  }

  it('trailing: one delivery, of the last payload merged, after the window', async () => {
    const run = `trailing-${Date.now()}`;
    const answers = await sendAll(run, { windowMs: 1500 });
    const created = answers.filter((answer) => answer.status === 201);
    assert.equal(created.length, 1, 'exactly one send created the message');
    const survivor = created[0]!.body.id;
    for (const answer of answers) {
      assert.equal(answer.body.id, survivor);
      assert.equal(answer.body.debounced, answer.status !== 201);
    }
    // Each merge raised the version: the highest is the last content written.
    const last = answers.reduce((a, b) => (b.body.version > a.body.version ? b : a));
    assert.equal(last.body.version, SENDS);
    const record = await collector.waitForRecord(
      (r) => (JSON.parse(r.value.toString()) as { run?: string }).run === run,
      30_000,
    );
    assert.deepEqual(JSON.parse(record.value.toString()), { run, index: last.index });
    assert.ok(record.receivedAtMs >= Date.parse(last.body.deliverAt));
    await sentinel(1000);
    assert.equal(recordsOf(run).length, 1);
  });

  it('leading: one delivery, of the first payload; the rest are acknowledged without a message', async () => {
    const run = `leading-${Date.now()}`;
    const answers = await sendAll(run, { windowMs: 60_000, mode: 'leading' }, { delayMs: 800 });
    const created = answers.filter((answer) => answer.status === 201);
    assert.equal(created.length, 1);
    const first = created[0]!;
    for (const answer of answers) {
      assert.equal(answer.body.id, first.body.id);
      assert.equal(answer.body.version, 1, 'nothing changed the first message');
    }
    const record = await collector.waitForRecord(
      (r) => (JSON.parse(r.value.toString()) as { run?: string }).run === run,
      30_000,
    );
    assert.deepEqual(JSON.parse(record.value.toString()), { run, index: first.index });
    await sentinel(1000);
    assert.equal(recordsOf(run).length, 1);
  });

  it('caps a trailing window at maxWaitMs, and starts a new window once the message was delivered', async () => {
    const run = `cap-${Date.now()}`;
    const key = `cart-${run}`;
    const url = cluster.node('db-1').url;
    const send = (index: number) =>
      api<Answer>(url, 'POST', '/v1/messages', APP_TOKEN, {
        topic,
        payload: { run, index },
        debounce: { key, windowMs: 2000, maxWaitMs: 2000 },
      });
    const first = await send(0);
    assert.equal(first.status, 201);
    const firstDue = Date.parse(first.body.deliverAt);
    // Merges keep coming for 150 ms: without the cap the last would be due 2 s after it, at
    // least 150 ms after the first's due time; with maxWaitMs = windowMs it stays there.
    let last = first;
    let index = 0;
    while (Date.now() - Date.parse(first.body.createdAt) < 150) {
      last = await send(++index);
      assert.equal(last.status, 200, JSON.stringify(last.body));
      assert.equal(last.body.debounced, true);
    }
    const capped = Date.parse(last.body.deliverAt);
    assert.ok(Math.abs(capped - firstDue) <= 50, `due ${capped - firstDue} ms after the first`);
    const record = await collector.waitForRecord(
      (r) => (JSON.parse(r.value.toString()) as { run?: string }).run === run,
      30_000,
    );
    assert.deepEqual(JSON.parse(record.value.toString()), { run, index });
    // Delivered: the next send opens a new window with a new message.
    const third = await send(2);
    assert.equal(third.status, 201, JSON.stringify(third.body));
    assert.notEqual(third.body.id, first.body.id);
  });

  it('refuses bad debounce settings and debounce in a batch', async () => {
    const url = cluster.node('db-3').url;
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ topic, payload: 1, debounce: 'x' }, 'debounce'],
      [{ topic, payload: 1, debounce: { windowMs: 10 } }, 'debounce/key'],
      [{ topic, payload: 1, debounce: { key: 'k', windowMs: 0 } }, 'debounce/windowMs'],
      [
        { topic, payload: 1, debounce: { key: 'k', windowMs: 10, maxWaitMs: 5 } },
        'debounce/maxWaitMs',
      ],
      [{ topic, payload: 1, debounce: { key: 'k', windowMs: 10, mode: 'x' } }, 'debounce/mode'],
      [{ topic, payload: 1, delayMs: 5, debounce: { key: 'k', windowMs: 10 } }, 'delayMs'],
      [{ topic, payload: 1, debounce: { key: 'k', windowMs: 10, colour: 1 } }, 'debounce/colour'],
    ];
    for (const [body, path] of cases) {
      const response = await api<{ error: { code: string; details: Array<{ path: string }> } }>(
        url,
        'POST',
        '/v1/messages',
        APP_TOKEN,
        body,
      );
      assert.equal(response.status, 400, JSON.stringify(body));
      assert.equal(response.body.error.code, 'invalid_request');
      assert.ok(
        response.body.error.details.some((detail) => detail.path === path),
        `${JSON.stringify(body)}: ${JSON.stringify(response.body)}`,
      );
    }
    const batch = await api<{ results: Array<{ status: number; error?: { code: string } }> }>(
      url,
      'POST',
      '/v1/messages/batch',
      APP_TOKEN,
      { messages: [{ topic, payload: 1, debounce: { key: 'k', windowMs: 10 } }] },
    );
    assert.equal(batch.status, 200);
    assert.equal(batch.body.results[0]?.status, 400);
  });
});

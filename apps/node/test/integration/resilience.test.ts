/**
 * Issue #3 failure checks on one node: a node killed with -9 resumes every pending message after
 * restart, and a Kafka outage loses nothing. Both use the real services; Kafka is really stopped.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import {
  collectKafka,
  createTestDatabase,
  createTopics,
  randomTopicName,
  serviceUrls,
} from '@hourglass/testkit';
import type { RunningNode } from '../../src/node';
import { ChildNode, api, startInProcess, testConfig } from '../support/harness';

const TOKEN = 'shop-token-0002';
const servicesScript = resolve(__dirname, '../../../../scripts/services');

function services(...args: string[]): void {
  execFileSync('bash', [servicesScript, ...args], { stdio: 'ignore', timeout: 180_000 });
}

/** An outage is a span of time by definition; this is not waiting for an event. */
const outage = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('resilience of one node', function () {
  const urls = serviceUrls();
  let db: Awaited<ReturnType<typeof createTestDatabase>>;

  before(async () => {
    db = await createTestDatabase();
  });
  after(async () => {
    await db?.drop();
  });

  it('resumes every pending message after kill -9, delivering those that came due while it was down', async () => {
    const topic = randomTopicName('crash');
    await createTopics(urls.kafkaBrokers, [topic], 2);
    const collector = await collectKafka(urls.kafkaBrokers, topic);
    const node = await ChildNode.create({
      postgres: { url: db.connectionString },
      kafka: { brokers: urls.kafkaBrokers, createTopics: false },
      core: { horizonMinutes: 0.1, loaderIntervalMs: 200 },
      apps: [{ name: 'shop', token: TOKEN, topics: [topic] }],
    });
    try {
      await node.start();
      const due = new Map<string, number>();
      const messages = Array.from({ length: 60 }, (_, i) => ({
        id: `crash-${i}`,
        topic,
        payload: { i },
        delayMs: 1000 + i * 250,
      }));
      const response = await api<{
        results: Array<{ status: number; message: { id: string; deliverAt: string } }>;
      }>(node.url, 'POST', '/v1/messages/batch', TOKEN, { messages });
      assert.equal(response.status, 200);
      for (const result of response.body.results) {
        assert.equal(result.status, 201);
        due.set(result.message.id, Date.parse(result.message.deliverAt));
      }
      // Let the first few fire, then crash in the middle of the schedule.
      await collector.waitFor(3, 20_000);
      await node.stop('SIGKILL');
      const deliveredBeforeCrash = collector.records.length;
      await outage(5000);
      await node.start();
      // Wait for every id, not a count: duplicates (allowed, at-least-once) would inflate a count.
      const deadline = Date.now() + 60_000;
      for (const id of due.keys()) {
        await collector.waitForRecord(
          (record) => record.headers['hourglass-id'] === id,
          Math.max(1, deadline - Date.now()),
        );
      }
      const seen = new Map<string, number>();
      for (const record of collector.records) {
        const id = record.headers['hourglass-id'] ?? '';
        seen.set(id, (seen.get(id) ?? 0) + 1);
        assert.ok(record.receivedAtMs >= (due.get(id) ?? Infinity), `${id} arrived early`);
      }
      assert.deepEqual([...seen.keys()].sort(), [...due.keys()].sort());
      const duplicates = [...seen.values()].reduce((sum, count) => sum + count - 1, 0);
      assert.ok(
        deliveredBeforeCrash < messages.length,
        'the crash should have happened with messages pending',
      );
      // At-least-once: a duplicate is only possible for a batch acked by Kafka but not yet marked.
      console.log(
        `      kill -9: ${deliveredBeforeCrash} delivered before the crash, ${collector.records.length} records for ${messages.length} messages after restart, ${duplicates} duplicates`,
      );
    } finally {
      await node.stop('SIGKILL');
      await collector.stop();
    }
  });

  it('keeps messages through a 30 s Kafka outage and delivers them all when it is back', async () => {
    const topic = randomTopicName('outage');
    await createTopics(urls.kafkaBrokers, [topic], 2);
    let node: RunningNode | undefined;
    let collector: Awaited<ReturnType<typeof collectKafka>> | undefined;
    try {
      node = await startInProcess(
        testConfig({
          postgres: { url: db.connectionString },
          kafka: { brokers: urls.kafkaBrokers, createTopics: false },
          delivery: { retryInitialMs: 200, retryMaxMs: 2000 },
          apps: [{ name: 'shop', token: TOKEN, topics: [topic] }],
        }),
      );
      const messages = Array.from({ length: 40 }, (_, i) => ({
        id: `outage-${i}`,
        topic,
        payload: { i },
        delayMs: 10_000 + i * 500,
      }));
      const response = await api<{ results: Array<{ status: number }> }>(
        node.httpUrl,
        'POST',
        '/v1/messages/batch',
        TOKEN,
        { messages },
      );
      assert.deepEqual(new Set(response.body.results.map((r) => r.status)), new Set([201]));

      services('down', 'kafka');
      const ready = await api(node.httpUrl, 'GET', '/readyz', null);
      assert.equal(ready.status, 503, 'not ready while Kafka is down');
      // Scheduling still works: Postgres is up, and delivery waits for Kafka.
      const during = await api(node.httpUrl, 'POST', '/v1/messages', TOKEN, {
        id: 'outage-late',
        topic,
        payload: 'late',
        delayMs: 100,
      });
      assert.equal(during.status, 201);
      await outage(30_000);
      const midway = await api(node.httpUrl, 'GET', '/v1/messages/outage-0', TOKEN);
      assert.equal(
        midway.body.state,
        'scheduled',
        'a message that could not be produced stays scheduled',
      );
      // An outage is not an attempt (it never fails a message); the error says why it waits.
      assert.equal(midway.body.attempts, 0);
      assert.match(String(midway.body.lastError), /./);
      services('up', 'kafka');

      collector = await collectKafka(urls.kafkaBrokers, topic);
      const deadline = Date.now() + 90_000;
      for (const id of [...messages.map((m) => m.id), 'outage-late']) {
        await collector.waitForRecord(
          (record) => record.headers['hourglass-id'] === id,
          Math.max(1, deadline - Date.now()),
        );
      }
      const ids = new Set(collector.records.map((record) => record.headers['hourglass-id']));
      assert.equal(ids.size, messages.length + 1);
      const view = await api(node.httpUrl, 'GET', '/v1/messages/outage-0', TOKEN);
      assert.equal(view.body.state, 'delivered');
    } finally {
      services('up', 'kafka');
      await node?.stop();
      await collector?.stop();
    }
  });
});

/**
 * Issue 14: PATCH /v1/messages/{id} across nodes. Two node processes in an etcd cluster; each
 * change is sent to the node that does NOT own the message's slot while the owner holds the
 * message in its wheel (or, for a message beyond the horizon, in Postgres only). The old version
 * must never be delivered, the new one exactly once and never before its new time.
 */
import assert from 'node:assert/strict';
import { slotOf } from '@hourglass/core';
import type { KafkaCollector, TestDatabase, TestReceiver } from '@hourglass/testkit';
import {
  collectKafka,
  createTestDatabase,
  createTopics,
  etcdPrefix,
  pollUntil,
  randomTopicName,
  serviceUrls,
  startReceiver,
} from '@hourglass/testkit';
import { APP, APP_TOKEN, TestCluster } from '../support/cluster';
import { api } from '../support/harness';

const SLOTS = 16;
const NODES = ['up-1', 'up-2'];

interface View {
  id: string;
  state: string;
  version: number;
  deliverAt: string;
  error?: { code: string };
  targets: Array<{ attempts: number; nextAttemptAt?: string }>;
}

describe('changing scheduled messages across nodes (PATCH)', function () {
  this.timeout(120_000);
  const urls = serviceUrls();
  const topic = randomTopicName('update');
  let db: TestDatabase;
  let cluster: TestCluster;
  let collector: KafkaCollector;
  let receiver: TestReceiver;

  before(async () => {
    db = await createTestDatabase();
    await createTopics(urls.kafkaBrokers, [topic], 2);
    collector = await collectKafka(urls.kafkaBrokers, topic);
    cluster = new TestCluster({
      postgresUrl: db.connectionString,
      kafkaBrokers: urls.kafkaBrokers,
      etcdEndpoints: [urls.etcd],
      etcdPrefix: etcdPrefix().replace(/\/$/, ''),
      slots: SLOTS,
      leaseTtlSeconds: 2,
      rebalanceDelayMs: 500,
      topic,
    });
    await cluster.startBalanced(NODES, { callbacks: { allowNetworks: ['127.0.0.0/8'] } });
    receiver = await startReceiver((_request, index) =>
      index === 0 ? { status: 503 } : { status: 200, body: 'ok' },
    );
  });

  after(async () => {
    await cluster?.stopAll();
    await collector?.stop();
    await receiver?.stop();
    await db?.drop();
  });

  /** The owner of the id's slot and the other node, by URL. */
  async function ownerAndOther(id: string): Promise<{ owner: string; other: string }> {
    const slot = slotOf(APP, id, SLOTS);
    const { view } = await cluster.waitForView(
      'up-1',
      'the slot owned',
      (v) => v.slots[slot]?.owner !== null,
      10_000,
    );
    const owner = view.slots[slot]!.owner!;
    const other = NODES.find((node) => node !== owner)!;
    return { owner: cluster.node(owner).url, other: cluster.node(other).url };
  }

  const recordsOf = (id: string) =>
    collector.records.filter((record) => record.headers['hourglass-id'] === id);

  async function schedule(url: string, body: Record<string, unknown>): Promise<View> {
    const response = await api<View>(url, 'POST', '/v1/messages', APP_TOKEN, body);
    assert.equal(response.status, 201, JSON.stringify(response.body));
    assert.equal(response.headers.get('etag'), '"1"');
    assert.equal(response.body.version, 1);
    return response.body;
  }

  async function patch(
    url: string,
    id: string,
    body: unknown,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; body: View; etag: string | null }> {
    const response = await api<View>(
      url,
      'PATCH',
      `/v1/messages/${id}`,
      APP_TOKEN,
      body,
      'application/json',
      headers,
    );
    return { status: response.status, body: response.body, etag: response.headers.get('etag') };
  }

  /** Schedules a sentinel through `url` and waits for its record: everything due before it fired. */
  async function sentinelAfter(url: string, delayMs: number): Promise<void> {
    const id = `sentinel-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
    await schedule(url, { id, topic, payload: 'sentinel', delayMs });
    await collector.waitForRecord((record) => record.headers['hourglass-id'] === id, 30_000);
  }

  it('moves a wheeled message later: the old time delivers nothing, the new one the new payload once', async () => {
    const id = `later-${Date.now()}`;
    const { owner, other } = await ownerAndOther(id);
    await schedule(owner, { id, topic, payload: { v: 1 }, delayMs: 1500 });
    const changedAt = Date.now();
    const changed = await patch(other, id, { delayMs: 4000, payload: { v: 2 } });
    assert.equal(changed.status, 200, JSON.stringify(changed.body));
    assert.equal(changed.etag, '"2"');
    assert.equal(changed.body.version, 2);
    const newDue = Date.parse(changed.body.deliverAt);
    assert.ok(newDue >= changedAt + 4000);
    const record = await collector.waitForRecord((r) => r.headers['hourglass-id'] === id, 30_000);
    assert.ok(record.receivedAtMs >= newDue, `${newDue - record.receivedAtMs} ms early`);
    assert.deepEqual(JSON.parse(record.value.toString()), { v: 2 });
    await sentinelAfter(owner, 500);
    assert.equal(recordsOf(id).length, 1);
  });

  it('moves a wheeled message earlier through the other node: delivered once, at the new time', async () => {
    const id = `earlier-${Date.now()}`;
    const { owner, other } = await ownerAndOther(id);
    await schedule(owner, { id, topic, payload: { v: 1 }, delayMs: 8000 });
    const changed = await patch(other, id, { delayMs: 600, payload: { v: 2 }, key: 'k-2' });
    assert.equal(changed.status, 200, JSON.stringify(changed.body));
    const newDue = Date.parse(changed.body.deliverAt);
    const record = await collector.waitForRecord((r) => r.headers['hourglass-id'] === id, 30_000);
    assert.ok(record.receivedAtMs >= newDue, `${newDue - record.receivedAtMs} ms early`);
    assert.ok(record.receivedAtMs < newDue + 5000, 'delivered at the new time, not the old one');
    assert.equal(record.key, 'k-2');
    assert.deepEqual(JSON.parse(record.value.toString()), { v: 2 });
    // The old due time passes with nothing more.
    await sentinelAfter(owner, 9000);
    assert.equal(recordsOf(id).length, 1);
  });

  it('brings a message from beyond the horizon into it (a wheel hint for the owner)', async () => {
    const id = `into-horizon-${Date.now()}`;
    const { other } = await ownerAndOther(id);
    await schedule(other, { id, topic, payload: 'far', delayMs: 10 * 60_000 });
    const changed = await patch(other, id, { delayMs: 700 });
    assert.equal(changed.status, 200, JSON.stringify(changed.body));
    const record = await collector.waitForRecord((r) => r.headers['hourglass-id'] === id, 30_000);
    assert.ok(record.receivedAtMs >= Date.parse(changed.body.deliverAt));
    assert.equal(record.value.toString(), '"far"');
  });

  it('moves a wheeled message beyond the horizon: not delivered at the old time', async () => {
    const id = `out-of-horizon-${Date.now()}`;
    const { owner, other } = await ownerAndOther(id);
    await schedule(owner, { id, topic, payload: 'x', delayMs: 1000 });
    const changed = await patch(other, id, { delayMs: 5 * 60_000 });
    assert.equal(changed.status, 200, JSON.stringify(changed.body));
    await sentinelAfter(owner, 2500);
    assert.equal(recordsOf(id).length, 0);
    const view = await api<View>(owner, 'GET', `/v1/messages/${id}`, APP_TOKEN);
    assert.equal(view.body.state, 'scheduled');
    assert.equal(view.headers.get('etag'), '"2"');
  });

  it('applies one of two conditional changes of the same version; the other gets 412', async () => {
    const id = `conditional-${Date.now()}`;
    const { owner, other } = await ownerAndOther(id);
    await schedule(owner, { id, topic, payload: 'v1', delayMs: 60_000 });
    const [a, b] = await Promise.all([
      patch(owner, id, { payload: 'from-a' }, { 'if-match': '"1"' }),
      patch(other, id, { payload: 'from-b' }, { 'if-match': '"1"' }),
    ]);
    const statuses = [a.status, b.status].sort();
    assert.deepEqual(statuses, [200, 412], JSON.stringify([a.body, b.body]));
    const loser = a.status === 412 ? a : b;
    assert.equal(loser.body.error?.code, 'version_mismatch');
    // The version it names is the one it now has.
    const now = await api<View>(owner, 'GET', `/v1/messages/${id}`, APP_TOKEN);
    assert.equal(now.body.version, 2);
    const current = await patch(other, id, { payload: 'v3' }, { 'if-match': 'W/"1", "2"' });
    assert.equal(current.status, 200, JSON.stringify(current.body));
    assert.equal(current.etag, '"3"');
    const bad = await patch(other, id, { payload: 'v4' }, { 'if-match': 'version-3' });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error?.code, 'invalid_request');
    await api(owner, 'DELETE', `/v1/messages/${id}`, APP_TOKEN);
  });

  it('answers a re-send of the original POST after a change with the message as it is now', async () => {
    const id = `resend-${Date.now()}`;
    const { owner, other } = await ownerAndOther(id);
    const original = { id, topic, payload: 'first', delayMs: 60_000 };
    await schedule(owner, original);
    assert.equal((await patch(other, id, { payload: 'second' })).status, 200);
    const again = await api<View>(other, 'POST', '/v1/messages', APP_TOKEN, original);
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal(again.body.version, 2);
    assert.equal(again.headers.get('etag'), '"2"');
    // Other content under the same id is still a conflict.
    const different = await api<View>(other, 'POST', '/v1/messages', APP_TOKEN, {
      ...original,
      payload: 'third',
    });
    assert.equal(different.status, 409);
    await api(owner, 'DELETE', `/v1/messages/${id}`, APP_TOKEN);
  });

  it('moves the next attempt of a callback waiting out its retry backoff', async () => {
    const id = `backoff-${Date.now()}`;
    const { owner, other } = await ownerAndOther(id);
    await schedule(owner, {
      id,
      payload: { attempt: true },
      delayMs: 100,
      callback: { url: receiver.url },
      retry: { strategy: 'fixed', initialDelayMs: 60_000, maxAttempts: 3, jitter: false },
    });
    await receiver.waitFor(1, 15_000);
    const waiting = await pollUntil(
      () => api<View>(other, 'GET', `/v1/messages/${id}`, APP_TOKEN),
      (view) => view.body.targets[0]?.nextAttemptAt !== undefined,
      10_000,
    );
    assert.equal(waiting.body.state, 'scheduled');
    const changed = await patch(other, id, { delayMs: 300 });
    assert.equal(changed.status, 200, JSON.stringify(changed.body));
    const requests = await receiver.waitFor(2, 15_000);
    assert.ok(requests[1]!.receivedAtMs >= Date.parse(changed.body.deliverAt));
    const done = await pollUntil(
      () => api<View>(owner, 'GET', `/v1/messages/${id}`, APP_TOKEN),
      (view) => view.body.state === 'delivered',
      10_000,
    );
    assert.equal(done.body.targets[0]?.attempts, 2);
  });

  it('refuses changes it cannot make with the usual codes', async () => {
    const id = `refused-${Date.now()}`;
    const { owner, other } = await ownerAndOther(id);
    await schedule(owner, { id, topic, payload: 'x', delayMs: 60_000 });
    const cases: Array<[unknown, number, string]> = [
      [{}, 400, 'invalid_request'],
      [{ id: 'other' }, 400, 'invalid_request'],
      [{ colour: 'red' }, 400, 'invalid_request'],
      [{ delayMs: -1 }, 400, 'invalid_request'],
      [{ payload: 1, payloadBase64: 'AA==' }, 400, 'invalid_request'],
      [{ topic: 'not-granted' }, 403, 'topic_not_allowed'],
      [{ delayMs: 3651 * 86_400_000 }, 400, 'delay_too_long'],
    ];
    for (const [body, status, code] of cases) {
      const response = await patch(other, id, body);
      assert.equal(
        response.status,
        status,
        `${JSON.stringify(body)}: ${JSON.stringify(response.body)}`,
      );
      assert.equal(response.body.error?.code, code);
    }
    assert.equal((await patch(other, 'no-such-message', { delayMs: 1 })).status, 404);
    await api(owner, 'DELETE', `/v1/messages/${id}`, APP_TOKEN);
    const cancelled = await patch(other, id, { delayMs: 1 });
    assert.equal(cancelled.status, 409);
    assert.equal(cancelled.body.error?.code, 'already_cancelled');
    const delivered = `delivered-${Date.now()}`;
    await schedule(owner, { id: delivered, topic, payload: 'x', delayMs: 0 });
    await collector.waitForRecord((r) => r.headers['hourglass-id'] === delivered, 30_000);
    await pollUntil(
      () => api<View>(owner, 'GET', `/v1/messages/${delivered}`, APP_TOKEN),
      (view) => view.body.state === 'delivered',
      10_000,
    );
    const late = await patch(other, delivered, { payload: 'too late' });
    assert.equal(late.status, 409);
    assert.equal(late.body.error?.code, 'already_delivered');
  });
});

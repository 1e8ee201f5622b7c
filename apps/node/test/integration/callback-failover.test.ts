/**
 * Issue 12: a callback retry survives kill -9 of the node that owns its slot. Two node processes
 * in an etcd cluster; the message's first attempt fails, its owner is killed during the backoff,
 * and the second attempt comes from the surviving node, at its time (not before), with the
 * attempt count carried over from Postgres.
 */
import assert from 'node:assert/strict';
import { slotOf } from '@hourglass/core';
import type { TestDatabase, TestReceiver } from '@hourglass/testkit';
import {
  createTestDatabase,
  createTopics,
  etcdPrefix,
  randomTopicName,
  pollUntil,
  serviceUrls,
  startReceiver,
} from '@hourglass/testkit';
import { APP, APP_TOKEN, TestCluster } from '../support/cluster';
import { api } from '../support/harness';

const SLOTS = 16;
const BACKOFF_MS = 5000;

describe('callback retries through kill -9 of the owning node', function () {
  this.timeout(120_000);
  const urls = serviceUrls();
  const topic = randomTopicName('cbfail');
  let db: TestDatabase;
  let cluster: TestCluster;
  let receiver: TestReceiver;

  before(async () => {
    db = await createTestDatabase();
    await createTopics(urls.kafkaBrokers, [topic], 1);
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
    await cluster.startBalanced(['cb-1', 'cb-2'], {
      callbacks: { allowNetworks: ['127.0.0.0/8'] },
    });
    receiver = await startReceiver((_request, index) =>
      index === 0 ? { status: 503 } : { status: 200, body: 'ok' },
    );
  });

  after(async () => {
    for (const node of cluster?.nodes.values() ?? [])
      await node.stop('SIGKILL').catch(() => undefined);
    await receiver?.stop();
    await db?.drop();
  });

  it('the next attempt comes from the new owner, at its time', async () => {
    const id = `failover-${Date.now()}`;
    const slot = slotOf(APP, id, SLOTS);
    const { view } = await cluster.waitForView(
      'cb-1',
      'owned',
      (v) => v.slots[slot]?.owner !== null,
      10_000,
    );
    const owner = view.slots[slot]!.owner!;
    const survivor = owner === 'cb-1' ? 'cb-2' : 'cb-1';
    // Scheduled through the survivor: the owner learns of it through a wheel hint.
    const response = await api<{ deliverAt: string }>(
      cluster.node(survivor).url,
      'POST',
      '/v1/messages',
      APP_TOKEN,
      {
        id,
        delayMs: 200,
        payload: { failover: true },
        callback: { url: receiver.url },
        retry: { strategy: 'fixed', initialDelayMs: BACKOFF_MS, maxAttempts: 3, jitter: false },
      },
    );
    assert.equal(response.status, 201, JSON.stringify(response.body));
    const [first] = await receiver.waitFor(1, 15_000);
    assert.equal(first?.headers['hourglass-attempt'], '1');
    // The first attempt's failure is settled (and its next attempt time written) before the kill.
    const written = await pollUntil(
      () =>
        api<{ nextAttemptAt?: string }>(
          cluster.node(survivor).url,
          'GET',
          `/v1/messages/${id}`,
          APP_TOKEN,
        ),
      (response) => response.body.nextAttemptAt !== undefined,
      10_000,
    );
    const nextAttemptAt = written.body.nextAttemptAt
      ? Date.parse(written.body.nextAttemptAt)
      : undefined;
    assert.ok(nextAttemptAt, 'the retry was written to Postgres');
    await cluster.node(owner).stop('SIGKILL');
    const [, second] = await receiver.waitFor(2, 30_000);
    assert.equal(second?.headers['hourglass-attempt'], '2');
    assert.ok(
      second.receivedAtMs >= nextAttemptAt,
      `the retry came ${nextAttemptAt - second.receivedAtMs} ms early`,
    );
    assert.ok(
      second.receivedAtMs - nextAttemptAt < 5000,
      `the retry came ${second.receivedAtMs - nextAttemptAt} ms late`,
    );
    const { view: after } = await cluster.waitForView(
      survivor,
      'survivor owns the slot',
      (v) => v.slots[slot]?.owner === survivor,
      15_000,
    );
    assert.equal(after.slots[slot]?.owner, survivor);
    // Delivered, as the survivor's store shows.
    const delivered = await pollUntil(
      () =>
        api<{ state: string }>(cluster.node(survivor).url, 'GET', `/v1/messages/${id}`, APP_TOKEN),
      (response) => response.body.state === 'delivered',
      10_000,
    );
    assert.equal(delivered.body.state, 'delivered', 'the message was delivered by the survivor');
  });
});

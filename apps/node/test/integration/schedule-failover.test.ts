/**
 * Issue 14: a recurring schedule every 2 s delivers each occurrence exactly once through a kill -9
 * of the node that owns the schedule's slot. Three node processes in an etcd cluster, a horizon of
 * 6 s (so the killed owner had materialised only a few seconds ahead, and the occurrences after
 * that must come from the slot's new owner), a real HTTP receiver. No occurrence may be missing,
 * duplicated or early.
 */
import assert from 'node:assert/strict';
import { slotOf } from '@hourglass/core';
import type { ReceivedRequest, TestDatabase, TestReceiver } from '@hourglass/testkit';
import {
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
const EVERY_MS = 2000;
const NODES = ['sf-1', 'sf-2', 'sf-3'];
/** The horizon (0.1 min) plus two passes of 1 s: how far ahead the owner materialises. */
const AHEAD_MS = 6000 + 2 * 1000;

/** The occurrence time in a delivered occurrence's id (`<schedule>:<revision>:<ms>`). */
function occurrenceTime(request: ReceivedRequest): number {
  return Number(String(request.headers['hourglass-id']).split(':')[2]);
}

describe('a recurring schedule through kill -9 of its slot owner', function () {
  this.timeout(120_000);
  const urls = serviceUrls();
  const topic = randomTopicName('schedfail');
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
    await cluster.startBalanced(NODES, {
      core: { horizonMinutes: 0.1, loaderIntervalMs: 250, hintDrainIntervalMs: 250 },
      schedules: { passIntervalMs: 1000, misfireGraceMs: 60_000 },
      callbacks: { allowNetworks: ['127.0.0.0/8'] },
    });
    receiver = await startReceiver(() => ({ status: 200, body: 'ok' }));
  });

  after(async () => {
    for (const node of cluster?.nodes.values() ?? [])
      await node.stop('SIGKILL').catch(() => undefined);
    await receiver?.stop();
    await db?.drop();
  });

  it('delivers every occurrence once, none early, before and after the failover', async () => {
    const id = `tick-${Date.now()}`;
    const slot = slotOf(APP, id, SLOTS);
    const { view } = await cluster.waitForView(
      'sf-1',
      'owned',
      (v) => v.slots[slot]?.owner !== null,
      10_000,
    );
    const owner = view.slots[slot]!.owner!;
    const survivor = NODES.find((node) => node !== owner)!;
    const via = cluster.node(survivor).url;
    // Created through another node: the owner's pass finds it.
    const created = await api(via, 'POST', '/v1/schedules', APP_TOKEN, {
      id,
      every: '2s',
      message: { callback: { url: receiver.url }, payload: { schedule: id } },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const mine = (request: ReceivedRequest) =>
      String(request.headers['hourglass-id']).startsWith(`${id}:`);

    const before = await receiver.waitFor(3, 20_000, mine);
    // Kill between two occurrences: the last one is marked delivered, the next is ~2 s away.
    const lastId = String(before[before.length - 1]!.headers['hourglass-id']);
    const marked = await pollUntil(
      () => api<{ state: string }>(via, 'GET', `/v1/messages/${lastId}`, APP_TOKEN),
      (response) => response.body.state === 'delivered',
      10_000,
    );
    assert.equal(marked.body.state, 'delivered');
    const killedAt = Date.now();
    await cluster.node(owner).stop('SIGKILL');

    // Occurrences well past what the killed owner had materialised must come from the new owner.
    const beyond = killedAt + AHEAD_MS + 4 * EVERY_MS;
    await receiver.waitFor(
      1,
      60_000,
      (request) => mine(request) && occurrenceTime(request) >= beyond,
    );
    const { view: after } = await cluster.waitForView(
      survivor,
      'the slot has a new owner',
      (v) => v.slots[slot]?.owner !== null && v.slots[slot]?.owner !== owner,
      15_000,
    );
    assert.notEqual(after.slots[slot]?.owner, owner);
    const stopped = await api(via, 'DELETE', `/v1/schedules/${id}`, APP_TOKEN);
    assert.equal(stopped.status, 200);

    const delivered = receiver.requests.filter(mine);
    const ids = delivered.map((request) => String(request.headers['hourglass-id']));
    assert.equal(new Set(ids).size, ids.length, `duplicates: ${ids.join(' ')}`);
    const times = delivered.map(occurrenceTime).sort((a, b) => a - b);
    const first = times[0]!;
    const last = times.filter((t) => t <= beyond).pop()!;
    for (let t = first; t <= last; t += EVERY_MS)
      assert.ok(times.includes(t), `occurrence ${new Date(t).toISOString()} is missing`);
    for (const request of delivered)
      assert.ok(
        request.receivedAtMs >= occurrenceTime(request),
        `${String(request.headers['hourglass-id'])} came ${occurrenceTime(request) - request.receivedAtMs} ms early`,
      );
    // Late only by the failover (lease TTL 2 s, rebalance, takeover): never by a lost occurrence.
    const lateness = delivered.map((request) => request.receivedAtMs - occurrenceTime(request));
    assert.ok(
      Math.max(...lateness) < 10_000,
      `an occurrence came ${Math.max(...lateness)} ms late`,
    );
    const view2 = await api<{ occurrences: number }>(via, 'GET', `/v1/schedules/${id}`, APP_TOKEN);
    assert.equal(view2.status, 404, 'deleted');
  });
});

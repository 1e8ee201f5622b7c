/**
 * EtcdCoordinator against the real etcd (`scripts/services up`), each test under its own key
 * prefix. The engine is a recording fake: these tests are about who owns what and in which order
 * the engine is told, not about firing (apps/node/test/integration/cluster.test.ts covers that).
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SlotLease } from '@hourglass/core';
import { HourglassError } from '@hourglass/core';
import { etcdPrefix, serviceUrls } from '@hourglass/testkit';
import { Etcd3 } from 'etcd3';
import { EtcdCoordinator } from '../../src';
import type { EtcdCoordinatorOptions } from '../../src';

const SLOTS = 16;
const TTL_SECONDS = 2;
const urls = serviceUrls();

/** Records the engine calls and fails the test on an impossible sequence. */
class FakeEngine {
  readonly owned = new Set<number>();
  readonly calls: Array<{
    op: 'acquire' | 'release';
    slots: number[];
    minEpoch?: number;
    atMs: number;
  }> = [];
  readonly errors: string[] = [];

  ownedSlots(): SlotLease[] {
    return [...this.owned].map((slot) => ({ slot, epoch: 1 }));
  }

  acquireSlots(slots: readonly number[], minEpoch = 0): Promise<SlotLease[]> {
    for (const slot of slots) {
      if (this.owned.has(slot)) this.errors.push(`slot ${slot} acquired twice without a release`);
      this.owned.add(slot);
    }
    this.calls.push({ op: 'acquire', slots: [...slots], minEpoch, atMs: Date.now() });
    return Promise.resolve(slots.map((slot) => ({ slot, epoch: minEpoch })));
  }

  releaseSlots(slots: readonly number[]): Promise<void> {
    for (const slot of slots) this.owned.delete(slot);
    this.calls.push({ op: 'release', slots: [...slots], atMs: Date.now() });
    return Promise.resolve();
  }
}

/** The view once every owned slot shows its epoch (owners publish it right after acquiring). */
async function settledView(
  coordinator: EtcdCoordinator,
): Promise<Awaited<ReturnType<EtcdCoordinator['clusterView']>>> {
  let view = await coordinator.clusterView();
  await until('every owner published its epoch', async () => {
    view = await coordinator.clusterView();
    return view.slots.every((slot) => slot.owner === null || slot.epoch !== null);
  });
  return view;
}

async function until(
  what: string,
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await condition()) return Date.now() - started;
    if (Date.now() - started > timeoutMs)
      throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await sleep(20);
  }
}

describe('EtcdCoordinator (real etcd)', function () {
  this.timeout(40_000);
  let prefix: string;
  let etcd: Etcd3;
  const running: EtcdCoordinator[] = [];

  const coordinator = (
    nodeId: string,
    engine: FakeEngine,
    options: Partial<EtcdCoordinatorOptions> = {},
  ): EtcdCoordinator => {
    const created = new EtcdCoordinator(engine, {
      endpoints: [urls.etcd],
      prefix,
      nodeId,
      httpUrl: `http://${nodeId}.test`,
      grpcAddress: `${nodeId}.test:9090`,
      slotCount: SLOTS,
      leaseTtlSeconds: TTL_SECONDS,
      rebalanceDelayMs: 200,
      resyncIntervalMs: 250,
      ...options,
    });
    running.push(created);
    return created;
  };

  before(() => {
    etcd = new Etcd3({ hosts: urls.etcd });
  });

  beforeEach(() => {
    // The config schema wants no trailing slash.
    prefix = etcdPrefix().replace(/\/$/, '');
  });

  afterEach(async () => {
    await Promise.all(running.splice(0).map((c) => c.stop()));
    await etcd.delete().prefix(`${prefix}/`);
  });

  after(() => {
    etcd.close();
  });

  it('two coordinators split the slots evenly and disjointly, and the view agrees', async () => {
    const engineA = new FakeEngine();
    const engineB = new FakeEngine();
    const a = coordinator('node-a', engineA);
    const b = coordinator('node-b', engineB);
    await Promise.all([a.start(), b.start()]);
    await until(
      'the slots are split 8/8',
      () => engineA.owned.size === SLOTS / 2 && engineB.owned.size === SLOTS / 2,
    );
    for (const slot of engineA.owned)
      assert.ok(!engineB.owned.has(slot), `slot ${slot} owned by both`);
    assert.ok(a.ownershipConfirmed() && b.ownershipConfirmed());

    const view = await settledView(b);
    assert.equal(view.slotCount, SLOTS);
    assert.deepEqual(
      view.nodes.map((n) => [n.id, n.httpUrl, n.drained, n.slots.length]),
      [
        ['node-a', 'http://node-a.test', false, 8],
        ['node-b', 'http://node-b.test', false, 8],
      ],
    );
    for (const { slot, owner, epoch } of view.slots) {
      assert.equal(owner, engineA.owned.has(slot) ? 'node-a' : 'node-b');
      assert.ok(epoch !== null && epoch > 0);
    }
    // The engine got the owner keys' create revision (the largest of its batch) as epoch floor,
    // and the epochs it answered (the fake answers the floor) are what the view shows.
    const acquireA = engineA.calls.filter((call) => call.op === 'acquire');
    const keys = await etcd.getAll().prefix(`${prefix}/owners/`).exec();
    const revisionsA = keys.kvs
      .filter((kv) => (JSON.parse(kv.value.toString()) as { node: string }).node === 'node-a')
      .map((kv) => Number(kv.create_revision));
    assert.equal(revisionsA.length, SLOTS / 2);
    assert.equal(Math.max(...acquireA.map((call) => call.minEpoch ?? 0)), Math.max(...revisionsA));
    const epochsA = new Set(view.slots.filter((s) => s.owner === 'node-a').map((s) => s.epoch));
    assert.deepEqual(epochsA, new Set(acquireA.map((call) => call.minEpoch)));
    assert.deepEqual([...engineA.errors, ...engineB.errors], []);
  });

  it('when one stops gracefully the other gets every slot, with higher epochs, after the stopper released', async () => {
    const engineA = new FakeEngine();
    const engineB = new FakeEngine();
    const a = coordinator('node-a', engineA);
    const b = coordinator('node-b', engineB);
    await Promise.all([a.start(), b.start()]);
    await until(
      'the slots are split',
      () => engineA.owned.size === SLOTS / 2 && engineB.owned.size === SLOTS / 2,
    );
    const before = await settledView(b);
    const epochsOfA = new Map(
      before.slots.filter((s) => s.owner === 'node-a').map((s) => [s.slot, s.epoch ?? 0]),
    );

    await a.stop();
    assert.equal(engineA.owned.size, 0, 'a stopped firing everything before stop() resolved');
    const releasedAt = engineA.calls.filter((call) => call.op === 'release').at(-1)?.atMs ?? 0;
    await until('b owns every slot', () => engineB.owned.size === SLOTS);
    const takenAt = engineB.calls.filter((call) => call.op === 'acquire').at(-1)?.atMs ?? 0;
    assert.ok(takenAt >= releasedAt, 'b acquired only after a released');
    console.log(`      handoff: a released at +0 ms, b acquired at +${takenAt - releasedAt} ms`);

    const after = await settledView(b);
    for (const [slot, epoch] of epochsOfA) {
      const now = after.slots[slot];
      assert.equal(now?.owner, 'node-b');
      assert.ok(
        (now?.epoch ?? 0) > epoch,
        `slot ${slot}: the new epoch ${now?.epoch} must exceed ${epoch}`,
      );
    }
    assert.deepEqual(
      after.nodes.map((n) => n.id),
      ['node-b'],
    );
    assert.deepEqual([...engineA.errors, ...engineB.errors], []);
  });

  it('honours pins and drains, and rejects unknown nodes', async () => {
    const engineA = new FakeEngine();
    const engineB = new FakeEngine();
    const a = coordinator('node-a', engineA);
    const b = coordinator('node-b', engineB);
    await Promise.all([a.start(), b.start()]);
    await until(
      'the slots are split',
      () =>
        engineA.owned.size + engineB.owned.size === SLOTS &&
        engineA.owned.size > 0 &&
        engineB.owned.size > 0,
    );

    const slotOfA = [...engineA.owned][0] ?? 0;
    await b.pinSlot(slotOfA, 'node-b');
    await until(
      `slot ${slotOfA} moved to its pin`,
      () => engineB.owned.has(slotOfA) && !engineA.owned.has(slotOfA),
    );
    const pinned = await a.clusterView();
    assert.equal(pinned.slots[slotOfA]?.pinnedTo, 'node-b');
    await a.unpinSlot(slotOfA);
    await a.unpinSlot(slotOfA); // idempotent

    await a.drainNode('node-a');
    await until('a is drained', () => engineA.owned.size === 0 && engineB.owned.size === SLOTS);
    const drained = await a.clusterView();
    assert.deepEqual(
      drained.nodes.map((n) => [n.id, n.drained, n.slots.length]),
      [
        ['node-a', true, 0],
        ['node-b', false, SLOTS],
      ],
    );
    await b.undrainNode('node-a');
    await until(
      'a has slots again',
      () => engineA.owned.size === SLOTS / 2 && engineB.owned.size === SLOTS / 2,
    );

    await assert.rejects(
      a.pinSlot(1, 'node-zz'),
      (error: unknown) => error instanceof HourglassError && error.code === 'not_found',
    );
    await assert.rejects(
      a.drainNode('node-zz'),
      (error: unknown) => error instanceof HourglassError && error.code === 'not_found',
    );
    await assert.rejects(
      a.pinSlot(SLOTS, 'node-a'),
      (error: unknown) => error instanceof HourglassError && error.code === 'invalid_request',
    );
    assert.deepEqual([...engineA.errors, ...engineB.errors], []);
  });

  it('on lease loss it stops firing everything at once, then rejoins and takes its share again', async () => {
    const engineA = new FakeEngine();
    const engineB = new FakeEngine();
    const a = coordinator('node-a', engineA);
    const b = coordinator('node-b', engineB);
    await Promise.all([a.start(), b.start()]);
    await until(
      'the slots are split',
      () => engineA.owned.size === SLOTS / 2 && engineB.owned.size === SLOTS / 2,
    );

    // Revoking a's lease from outside is what etcd does when it expires: a's keys vanish.
    const nodeKey = await etcd.get(`${prefix}/nodes/node-a`).exec();
    const leaseId = nodeKey.kvs[0]?.lease;
    assert.ok(leaseId);
    const callsBefore = engineA.calls.length;
    await etcd.leaseClient.leaseRevoke({ ID: leaseId });

    const releasedIn = await until('a released every slot', () => engineA.owned.size === 0);
    // First thing after the loss: one release of everything, before any new acquisition.
    const first = engineA.calls[callsBefore];
    assert.equal(first?.op, 'release');
    assert.equal(first.slots.length, SLOTS / 2, 'released in one call');
    console.log(`      lease revoked -> a released everything in ${releasedIn} ms`);

    await until(
      'a rejoined and owns its share',
      () => engineA.owned.size === SLOTS / 2 && engineB.owned.size === SLOTS / 2 && a.ownershipConfirmed(),
    );
    const view = await b.clusterView();
    assert.equal(view.slots.filter((s) => s.owner === null).length, 0);
    assert.deepEqual([...engineA.errors, ...engineB.errors], []);
  });

  it('fences itself when keepalives have not been acknowledged for TTL minus the margin', async () => {
    let skewMs = 0;
    const engineA = new FakeEngine();
    const a = coordinator('node-a', engineA, { clock: { now: () => Date.now() + skewMs } });
    await a.start();
    await until('a owns every slot', () => engineA.owned.size === SLOTS);
    assert.equal(a.ownershipConfirmed(), true);
    // As if the process had been paused for a TTL: the last acknowledged keepalive is that old.
    skewMs = TTL_SECONDS * 1000;
    assert.equal(a.ownershipConfirmed(), false);
    // The next acknowledged keepalive (every TTL/3) makes it fresh again: the lease was never lost.
    await until('a keepalive was acknowledged', () => a.ownershipConfirmed(), TTL_SECONDS * 1000);
    assert.equal(engineA.owned.size, SLOTS);
  });
});

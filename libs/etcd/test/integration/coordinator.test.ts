/**
 * EtcdCoordinator against the real etcd (`scripts/services up`), each test under its own key
 * prefix. The engines are recording fakes on a shared fake of the store's epochs: these tests are
 * about who owns what and in which order the engine is told, not about firing
 * (apps/node/test/integration/cluster.test.ts covers that). etcd is never stopped: a coordinator
 * that must lose it talks to etcd through a TCP proxy the test cuts.
 *
 * Throughout every test a monitor checks the zombie rule: a coordinator that reports its ownership
 * confirmed never has its engine fire a slot whose epoch another node raised since.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ClusterView } from '@hourglass/core';
import { HourglassError } from '@hourglass/core';
import { TcpProxy, etcdPrefix, serviceUrls } from '@hourglass/testkit';
import { Etcd3 } from 'etcd3';
import type { Watcher } from 'etcd3';
import { EtcdCoordinator } from '../../src';
import type { EtcdCoordinatorOptions } from '../../src';
import { FakeEngine, FakeEpochs } from '../support/fake-engine';

const SLOTS = 16;
const TTL_SECONDS = 2;
const urls = serviceUrls();

function log(line: string): void {
  console.log(`      ${line}`);
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

/** The view once every owned slot shows its epoch (owners publish it right after acquiring). */
async function settledView(coordinator: EtcdCoordinator): Promise<ClusterView> {
  let view = await coordinator.clusterView();
  await until('every owner published its epoch', async () => {
    view = await coordinator.clusterView();
    return view.slots.every((slot) => slot.owner === null || slot.epoch !== null);
  });
  return view;
}

function disjoint(...engines: FakeEngine[]): boolean {
  const seen = new Set<number>();
  for (const engine of engines)
    for (const slot of engine.owned.keys()) {
      if (seen.has(slot)) return false;
      seen.add(slot);
    }
  return true;
}

/** Every slot fired by exactly one engine, `share` each, and every coordinator confirmed. */
function split(pairs: ReadonlyArray<[EtcdCoordinator, FakeEngine]>, share: number): boolean {
  return (
    disjoint(...pairs.map(([, engine]) => engine)) &&
    pairs.every(([c, engine]) => engine.owned.size === share && c.ownershipConfirmed())
  );
}

describe('EtcdCoordinator (real etcd)', function () {
  this.timeout(40_000);
  let prefix: string;
  let etcd: Etcd3;
  let epochs: FakeEpochs;
  const running: Array<[EtcdCoordinator, FakeEngine]> = [];
  const proxies: TcpProxy[] = [];
  const watchers: Watcher[] = [];
  const violations: string[] = [];
  let monitor: NodeJS.Timeout | undefined;

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
    engine.coordinator = created;
    running.push([created, engine]);
    return created;
  };

  /** node-a and node-b, started together, once they split the slots 8/8. */
  const pair = async (
    optionsA: Partial<EtcdCoordinatorOptions> = {},
    optionsB: Partial<EtcdCoordinatorOptions> = {},
  ) => {
    const engineA = new FakeEngine('node-a', epochs);
    const engineB = new FakeEngine('node-b', epochs);
    const a = coordinator('node-a', engineA, optionsA);
    const b = coordinator('node-b', engineB, optionsB);
    await Promise.all([a.start(), b.start()]);
    /** Every slot fired by one of them, 8 each, both confirmed. */
    const balanced = (): boolean =>
      split(
        [
          [a, engineA],
          [b, engineB],
        ],
        SLOTS / 2,
      );
    await until('the slots are split 8/8', balanced);
    return { a, b, engineA, engineB, balanced };
  };

  const proxy = async (): Promise<TcpProxy> => {
    const started = await TcpProxy.start(urls.etcd);
    proxies.push(started);
    return started;
  };

  /** Records a violation whenever a node's owner key is deleted while its engine fires the slot. */
  const checkDeletions = async (): Promise<void> => {
    const watcher = await etcd.watch().prefix(`${prefix}/owners/`).withPreviousKV().create();
    watchers.push(watcher);
    watcher.on('delete', (kv, previous) => {
      const slot = Number(kv.key.toString().slice(`${prefix}/owners/`.length));
      const node = previous ? (JSON.parse(previous.value.toString()) as { node: string }).node : '';
      const engine = running.find(([, e]) => e.name === node && !e.dead)?.[1];
      if (engine?.owned.has(slot))
        violations.push(`${node} deleted its key of slot ${slot} while its engine fired it`);
    });
  };

  before(() => {
    etcd = new Etcd3({ hosts: urls.etcd });
  });

  beforeEach(() => {
    // The config schema wants no trailing slash.
    prefix = etcdPrefix().replace(/\/$/, '');
    epochs = new FakeEpochs();
    violations.length = 0;
    monitor = setInterval(() => {
      for (const [c, engine] of running) {
        if (engine.dead) continue;
        engine.checkFenced();
        if (!c.ownershipConfirmed()) continue;
        for (const [slot, epoch] of engine.owned)
          if (epochs.epochOf(slot) !== epoch)
            violations.push(`${c.nodeId} confirmed while firing slot ${slot} under a lost epoch`);
      }
    }, 5);
  });

  afterEach(async () => {
    clearInterval(monitor);
    await Promise.all(watchers.splice(0).map((w) => w.cancel()));
    await Promise.all(running.splice(0).map(([c]) => c.stop()));
    await Promise.all(proxies.splice(0).map((p) => p.close()));
    await etcd.delete().prefix(`${prefix}/`);
    assert.deepEqual(violations.slice(0, 5), []);
  });

  after(() => {
    etcd.close();
  });

  it('two coordinators split the slots evenly and disjointly, and the view agrees', async () => {
    const { b, engineA } = await pair();
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
    // and the epochs it answered (the floor, for a slot never owned) are what the view shows.
    const acquireA = engineA.since(0, 'acquire');
    const keys = await etcd.getAll().prefix(`${prefix}/owners/`).exec();
    const revisionsA = keys.kvs
      .filter((kv) => (JSON.parse(kv.value.toString()) as { node: string }).node === 'node-a')
      .map((kv) => Number(kv.create_revision));
    assert.equal(revisionsA.length, SLOTS / 2);
    assert.equal(Math.max(...acquireA.map((call) => call.minEpoch ?? 0)), Math.max(...revisionsA));
    const epochsA = new Set(view.slots.filter((s) => s.owner === 'node-a').map((s) => s.epoch));
    assert.deepEqual(epochsA, new Set(acquireA.map((call) => call.minEpoch)));
  });

  it('when one stops gracefully the other gets every slot, with higher epochs, after the stopper released', async () => {
    const { a, b, engineA, engineB } = await pair();
    await checkDeletions();
    const before = await settledView(b);
    const epochsOfA = new Map(
      before.slots.filter((s) => s.owner === 'node-a').map((s) => [s.slot, s.epoch ?? 0]),
    );

    await a.stop();
    assert.equal(engineA.owned.size, 0, 'a stopped firing everything before stop() resolved');
    const releasedAt = engineA.since(0, 'release').at(-1)?.atMs ?? 0;
    await until('b owns every slot', () => engineB.owned.size === SLOTS);
    const takenAt = engineB.since(0, 'acquire').at(-1)?.atMs ?? 0;
    assert.ok(takenAt >= releasedAt, 'b acquired only after a released');
    log(`handoff: a released at +0 ms, b acquired at +${takenAt - releasedAt} ms`);

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
  });

  it('honours pins and drains, and rejects unknown nodes', async () => {
    const { a, b, engineA, engineB } = await pair();
    const slotOfA = engineA.slots()[0] ?? 0;
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

    const isCode = (code: string) => (error: unknown) =>
      error instanceof HourglassError && error.code === code;
    await assert.rejects(a.pinSlot(1, 'node-zz'), isCode('not_found'));
    await assert.rejects(a.drainNode('node-zz'), isCode('not_found'));
    await assert.rejects(a.pinSlot(SLOTS, 'node-a'), isCode('invalid_request'));
  });

  /** Revokes a node's lease from outside, which is what etcd does when it expires; its id. */
  const revokeLeaseOf = async (nodeId: string): Promise<string> => {
    const nodeKey = await etcd.get(`${prefix}/nodes/${nodeId}`).exec();
    const leaseId = nodeKey.kvs[0]?.lease;
    assert.ok(leaseId);
    await etcd.leaseClient.leaseRevoke({ ID: leaseId });
    return leaseId;
  };

  const registeredAgain = (nodeId: string, oldLease: string) =>
    until(`${nodeId} registered again`, async () => {
      const now = await etcd.get(`${prefix}/nodes/${nodeId}`).exec();
      return now.kvs[0] !== undefined && now.kvs[0].lease !== oldLease;
    });

  it('a lone node whose lease is lost never stops firing: it re-acquires its slots under new keys', async () => {
    const engineA = new FakeEngine('node-a', epochs);
    const a = coordinator('node-a', engineA);
    await a.start();
    await until('a fires every slot', () => engineA.owned.size === SLOTS && a.ownershipConfirmed());
    const epochsBefore = new Map([...engineA.owned]);
    const calls = engineA.calls.length;
    const lease = await revokeLeaseOf('node-a');
    await registeredAgain('node-a', lease);
    await until(
      'a re-acquired every slot',
      () => a.ownershipConfirmed() && engineA.owned.size === SLOTS,
    );
    assert.deepEqual(engineA.since(calls, 'release'), [], 'a never stopped firing');
    for (const [slot, epoch] of engineA.owned)
      assert.ok(epoch > (epochsBefore.get(slot) ?? 0), `slot ${slot} re-acquired`);
    assert.deepEqual(a.ownedSlots(), engineA.slots());
  });

  it('on lease loss it keeps firing, rejoins, and keeps or gives up each slot as the new state says', async () => {
    const { a, b, engineA, engineB, balanced } = await pair();
    const firedBefore = engineA.slots();
    const epochsBefore = new Map([...engineA.owned]);
    const callsA = engineA.calls.length;
    const callsB = engineB.calls.length;
    const revokedAt = Date.now();
    await registeredAgain('node-a', await revokeLeaseOf('node-a'));
    await until('a rejoined and the slots are split again', balanced);
    // a gave up only what b took (b raced it for the keys that vanished); it re-acquired the rest
    // under its new keys, and fired them throughout.
    const released = new Set(engineA.since(callsA, 'release').flatMap((call) => call.slots));
    const takenByB = new Set(engineB.since(callsB, 'acquire').flatMap((call) => call.slots));
    for (const slot of released)
      assert.ok(takenByB.has(slot), `a released ${slot}, b never took it`);
    const kept = firedBefore.filter((slot) => !released.has(slot));
    for (const slot of kept)
      assert.ok((engineA.owned.get(slot) ?? 0) > (epochsBefore.get(slot) ?? 0), `slot ${slot}`);
    const tookMs = Date.now() - revokedAt;
    log(
      `lease revoked -> split again in ${tookMs} ms; a kept ${kept.length} slots firing, gave ${released.size} to b`,
    );
    assert.deepEqual(a.ownedSlots(), engineA.slots());
    const view = await settledView(b);
    assert.equal(view.slots.filter((s) => s.owner === null).length, 0);
  });

  it('stops confirming ownership when keepalives have not been acknowledged for TTL minus the margin, and keeps firing', async () => {
    let skewMs = 0;
    const engineA = new FakeEngine('node-a', epochs);
    const a = coordinator('node-a', engineA, { clock: { now: () => Date.now() + skewMs } });
    await a.start();
    await until('a owns every slot', () => engineA.owned.size === SLOTS);
    assert.equal(a.ownershipConfirmed(), true);
    const calls = engineA.calls.length;
    // As if the process had been paused for a TTL: the last acknowledged keepalive is that old.
    skewMs = TTL_SECONDS * 1000;
    assert.equal(a.ownershipConfirmed(), false);
    // The next acknowledged keepalive (every TTL/4) makes it fresh again: the lease was never lost.
    await until('a keepalive was acknowledged', () => a.ownershipConfirmed(), TTL_SECONDS * 1000);
    assert.equal(engineA.owned.size, SLOTS);
    assert.equal(engineA.calls.length, calls, 'the engine was told nothing');
  });

  it('releases a slot in the engine before deleting its key, even when its acquisition failed', async () => {
    const engineA = new FakeEngine('node-a', epochs);
    // The engine fires the slots it was asked for, but every acquisition call rejects: the
    // coordinator never learns that they were acquired.
    engineA.failAcquisitions = true;
    engineA.detectsFencing = false;
    const engineB = new FakeEngine('node-b', epochs);
    const a = coordinator('node-a', engineA);
    const b = coordinator('node-b', engineB);
    await Promise.all([a.start(), b.start()]);
    await until('the slots are split', () => engineA.owned.size === 8 && engineB.owned.size === 8);
    assert.deepEqual(a.ownedSlots(), [], 'a never saw an acquisition succeed');
    await checkDeletions();

    await b.drainNode('node-a');
    await until(
      'b owns every slot',
      () => engineB.owned.size === SLOTS && disjoint(engineA, engineB),
    );
    assert.equal(engineA.owned.size, 0);
  });

  it('handles a refused acquisition: the slot is not fired, not retried hot, and taken again later', async () => {
    const engineA = new FakeEngine('node-a', epochs);
    // As if a newer owner had raised slot 3's epoch.
    epochs.setOwnerRevision(3, Number.MAX_SAFE_INTEGER);
    const a = coordinator('node-a', engineA);
    await a.start();
    await until('a fires every other slot', () => engineA.owned.size === SLOTS - 1);
    const since = engineA.calls.length;
    await sleep(3000);
    const tries = engineA.since(since, 'acquire').filter((call) => call.slots.includes(3));
    assert.ok(tries.length >= 1 && tries.length <= 4, `slot 3 tried ${tries.length} times in 3 s`);
    assert.ok(!engineA.owned.has(3) && !a.ownedSlots().includes(3));
    assert.equal(a.ownershipConfirmed(), true);

    epochs.setOwnerRevision(3, 0);
    await until('a fires slot 3 too', () => engineA.owned.size === SLOTS);
    assert.deepEqual(a.ownedSlots(), engineA.slots());
  });

  for (const outage of ['cut', 'freeze'] as const)
    it(`etcd unreachable from one node (connections ${outage === 'cut' ? 'reset' : 'hung'}): it keeps firing, unconfirmed; once back it gives up what the other took and converges`, async () => {
      const cutOff = await proxy();
      const { a, engineA, engineB, balanced } = await pair({ endpoints: [cutOff.url] });
      // So that what a's coordinator releases is seen (the engine would drop them at its next claim).
      engineA.detectsFencing = false;
      const firedBefore = engineA.slots();
      const calls = engineA.calls.length;
      const cutAt = Date.now();
      if (outage === 'cut') cutOff.cut();
      else cutOff.freeze();
      const unconfirmedMs = await until(
        'a no longer confirms',
        () => !a.ownershipConfirmed(),
        3000,
      );
      const takenMs =
        (await until('b took every slot', () => engineB.owned.size === SLOTS)) + unconfirmedMs;
      // Past 2 × TTL, when etcd3's own lease keepalive would have declared the lease lost.
      await sleep(cutAt + 2 * TTL_SECONDS * 1000 + 1000 - Date.now());
      assert.deepEqual(engineA.calls.slice(calls), [], 'a told its engine nothing while cut off');
      assert.deepEqual(engineA.slots(), firedBefore, 'a kept firing (fenced) while cut off');

      cutOff.restore();
      const restoredAt = Date.now();
      await until('split again', balanced);
      log(
        `${outage}: unconfirmed after ${unconfirmedMs} ms, b fired everything after ${takenMs} ms; ` +
          `split again ${Date.now() - restoredAt} ms after the cut ended (${Date.now() - cutAt} ms in all)`,
      );
      // The first thing a told its engine once back: stop firing every slot b held by then.
      const first = engineA.calls[calls];
      assert.equal(first?.op, 'release');
      assert.deepEqual(
        [...first.slots].sort((x, y) => x - y),
        firedBefore,
      );
    });

  it('etcd unreachable from every node: nobody stops firing; after it returns they rejoin and converge', async () => {
    const cutOff = await proxy();
    const { a, b, engineA, engineB, balanced } = await pair(
      { endpoints: [cutOff.url] },
      { endpoints: [cutOff.url] },
    );
    const before = new Map<number, FakeEngine>([
      ...engineA.slots().map((slot): [number, FakeEngine] => [slot, engineA]),
      ...engineB.slots().map((slot): [number, FakeEngine] => [slot, engineB]),
    ]);
    const callsA = engineA.calls.length;
    const callsB = engineB.calls.length;
    cutOff.cut();
    await until('neither confirms', () => !a.ownershipConfirmed() && !b.ownershipConfirmed(), 3000);
    // Past the TTL: the leases expire in etcd, which stays up.
    await sleep(TTL_SECONDS * 1000 + 1500);
    assert.deepEqual([...engineA.calls.slice(callsA), ...engineB.calls.slice(callsB)], []);
    assert.equal(engineA.owned.size + engineB.owned.size, SLOTS);

    cutOff.restore();
    const restoredAt = Date.now();
    await until('split again', balanced);
    const moved = [...before].filter(([slot, engine]) => !engine.owned.has(slot)).length;
    log(
      `every node cut off past the TTL: split again ${Date.now() - restoredAt} ms after, ${moved} slots moved`,
    );
  });

  it('a cut shorter than the lease changes nothing: same lease, same keys, no engine call', async () => {
    const cutOff = await proxy();
    const engineA = new FakeEngine('node-a', epochs);
    const a = coordinator('node-a', engineA, { endpoints: [cutOff.url], leaseTtlSeconds: 4 });
    await a.start();
    await until(
      'a owns every slot',
      () => engineA.owned.size === SLOTS && a.ownedSlots().length === SLOTS,
    );
    const leaseOf = async () =>
      String((await etcd.get(`${prefix}/nodes/node-a`).exec()).kvs[0]?.lease);
    const lease = await leaseOf();
    const calls = engineA.calls.length;
    cutOff.cut();
    await sleep(1000);
    cutOff.restore();
    await sleep(3000);
    assert.equal(a.ownershipConfirmed(), true);
    assert.equal(await leaseOf(), lease);
    assert.deepEqual(engineA.calls.slice(calls), []);
    assert.equal(a.ownedSlots().length, SLOTS);
  });

  it("kill -9: the dead node's slots move once its lease expires, to one owner each", async () => {
    const cutOff = await proxy();
    const { b, engineA, engineB } = await pair({ endpoints: [cutOff.url] });
    const killedAt = Date.now();
    cutOff.cut();
    engineA.dead = true;
    await until('b fires every slot', () => engineB.owned.size === SLOTS && b.ownershipConfirmed());
    log(
      `kill -9 at TTL ${TTL_SECONDS} s: b fired every slot ${Date.now() - killedAt} ms after the kill`,
    );
    for (const slot of engineA.owned.keys())
      assert.ok(epochs.epochOf(slot) === engineB.owned.get(slot), `slot ${slot} fenced`);
  });

  it("kill -9 and a quick restart: the new process revokes its predecessor's lease and takes its slots at once", async () => {
    const cutOff = await proxy();
    const { b, engineA, engineB } = await pair({ endpoints: [cutOff.url] });
    const firedBefore = engineA.slots();
    const callsB = engineB.calls.length;
    const killedAt = Date.now();
    cutOff.cut();
    engineA.dead = true;
    const engineA2 = new FakeEngine('node-a', epochs);
    const a2 = coordinator('node-a', engineA2);
    await a2.start();
    await until('the restarted node fires its share', () =>
      split(
        [
          [a2, engineA2],
          [b, engineB],
        ],
        SLOTS / 2,
      ),
    );
    log(
      `kill -9 and restart: the new process fired its slots ${Date.now() - killedAt} ms after the kill`,
    );
    assert.deepEqual(engineA2.slots(), firedBefore);
    // b saw no departure (the node key only moved to the new lease), so it took nothing.
    assert.deepEqual(engineB.since(callsB, 'acquire'), []);
  });
});

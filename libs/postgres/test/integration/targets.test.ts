/**
 * Messages with a target list in Postgres (migration 005): they are stored with a state per
 * target; settleTargets is fenced by the slot epoch, moves the due time and keeps the first one,
 * and writes the attempt log in the same statement; rearmFailed puts a failed message back.
 */
import assert from 'node:assert/strict';
import type { NewMessage, TargetSpec } from '@hourglass/core';
import { INITIAL_TARGET_STATE } from '@hourglass/core';
import type { TestDatabase } from '@hourglass/testkit';
import { createTestDatabase } from '@hourglass/testkit';
import { PgMessageStore } from '../../src';

const SLOTS = 16;
const SLOT = 5;
const T0 = 1_900_000_000_000;
const TARGETS: TargetSpec[] = [
  { type: 'kafka', topic: 'orders', key: 'k', headers: {} },
  {
    type: 'http',
    url: 'https://example.com/hook',
    method: 'POST',
    headers: { 'x-a': '1' },
    timeoutMs: 1000,
    name: 'order.timeout',
    envelope: false,
    expectBody: 'ok',
  },
];

describe('PgMessageStore: messages with targets (postgres)', () => {
  let db: TestDatabase;
  let store: PgMessageStore;
  let leases: Map<number, number>;
  let counter = 0;

  before(async () => {
    db = await createTestDatabase();
    store = new PgMessageStore({ connectionString: db.connectionString });
    await store.migrate(SLOTS);
    await store.start();
    const [lease] = await store.acquireSlots([SLOT], 0);
    leases = new Map([[SLOT, lease!.epoch]]);
  });

  after(async () => {
    await store?.stop();
    await db?.drop();
  });

  async function insert(): Promise<{ seq: number; id: string }> {
    counter++;
    const message: NewMessage = {
      app: 'app1',
      id: `t${counter}`,
      slot: SLOT,
      topic: 'orders',
      key: 'k',
      payload: Buffer.from('{}'),
      payloadEncoding: 'json',
      headers: {},
      deliverAtMs: T0,
      fingerprint: `fp-t${counter}`,
      targets: TARGETS,
      retry: {
        strategy: 'fixed',
        initialDelayMs: 100,
        maxDelayMs: 100,
        maxAttempts: 3,
        jitter: false,
      },
      contentType: 'text/plain',
    };
    const [outcome] = await store.insertBatch([message], { ownedEpochs: leases, hintBeforeMs: 0 });
    assert.equal(outcome?.kind, 'created');
    return { seq: outcome.kind === 'created' ? outcome.seq : -1, id: message.id };
  }

  it('stores the targets with a pending state each, and claims them back', async () => {
    const { seq, id } = await insert();
    const stored = await store.get('app1', id);
    assert.deepEqual(stored?.targets, TARGETS);
    assert.deepEqual(stored?.targetStates, [INITIAL_TARGET_STATE, INITIAL_TARGET_STATE]);
    assert.equal(stored?.contentType, 'text/plain');
    assert.equal(stored?.retry?.maxAttempts, 3);
    const [claimed] = await store.claim([{ seq, slot: SLOT }], leases, T0);
    assert.deepEqual(claimed?.targets, TARGETS);
    assert.equal(claimed?.payloadEncoding, 'json');
  });

  it('settles a round: a retry moves deliver_at, keeps the first due time and logs the attempts', async () => {
    const { seq, id } = await insert();
    await store.claim([{ seq, slot: SLOT }], leases, T0);
    const delivered = {
      ...INITIAL_TARGET_STATE,
      status: 'delivered' as const,
      attempts: 1,
      finishedAtMs: T0,
    };
    const waiting = {
      ...INITIAL_TARGET_STATE,
      attempts: 1,
      nextAttemptAtMs: T0 + 100,
      lastError: 'HTTP 503',
      lastStatus: 503,
    };
    const settled = await store.settleTargets(
      [
        {
          ref: { seq, slot: SLOT },
          state: 'scheduled',
          deliverAtMs: T0 + 100,
          targetStates: [delivered, waiting],
          countedAttempts: 2,
          lastError: 'HTTP 503',
          attempts: [
            {
              target: 0,
              attempt: 1,
              atMs: T0,
              durationMs: 3,
              status: null,
              error: null,
              response: null,
            },
            {
              target: 1,
              attempt: 1,
              atMs: T0,
              durationMs: 7,
              status: 503,
              error: 'HTTP 503',
              response: 'busy',
            },
          ],
        },
      ],
      leases,
      T0 + 10,
    );
    assert.equal(settled, 1);
    const stored = await store.get('app1', id);
    assert.equal(stored?.state, 'scheduled');
    assert.equal(stored?.deliverAtMs, T0 + 100);
    assert.equal(stored?.firstDeliverAtMs, T0);
    assert.equal(stored?.attempts, 2);
    assert.deepEqual(stored?.targetStates, [delivered, waiting]);
    const log = await store.listAttempts('app1', id);
    assert.deepEqual(
      log.map((a) => [a.target, a.type, a.attempt, a.status, a.response]),
      [
        [0, 'kafka', 1, null, null],
        [1, 'http', 1, 503, 'busy'],
      ],
    );
    // Not due before its next attempt.
    assert.deepEqual(await store.claim([{ seq, slot: SLOT }], leases, T0 + 99), []);
    assert.equal((await store.claim([{ seq, slot: SLOT }], leases, T0 + 100)).length, 1);
  });

  it('a settle under a stale epoch changes nothing', async () => {
    const { seq, id } = await insert();
    await store.claim([{ seq, slot: SLOT }], leases, T0);
    const stale = new Map([[SLOT, (leases.get(SLOT) ?? 0) - 1]]);
    const settled = await store.settleTargets(
      [
        {
          ref: { seq, slot: SLOT },
          state: 'delivered',
          deliverAtMs: T0,
          targetStates: [INITIAL_TARGET_STATE, INITIAL_TARGET_STATE],
          countedAttempts: 1,
          lastError: null,
          attempts: [
            {
              target: 0,
              attempt: 1,
              atMs: T0,
              durationMs: 1,
              status: null,
              error: null,
              response: null,
            },
          ],
        },
      ],
      stale,
      T0,
    );
    assert.equal(settled, 0);
    assert.equal((await store.get('app1', id))?.state, 'delivering');
    assert.deepEqual(await store.listAttempts('app1', id), []);
  });

  it('re-arms a failed message now, and only a failed one', async () => {
    const { seq, id } = await insert();
    await store.claim([{ seq, slot: SLOT }], leases, T0);
    const failed = {
      ...INITIAL_TARGET_STATE,
      status: 'failed' as const,
      attempts: 3,
      finishedAtMs: T0,
    };
    await store.settleTargets(
      [
        {
          ref: { seq, slot: SLOT },
          state: 'failed',
          deliverAtMs: T0,
          targetStates: [failed, failed],
          countedAttempts: 3,
          lastError: 'x',
          attempts: [],
        },
      ],
      leases,
      T0,
    );
    const context = { ownedEpochs: leases, hintBeforeMs: T0 + 60_000 };
    const rearmed = await store.rearmFailed(
      'app1',
      id,
      [INITIAL_TARGET_STATE, INITIAL_TARGET_STATE],
      T0 + 500,
      context,
    );
    assert.deepEqual(rearmed, { seq, slot: SLOT, wheelable: true });
    const stored = await store.get('app1', id);
    assert.equal(stored?.state, 'scheduled');
    assert.equal(stored?.deliverAtMs, T0 + 500);
    assert.equal(stored?.finishedAtMs, null);
    assert.equal(await store.rearmFailed('app1', id, null, T0 + 600, context), null);
  });
});

/**
 * The engine unit tests' harness: a DelayEngine started against the fakes of ./fakes.ts, on the
 * real clock, with helpers to make messages and check how they were delivered. Several engines
 * can share one FakeStore (and event hub), as nodes of one cluster share Postgres.
 */
import assert from 'node:assert/strict';
import type { HttpCaller, NewMessage } from '@hourglass/core';
import { systemClock } from '@hourglass/core';
import type { AppIdentity, EngineOptions } from '../../src';
import { DelayEngine, EngineMetrics, MessageService } from '../../src';
import type { PublishAttempt } from './fakes';
import { Events, FakePublisher, FakeStore, TestLogger } from './fakes';

export const SLOTS = 16;
/** The slots the engine under test owns; the others belong to "another node". */
export const OWNED = [0, 1, 2, 3, 4, 5, 6, 7];
export const APP = 'app1';
export const TOPIC = 'orders';

export const BASE_OPTIONS: EngineOptions = {
  horizonMs: 60_000,
  // Long: firing must not depend on the loader or hint timers to get going.
  loaderIntervalMs: 10_000,
  hintDrainIntervalMs: 10_000,
  fireBatchSize: 100,
  fireConcurrency: 2,
  claimAheadMs: 25,
  maxAttempts: 3,
  retryInitialMs: 10,
  retryMaxMs: 40,
};

export interface Harness {
  events: Events;
  store: FakeStore;
  publisher: FakePublisher;
  logger: TestLogger;
  metrics: EngineMetrics;
  engine: DelayEngine;
  options: EngineOptions;
  /** Every call of the engine's onSlotsFenced, in order. */
  fenced: number[][];
  /** Inserts through the engine (as the API does) and returns the seqs, asserting each was created. */
  insert(messages: readonly NewMessage[]): Promise<number[]>;
  /** The seq of a message of {@link APP}. */
  seq(id: string): number;
}

export interface HarnessDeps {
  /** Another node of the same cluster: this engine uses its store and event hub. */
  shareStoreWith?: Harness;
  /** The engine's `ownershipConfirmed` (default: not given, i.e. always confirmed). */
  ownershipConfirmed?: () => boolean;
  /** The `minEpoch` of the initial acquisition of `owned`. */
  minEpoch?: number;
  /** The HTTP caller for callbacks (a fake: ./fakes.ts FakeHttpCaller). */
  http?: HttpCaller;
  /** The event hub to use (one the fake HTTP caller also notifies). */
  events?: Events;
}

const harnesses: Harness[] = [];

export async function harness(
  overrides: Partial<EngineOptions> = {},
  owned: readonly number[] = OWNED,
  deps: HarnessDeps = {},
): Promise<Harness> {
  const events = deps.shareStoreWith?.events ?? deps.events ?? new Events();
  const store = deps.shareStoreWith?.store ?? new FakeStore(events, SLOTS);
  const publisher = new FakePublisher(events);
  const logger = new TestLogger();
  const metrics = new EngineMetrics();
  const options = { ...BASE_OPTIONS, ...overrides };
  const fenced: number[][] = [];
  const engine = new DelayEngine(
    {
      store,
      delivery: publisher,
      clock: systemClock,
      logger,
      metrics,
      ...(deps.ownershipConfirmed ? { ownershipConfirmed: deps.ownershipConfirmed } : {}),
      ...(deps.http ? { http: deps.http } : {}),
      onSlotsFenced: (slots) => {
        fenced.push([...slots]);
        events.notify();
      },
    },
    options,
  );
  const h: Harness = {
    events,
    store,
    publisher,
    logger,
    metrics,
    engine,
    options,
    fenced,
    async insert(messages) {
      const outcomes = await engine.insert(messages);
      return outcomes.map((outcome) => {
        assert.equal(outcome.kind, 'created');
        return outcome.kind === 'created' ? outcome.seq : -1;
      });
    },
    seq: (id) => store.seqOf(APP, id),
  };
  harnesses.push(h);
  await engine.start();
  if (owned.length > 0) await engine.acquireSlots(owned, deps.minEpoch);
  return h;
}

// A root hook (this module is loaded once, by every test file that uses it): stops every engine
// the test started.
afterEach(async () => {
  for (const h of harnesses.splice(0)) {
    // A failed test may have left a gate closed; stop() would wait at it.
    h.store.openAll();
    h.publisher.openAll();
    await h.engine.stop();
  }
});

let counter = 0;
export function message(
  id: string,
  deliverAtMs: number,
  slot = 0,
  topic = TOPIC,
  app = APP,
): NewMessage {
  counter++;
  return {
    app,
    id,
    slot,
    topic,
    key: `k-${counter}`,
    payload: Buffer.from(`payload of ${id}`),
    payloadEncoding: 'json',
    headers: { 'x-test': id },
    deliverAtMs,
    fingerprint: `fp-${id}`,
  };
}

/** The produce requests each message id was part of, built in one pass. */
export function attemptsById(publisher: FakePublisher): Map<string, PublishAttempt[]> {
  const byId = new Map<string, PublishAttempt[]>();
  for (const attempt of publisher.attempts) {
    for (const record of attempt.records) {
      const id = record.headers['hourglass-id']!;
      const list = byId.get(id) ?? [];
      list.push(attempt);
      byId.set(id, list);
    }
  }
  return byId;
}

/**
 * Each message: delivered, acknowledged by its target exactly once, never produced (not even in
 * a failed attempt) before its due time, and marked delivered only after the ack.
 */
export function assertDeliveredOnce(h: Harness, ids: readonly string[], app = APP): void {
  const byId = attemptsById(h.publisher);
  for (const id of ids) {
    const row = h.store.row(h.store.seqOf(app, id));
    assert.equal(row.state, 'delivered', `${id} is ${row.state}`);
    const attempts = byId.get(id) ?? [];
    const acked = attempts.filter(
      (attempt) => attempt.ackTick !== undefined && !attempt.recordErrors.has(id),
    );
    assert.equal(acked.length, 1, `${id} acknowledged ${acked.length} times`);
    const inRequest = acked[0]!.records.filter((r) => r.headers['hourglass-id'] === id).length;
    assert.equal(inRequest, 1, `${id} is ${inRequest} times in its request`);
    for (const attempt of attempts) {
      const early = row.message.deliverAtMs - attempt.at;
      assert.ok(early <= 0, `${id} produced ${early} ms before its due time`);
    }
    const marked = row.history.find((change) => change.state === 'delivered')!;
    assert.ok(marked.tick > acked[0]!.ackTick!, `${id} marked delivered before it was acked`);
  }
}

export function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** The value of a counter or gauge, summed over the series whose labels include `labels`. */
export async function metricValue(
  h: Harness,
  name: string,
  labels: Readonly<Record<string, string>> = {},
): Promise<number> {
  const metric = h.metrics.registry.getSingleMetric(name);
  assert.ok(metric, `no metric ${name}`);
  const { values } = await metric.get();
  return values
    .filter((value) =>
      Object.entries(labels).every(([label, wanted]) => value.labels[label] === wanted),
    )
    .reduce((sum, value) => sum + value.value, 0);
}

/** The caller the MessageService tests act as. */
export const CALLER: AppIdentity = { name: APP, topics: new Set([TOPIC]) };

export function service(h: Harness): MessageService {
  return new MessageService(h.engine, h.store, systemClock, h.metrics, {
    slotCount: SLOTS,
    limits: { maxPayloadBytes: 1 << 20, maxDelayMs: 86_400_000, maxBatchSize: 1000 },
  });
}

/**
 * The five scenarios of issue 5, each against any {@link BenchSystem}. Every wait is bounded:
 * a system that cannot keep up is reported as incomplete, never waited on forever.
 */
import pg from 'pg';
import type { BenchMessage, BenchSystem, LatenessSummary } from './common';
import { DeliveryTracker, Progress, log, runConcurrently, sleep } from './common';
import type { HourglassSystem } from './hourglass';

const DAY_MS = 86_400_000;
const BATCH = 1000;
/** Concurrent bulk callers (HTTP clients for Hourglass). */
const BULK_CONCURRENCY = 4;
/** Concurrent single callers. */
const SINGLE_CONCURRENCY = 32;

/**
 * Fixed part of the lead between scheduling and the first due time (the rest scales with the
 * count and the system's bulk rate). `--quick` lowers it.
 */
let leadBaseMs = 3000;
/** How long the memory scenario lets the node settle before and after (ms). */
let settleMs = 5000;
export function setTiming(options: { leadBaseMs: number; settleMs: number }): void {
  leadBaseMs = options.leadBaseMs;
  settleMs = options.settleMs;
}

let runCounter = 0;
/** A run number no other scenario of this bench process uses (it travels in the messages' ids). */
export function nextRun(): number {
  return ++runCounter;
}

/**
 * How far ahead of the first due time to schedule `count` messages at `bulkPerSec` (with a
 * margin): the fixed lead plus 1.3 × the expected scheduling time.
 */
export function schedulingLeadMs(count: number, bulkPerSec: number): number {
  return leadBaseMs + Math.ceil((1.3 * count * 1000) / Math.max(1000, bulkPerSec));
}

/** Schedules messages in batches of 1000, `BULK_CONCURRENCY` at a time, in order. */
async function scheduleAll(
  system: BenchSystem,
  run: number,
  messages: readonly BenchMessage[],
  label: string,
): Promise<void> {
  const progress = new Progress(label, messages.length);
  const batches = Math.ceil(messages.length / BATCH);
  await runConcurrently(batches, BULK_CONCURRENCY, async (index) => {
    const slice = messages.slice(index * BATCH, (index + 1) * BATCH);
    await system.scheduleBatch(run, slice);
    progress.add(slice.length);
  });
  progress.finish();
}

// --- 1. durable scheduling throughput ---------------------------------------------------------

export interface ThroughputResult {
  bulkMessages: number;
  bulkPerSec: number;
  singleMessages: number;
  singlePerSec: number;
}

/**
 * Messages due a day ahead (nothing fires meanwhile). Bulk: batches of 1000 from 4 concurrent
 * callers. Single: one message per call from 32 concurrent callers. Rate = messages / wall time
 * from the first call to the last acknowledgement.
 */
export async function throughput(
  system: BenchSystem,
  bulkCount: number,
  singleCount: number,
): Promise<ThroughputResult> {
  const base = Date.now() + DAY_MS;
  const bulkRun = nextRun();
  const bulk = Array.from({ length: bulkCount }, (_, n) => ({ n, dueMs: base + n }));
  let started = performance.now();
  await scheduleAll(system, bulkRun, bulk, 'bulk add');
  const bulkSeconds = (performance.now() - started) / 1000;

  const singleRun = nextRun();
  const progress = new Progress('single add', singleCount);
  started = performance.now();
  await runConcurrently(singleCount, SINGLE_CONCURRENCY, async (n) => {
    await system.scheduleOne(singleRun, { n, dueMs: base + n });
    progress.add(1);
  });
  progress.finish();
  const singleSeconds = (performance.now() - started) / 1000;
  return {
    bulkMessages: bulkCount,
    bulkPerSec: Math.round(bulkCount / bulkSeconds),
    singleMessages: singleCount,
    singlePerSec: Math.round(singleCount / singleSeconds),
  };
}

// --- 2. firing lateness at a steady due rate --------------------------------------------------

export interface SteadyResult extends LatenessSummary {
  rate: number;
  seconds: number;
  complete: boolean;
  /** How far ahead of the first due time scheduling finished (negative: it overlapped firing). */
  scheduledAheadMs: number;
}

/**
 * `rate × seconds` messages due evenly over `seconds`, all scheduled before the first is due (the
 * lead is sized from the system's bulk rate measured in scenario 1), so accepting does not
 * compete with firing. Waits until the last due time plus `graceMs`.
 */
export async function steady(
  system: BenchSystem,
  rate: number,
  seconds: number,
  bulkPerSec: number,
  graceMs: number,
): Promise<SteadyResult> {
  const count = Math.max(1, Math.round(rate * seconds));
  const run = nextRun();
  const leadMs = schedulingLeadMs(count, bulkPerSec);
  const firstDue = Date.now() + leadMs;
  const messages = Array.from({ length: count }, (_, n) => ({
    n,
    dueMs: firstDue + Math.floor((n * 1000) / rate),
  }));
  const tracker = new DeliveryTracker(run, count);
  system.onDeliver = (r, n, due, received) => tracker.record(r, n, due, received);
  await scheduleAll(system, run, messages, `schedule ${rate}/s×${seconds}s`);
  const scheduledAheadMs = firstDue - Date.now();
  const lastDue = messages[messages.length - 1]?.dueMs ?? firstDue;
  const progress = new Progress(`delivered ${rate}/s`, count);
  const complete = await tracker.waitAll(lastDue + graceMs, progress);
  progress.finish(complete ? '' : 'INCOMPLETE');
  return { rate, seconds, complete, scheduledAheadMs, ...tracker.summary(firstDue) };
}

// --- 3. burst ---------------------------------------------------------------------------------

export interface BurstResult extends LatenessSummary {
  messages: number;
  complete: boolean;
  /** Time from the common due instant until the last message arrived (when complete). */
  allDeliveredAfterMs: number;
  scheduledAheadMs: number;
}

/** `count` messages all due at the same instant, scheduled ahead; bounded by `timeoutMs`. */
export async function burst(
  system: BenchSystem,
  count: number,
  bulkPerSec: number,
  timeoutMs: number,
): Promise<BurstResult> {
  const run = nextRun();
  const leadMs = schedulingLeadMs(count, bulkPerSec);
  const due = Date.now() + leadMs;
  const messages = Array.from({ length: count }, (_, n) => ({ n, dueMs: due }));
  const tracker = new DeliveryTracker(run, count);
  system.onDeliver = (r, n, d, received) => tracker.record(r, n, d, received);
  await scheduleAll(system, run, messages, `schedule burst of ${count}`);
  const scheduledAheadMs = due - Date.now();
  const progress = new Progress('burst delivered', count);
  const complete = await tracker.waitAll(due + timeoutMs, progress);
  progress.finish(complete ? '' : 'INCOMPLETE');
  const summary = tracker.summary(due);
  return {
    messages: count,
    complete,
    allDeliveredAfterMs: complete ? summary.lastReceivedAfterMs : Number.NaN,
    scheduledAheadMs,
    ...summary,
  };
}

// --- 4. memory --------------------------------------------------------------------------------

export interface MemoryResult {
  messages: number;
  held: number;
  rssBeforeBytes: number;
  rssAfterBytes: number;
  heapBeforeBytes: number;
  heapAfterBytes: number;
  /** (RSS after − RSS before) / held: the node as deployed, garbage not yet collected included. */
  rssBytesPerMessage: number;
  /** (V8 heap used after − before) / held, also without forced GC. */
  heapBytesPerMessage: number;
  /** V8 heap used + ArrayBuffers right after forced full GCs, before and after scheduling. */
  liveBeforeBytes?: number;
  liveAfterBytes?: number;
  /** (live after − live before) / held: what the node keeps per held message (the wheel's share). */
  liveBytesPerMessage?: number;
  /** RSS right after the forced GCs that follow scheduling (V8 may keep freed pages mapped). */
  rssAfterGcBytes?: number;
  /** (RSS after the forced GCs − RSS before) / held. */
  rssAfterGcBytesPerMessage?: number;
  /** Payload bytes each message carried in its request; the wheel does not hold them. */
  payloadBytesPerMessage: number;
}

/**
 * A fresh node, then `count` messages due 3–4.5 minutes ahead (inside the 5-minute horizon, so
 * all of them are held in the wheel, and none fires during the measurement). Memory is read from
 * the node's own /metrics after it settles (the node as deployed: no forced GC), then once more
 * right after forced full GCs in the node (SIGUSR2, scripts/bench/gc-on-signal.ts), which tells
 * what the node holds apart from the garbage that scheduling a million messages over HTTP leaves
 * until V8 next collects.
 */
export async function memory(
  system: HourglassSystem,
  count: number,
  bulkPerSec: number,
): Promise<MemoryResult> {
  const run = nextRun();
  await sleep(settleMs / 2);
  const before = await system.memory();
  const liveBefore = await system.gcMemory();
  const expectedSeconds = count / Math.max(1000, bulkPerSec);
  if (expectedSeconds > 150)
    log(`memory: ${count} messages may take ${expectedSeconds.toFixed(0)} s to schedule`);
  const firstDue = Date.now() + 180_000;
  const messages = Array.from({ length: count }, (_, n) => ({
    n,
    dueMs: firstDue + Math.floor((n * 90_000) / count),
  }));
  await scheduleAll(system, run, messages, 'schedule held messages');
  if (Date.now() > firstDue)
    throw new Error('scheduling took longer than the 3-minute lead; lower --memory-count');
  // Give the heap a moment to settle (no forced GC: this is the node as deployed).
  await sleep(settleMs);
  const after = await system.memory();
  const liveAfter = await system.gcMemory();
  const held = after.held - before.held;
  const live = (m: { heapUsed: number; arrayBuffers: number }): number =>
    m.heapUsed + m.arrayBuffers;
  return {
    messages: count,
    held,
    rssBeforeBytes: before.rssBytes,
    rssAfterBytes: after.rssBytes,
    heapBeforeBytes: before.heapUsedBytes,
    heapAfterBytes: after.heapUsedBytes,
    rssBytesPerMessage: Math.round((after.rssBytes - before.rssBytes) / held),
    heapBytesPerMessage: Math.round((after.heapUsedBytes - before.heapUsedBytes) / held),
    liveBeforeBytes: live(liveBefore),
    liveAfterBytes: live(liveAfter),
    liveBytesPerMessage: Math.round((live(liveAfter) - live(liveBefore)) / held),
    rssAfterGcBytes: liveAfter.rss,
    rssAfterGcBytesPerMessage: Math.round((liveAfter.rss - before.rssBytes) / held),
    payloadBytesPerMessage: Buffer.byteLength(JSON.stringify({ n: count - 1 })),
  };
}

// --- 5. scale ---------------------------------------------------------------------------------

export interface ScaleResult {
  pending: number;
  /** How the pending rows were put there. */
  filledBy: string;
  fillSeconds: number;
  throughput: ThroughputResult;
  steady: SteadyResult;
}

/**
 * `pending` far-future messages (a year ahead) written straight into the node's `messages` table
 * with one server-side INSERT … SELECT per million rows (through the HTTP API this would take
 * hours on this machine), then scenario 1 and a steady 2,000/s firing on top of them.
 */
export async function scale(
  system: HourglassSystem,
  pending: number,
  throughputCounts: { bulk: number; single: number },
  steadySeconds: number,
  graceMs: number,
): Promise<ScaleResult> {
  const client = new pg.Client({ connectionString: system.connectionString });
  await client.connect();
  const started = performance.now();
  const progress = new Progress('fill pending rows', pending);
  try {
    const chunk = 1_000_000;
    const base = Date.now() + 365 * DAY_MS;
    for (let from = 0; from < pending; from += chunk) {
      const to = Math.min(pending, from + chunk);
      // slot = g mod 256 rather than the real hash: these rows never come near the horizon, so no
      // loader ever reads them; they only have to be there, in the table and its indexes.
      await client.query(
        `INSERT INTO messages (app, id, slot, topic, msg_key, payload, payload_encoding, headers, deliver_at, fingerprint)
         SELECT 'bench', 'pending-' || g, g % 256, 'bench.pending', NULL, '\\x7b226e223a317d'::bytea, 0, '{}'::jsonb, $3::bigint + g, 'bench'
         FROM generate_series($1::bigint, $2::bigint - 1) AS g`,
        [from, to, base],
      );
      progress.update(to);
    }
    await client.query('ANALYZE messages');
  } finally {
    progress.finish();
    await client.end();
  }
  const fillSeconds = (performance.now() - started) / 1000;
  const tp = await throughput(system, throughputCounts.bulk, throughputCounts.single);
  const st = await steady(system, 2000, steadySeconds, tp.bulkPerSec, graceMs);
  return {
    pending,
    filledBy: 'server-side INSERT … SELECT generate_series (not the HTTP API)',
    fillSeconds,
    throughput: tp,
    steady: st,
  };
}

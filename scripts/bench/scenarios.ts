/**
 * Scenarios 1–4 of issue 5, each against any {@link BenchSystem} (5, scale, is in scale.ts). Every wait is bounded:
 * a system that cannot keep up is reported as incomplete, never waited on forever.
 */
import type { BenchMessage, BenchSystem, LatenessSummary } from './common';
import { DeliveryTracker, Progress, log, runConcurrently, sleep } from './common';
import type { HourglassSystem } from './hourglass';
import type { LatenessTimeline } from './timeline';
import { latenessTimeline } from './timeline';

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
/** Width of the lateness-over-time buckets (ms); 0: 1 s for runs of 10 s or more, else 250 ms. */
let timelineBucketMs = 0;
export function setTiming(options: {
  leadBaseMs?: number;
  settleMs?: number;
  timelineBucketMs?: number;
}): void {
  leadBaseMs = options.leadBaseMs ?? leadBaseMs;
  settleMs = options.settleMs ?? settleMs;
  timelineBucketMs = options.timelineBucketMs ?? timelineBucketMs;
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
  /** Single adds through gRPC, same count and callers (systems that serve gRPC: Hourglass). */
  singleGrpcPerSec?: number;
  /**
   * The bench process's CPU during the HTTP and the gRPC singles (share of one core): what the
   * callers themselves cost on the same cores, so a client-bound rate shows as such.
   */
  singleClientCpuShare?: number;
  singleGrpcClientCpuShare?: number;
}

/**
 * Messages due a day ahead (nothing fires meanwhile). Bulk: batches of 1000 from 4 concurrent
 * callers. Single: one message per call from 32 concurrent callers, over HTTP, then (a system
 * with {@link BenchSystem.scheduleOneGrpc}) over gRPC. Rate = messages / wall time from the first
 * call to the last acknowledgement.
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

  // One unmeasured call per caller first, over each transport: connections and the gRPC client's
  // .proto loading are not counted in the rate.
  const warm = (add: (run: number, message: BenchMessage) => Promise<void>): Promise<void> => {
    const warmRun = nextRun();
    return runConcurrently(SINGLE_CONCURRENCY, SINGLE_CONCURRENCY, (n) =>
      add(warmRun, { n, dueMs: base + n }),
    );
  };
  await warm((run, message) => system.scheduleOne(run, message));

  const cpuShare = (since: NodeJS.CpuUsage, seconds: number): number => {
    const used = process.cpuUsage(since);
    return Math.round(((used.user + used.system) / 1e6 / seconds) * 100) / 100;
  };
  const singleRun = nextRun();
  const progress = new Progress('single add', singleCount);
  let cpu = process.cpuUsage();
  started = performance.now();
  await runConcurrently(singleCount, SINGLE_CONCURRENCY, async (n) => {
    await system.scheduleOne(singleRun, { n, dueMs: base + n });
    progress.add(1);
  });
  progress.finish();
  const singleSeconds = (performance.now() - started) / 1000;
  const result: ThroughputResult = {
    bulkMessages: bulkCount,
    bulkPerSec: Math.round(bulkCount / bulkSeconds),
    singleMessages: singleCount,
    singlePerSec: Math.round(singleCount / singleSeconds),
    singleClientCpuShare: cpuShare(cpu, singleSeconds),
  };
  const grpc = system.scheduleOneGrpc?.bind(system);
  if (grpc) {
    await warm(grpc);
    const grpcRun = nextRun();
    const grpcProgress = new Progress('single add (gRPC)', singleCount);
    cpu = process.cpuUsage();
    started = performance.now();
    await runConcurrently(singleCount, SINGLE_CONCURRENCY, async (n) => {
      await grpc(grpcRun, { n, dueMs: base + n });
      grpcProgress.add(1);
    });
    grpcProgress.finish();
    const grpcSeconds = (performance.now() - started) / 1000;
    result.singleGrpcPerSec = Math.round(singleCount / grpcSeconds);
    result.singleGrpcClientCpuShare = cpuShare(cpu, grpcSeconds);
  }
  return result;
}

// --- 2. firing lateness at a steady due rate --------------------------------------------------

export interface SteadyResult extends LatenessSummary {
  rate: number;
  seconds: number;
  complete: boolean;
  /** How far ahead of the first due time scheduling finished (negative: it overlapped firing). */
  scheduledAheadMs: number;
  /** p50/p99/max lateness per bucket of due time, so a stall shows (lateness-over-time.svg). */
  timeline?: LatenessTimeline;
}

/** A steady run whose messages are all scheduled and whose deliveries are being tracked. */
export interface ScheduledSteady {
  rate: number;
  seconds: number;
  messages: BenchMessage[];
  tracker: DeliveryTracker;
  firstDueMs: number;
  lastDueMs: number;
  scheduledAheadMs: number;
}

/**
 * Schedules `rate × seconds` messages due evenly over `seconds`, all before the first is due (the
 * lead is sized from the system's bulk rate measured in scenario 1), and starts tracking them.
 */
export async function scheduleSteady(
  system: BenchSystem,
  rate: number,
  seconds: number,
  bulkPerSec: number,
): Promise<ScheduledSteady> {
  const count = Math.max(1, Math.round(rate * seconds));
  const run = nextRun();
  const leadMs = schedulingLeadMs(count, bulkPerSec);
  const firstDueMs = Date.now() + leadMs;
  const messages = Array.from({ length: count }, (_, n) => ({
    n,
    dueMs: firstDueMs + Math.floor((n * 1000) / rate),
  }));
  const tracker = new DeliveryTracker(run, count);
  system.onDeliver = (r, n, due, received) => tracker.record(r, n, due, received);
  await scheduleAll(system, run, messages, `schedule ${rate}/s×${seconds}s`);
  const scheduledAheadMs = firstDueMs - Date.now();
  const lastDueMs = messages[messages.length - 1]?.dueMs ?? firstDueMs;
  return { rate, seconds, messages, tracker, firstDueMs, lastDueMs, scheduledAheadMs };
}

/** Waits for a scheduled steady run until its last due time plus `graceMs`; its figures. */
export async function awaitSteady(run: ScheduledSteady, graceMs: number): Promise<SteadyResult> {
  const { rate, seconds, tracker, firstDueMs, scheduledAheadMs } = run;
  const progress = new Progress(`delivered ${rate}/s`, tracker.expected);
  const complete = await tracker.waitAll(run.lastDueMs + graceMs, progress);
  progress.finish(complete ? '' : 'INCOMPLETE');
  const bucketMs = timelineBucketMs > 0 ? timelineBucketMs : seconds >= 10 ? 1000 : 250;
  return {
    rate,
    seconds,
    complete,
    scheduledAheadMs,
    ...tracker.summary(firstDueMs),
    timeline: latenessTimeline(tracker, run.messages, firstDueMs, bucketMs),
  };
}

/**
 * Scenario 2's steady run: {@link scheduleSteady}, so accepting does not compete with firing,
 * then {@link awaitSteady}.
 */
export async function steady(
  system: BenchSystem,
  rate: number,
  seconds: number,
  bulkPerSec: number,
  graceMs: number,
): Promise<SteadyResult> {
  return awaitSteady(await scheduleSteady(system, rate, seconds, bulkPerSec), graceMs);
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

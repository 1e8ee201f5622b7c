/**
 * Scenario 6 (`--scenarios 6` or `--scenarios callbacks`): HTTP callbacks (docs/callbacks.md) on
 * the Hourglass single node, measured at the receivers, which run in a child process of their own
 * (scripts/bench/callback-receiver.ts). Peers (BullMQ, pg-boss, graphile-worker) have no HTTP
 * callbacks and are not measured.
 *
 * Phases, one after the other on one node (`callbacks.allowNetworks: [127.0.0.0/8]`, the rest of
 * the callback settings at their defaults):
 *
 * 0. warm-up (unmeasured): `rate` callbacks/s to the quick receiver for `warmupSeconds`;
 * 1. alone: `rate` callbacks/s for `seconds` to the quick (keep-alive, `200 ok`) receiver;
 * 2. with a hanging receiver: the same, plus `hangingRate` callbacks/s to a receiver that never
 *    answers (`timeoutMs` `hangingTimeoutMs`, `retry.maxAttempts` 1); the quick receiver's p99
 *    is compared with phase 1's. Then it waits (bounded) until the node gave up on every hanging
 *    callback, so none is under way in phase 3;
 * 3. burst: `burstCount` callbacks due at the same instant, scheduled ahead in batches.
 *
 * Every phase schedules all its callbacks through `POST /v1/messages/batch` before the first is
 * due (the lead is sized from the scheduling rate measured so far), and waits for them until a
 * deadline: counts and times are bounded, nothing waits forever.
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import pg from 'pg';
import type {
  HangingCounts,
  QuickCounts,
  ReceiverCommand,
  ReceiverReply,
} from './callback-receiver';
import type { LatenessSummary } from './common';
import { Progress, bounded, log, runConcurrently, sleep } from './common';
import type { HourglassSystem } from './hourglass';
import { nextRun, schedulingLeadMs } from './scenarios';

const repoRoot = resolve(__dirname, '../..');
const BATCH = 1000;
const BULK_CONCURRENCY = 4;

/** Config the callback scenario's node runs with, over config/default.yaml. */
export const CALLBACK_NODE_CONFIG = { callbacks: { allowNetworks: ['127.0.0.0/8'] } };

/** What the issue asks to report against (figures only: nothing is asserted). */
export const CALLBACK_TARGETS = {
  p50Ms: 5,
  p99Ms: 25,
  hangingP99DifferenceMs: 5,
  burstAllDeliveredMs: 10_000,
};

export interface CallbackSettings {
  /** Callbacks per second to the quick receiver (phases 0–2). */
  rate: number;
  seconds: number;
  warmupSeconds: number;
  /** Callbacks per second to the hanging receiver (phase 2). */
  hangingRate: number;
  hangingTimeoutMs: number;
  burstCount: number;
  burstTimeoutMs: number;
  /** How long past the last due time a phase waits for its callbacks. */
  graceMs: number;
}

/** `hourglass_callback_attempts_total{app="bench"}` by result, over one phase. */
export interface AttemptCounts {
  delivered: number;
  failed: number;
  gone: number;
}

export interface CallbackPhaseResult extends LatenessSummary {
  /** Callbacks per second to the quick receiver (0 for the burst). */
  rate: number;
  seconds: number;
  complete: boolean;
  /** How far ahead of the first due time scheduling finished (negative: it overlapped firing). */
  scheduledAheadMs: number;
  /** Callbacks accepted per second by `POST /v1/messages/batch` (4 callers, batches of 1000). */
  scheduledPerSec: number;
  /** The quick receiver's side: connections opened, retries, stragglers. */
  receiver: QuickCounts;
  /** The node's callback attempts during the phase, from its /metrics. */
  attempts: AttemptCounts;
  /** Why attempts of the phase failed, from the node's attempt log (`message_attempts`). */
  failures: FailureReason[];
  /**
   * The node during the phase (its /metrics): CPU (share of one core), mean callback duration
   * (from sending to the end of the answer, waiting for one of the host's pooled connections
   * included), and its event-loop delay: the highest per-second p99 and the maximum, sampled
   * every second (prom-client resets its histogram at each scrape).
   */
  node: {
    cpuShare: number;
    meanCallbackMs: number;
    loopDelayP99Ms?: number;
    loopDelayMaxMs?: number;
  };
}

export interface FailureReason {
  receiver: 'quick' | 'hanging';
  /** The attempt's error, host:port numbers replaced by `…`. */
  error: string;
  count: number;
}

export interface HangingResult {
  rate: number;
  timeoutMs: number;
  maxAttempts: 1;
  /** Callbacks scheduled to the hanging receiver. */
  sent: number;
  /** What the hanging receiver saw: reached it, closed by the node, still open at the end. */
  receiver: HangingCounts;
  /** Whether the node had given up on all of them (failed attempts) before the next phase. */
  settled: boolean;
  /** From the last hanging due time until the node had failed them all. */
  settledAfterLastDueMs: number;
}

export interface CallbackBurstResult extends CallbackPhaseResult {
  messages: number;
  /** Time from the common due instant until the last callback reached the receiver. */
  allDeliveredAfterMs: number;
}

export interface CallbackResult {
  settings: CallbackSettings;
  /** Where the receivers run and what they answer. */
  receiver: string;
  nodeConfig: Record<string, unknown>;
  targets: typeof CALLBACK_TARGETS;
  alone?: CallbackPhaseResult;
  withHanging?: CallbackPhaseResult & { hanging: HangingResult };
  /**
   * p99 with the hanging receiver − p99 without it, at the quick receiver (ms). Over the
   * callbacks that arrived in time: biased low when a phase did not complete (see below).
   */
  p99DifferenceMs?: number;
  /** Both phases had every callback in time (else the p99s leave the missing ones out). */
  p99DifferenceComplete?: boolean;
  burst?: CallbackBurstResult;
  /** Things worth knowing about the run (e.g. the node restarted after an incomplete phase). */
  notes: string[];
}

/** The receivers' child process and the request/reply protocol over its IPC channel. */
export class CallbackReceivers {
  private child: ChildProcess | undefined;
  private exited: Promise<void> | undefined;
  private readonly waiting = new Map<number, (reply: ReceiverReply) => void>();
  private nextId = 0;
  quickUrl = '';
  hangingUrl = '';

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(timeoutMs = 30_000): Promise<void> {
    const child = fork(resolve(__dirname, 'callback-receiver.ts'), [], {
      cwd: repoRoot,
      execArgv: ['--require', 'tsx/cjs'],
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    this.child = child;
    this.exited = new Promise((resolveExit) => child.once('exit', () => resolveExit()));
    const ready = new Promise<{ quickPort: number; hangingPort: number }>(
      (resolveReady, reject) => {
        child.once('exit', (code, signal) =>
          reject(new Error(`the callback receiver exited (${code ?? signal}) before it was ready`)),
        );
        child.on('message', (reply: ReceiverReply) => {
          if (reply.type === 'ready') {
            resolveReady(reply);
            return;
          }
          const waiter = this.waiting.get(reply.id);
          this.waiting.delete(reply.id);
          waiter?.(reply);
        });
      },
    );
    const { quickPort, hangingPort } = await bounded(ready, timeoutMs, 'starting the receivers');
    this.quickUrl = `http://127.0.0.1:${quickPort}/hook`;
    this.hangingUrl = `http://127.0.0.1:${hangingPort}/hook`;
  }

  private async request<T extends ReceiverReply['type']>(
    command: ReceiverCommand extends infer C ? (C extends unknown ? Omit<C, 'id'> : never) : never,
    type: T,
  ): Promise<Extract<ReceiverReply, { type: T }>> {
    const child = this.child;
    if (!child?.connected) throw new Error('the callback receiver is not running');
    const id = ++this.nextId;
    const reply = new Promise<ReceiverReply>((resolveReply) => this.waiting.set(id, resolveReply));
    child.send({ ...command, id });
    try {
      const answer = await bounded(reply, 10_000, `the receiver's answer to ${command.type}`);
      if (answer.type === 'error') throw new Error(`callback receiver: ${answer.message}`);
      if (answer.type !== type) throw new Error(`callback receiver: ${answer.type}, not ${type}`);
      return answer as Extract<ReceiverReply, { type: T }>;
    } finally {
      this.waiting.delete(id);
    }
  }

  async track(run: number, expected: number): Promise<void> {
    await this.request({ type: 'track', run, expected }, 'ok');
  }

  status(): Promise<Extract<ReceiverReply, { type: 'status' }>> {
    return this.request({ type: 'status' }, 'status');
  }

  summary(firstDueMs: number): Promise<Extract<ReceiverReply, { type: 'summary' }>> {
    return this.request({ type: 'summary', firstDueMs }, 'summary');
  }

  /** Resolves true once the quick receiver has every callback of the run, false at the deadline. */
  async waitAll(expected: number, deadlineMs: number, progress: Progress): Promise<boolean> {
    for (;;) {
      const { distinct } = await this.status();
      progress.update(distinct);
      if (distinct >= expected) return true;
      if (Date.now() >= deadlineMs) return false;
      await sleep(Math.min(250, Math.max(1, deadlineMs - Date.now())));
    }
  }

  /** Asks the child to stop; kills it (by its pid) if it has not exited after `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await this.request({ type: 'stop' }, 'ok').catch(() => undefined);
    try {
      await bounded(this.exited ?? Promise.resolve(), graceMs, 'stopping the callback receiver');
    } catch {
      child.kill('SIGKILL');
      await this.exited;
    }
  }
}

/** The node's CPU seconds and callback durations so far. */
interface NodeSample {
  atMs: number;
  cpuSeconds: number;
  durationSum: number;
  durationCount: number;
}

async function nodeSample(system: HourglassSystem): Promise<NodeSample> {
  const metrics = await system.metrics();
  return {
    atMs: Date.now(),
    cpuSeconds:
      metrics.get('hourglass_process_process_cpu_seconds_total') ??
      metrics.get('process_cpu_seconds_total') ??
      Number.NaN,
    durationSum: metrics.get('hourglass_callback_duration_seconds_sum') ?? 0,
    durationCount: metrics.get('hourglass_callback_duration_seconds_count') ?? 0,
  };
}

/** Samples the node's event-loop delay every second until stopped. */
function sampleLoopDelay(system: HourglassSystem): () => { p99Ms: number; maxMs: number } {
  let p99Ms = 0;
  let maxMs = 0;
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    void system
      .metrics()
      .then((metrics) => {
        const p99 = metrics.get('hourglass_process_nodejs_eventloop_lag_p99_seconds');
        const max = metrics.get('hourglass_process_nodejs_eventloop_lag_max_seconds');
        // prom-client's histogram holds whole 10 ms sampling intervals: the delay is the excess.
        if (p99 !== undefined) p99Ms = Math.max(p99Ms, p99 * 1000 - 10);
        if (max !== undefined) maxMs = Math.max(maxMs, max * 1000 - 10);
      })
      .catch(() => undefined)
      .finally(() => {
        busy = false;
      });
  }, 1000);
  return () => {
    clearInterval(timer);
    return { p99Ms, maxMs };
  };
}

function nodeDuring(before: NodeSample, after: NodeSample): CallbackPhaseResult['node'] {
  const calls = after.durationCount - before.durationCount;
  return {
    cpuShare:
      (after.cpuSeconds - before.cpuSeconds) / Math.max(0.001, (after.atMs - before.atMs) / 1000),
    meanCallbackMs:
      calls > 0 ? ((after.durationSum - before.durationSum) * 1000) / calls : Number.NaN,
  };
}

/** The node's callback attempts of the bench app so far, by result. */
async function attemptCounts(system: HourglassSystem): Promise<AttemptCounts> {
  const counts: AttemptCounts = { delivered: 0, failed: 0, gone: 0 };
  for (const [key, value] of await system.metrics()) {
    if (!key.startsWith('hourglass_callback_attempts_total{') || !key.includes('app="bench"'))
      continue;
    for (const result of ['delivered', 'failed', 'gone'] as const)
      if (key.includes(`result="${result}"`)) counts[result] += value;
  }
  return counts;
}

/**
 * The failed attempts of a run by receiver and error, straight from the node's attempt log (one
 * row per attempt of a message with targets, written when it settles).
 */
async function failureReasons(system: HourglassSystem, run: number): Promise<FailureReason[]> {
  const client = new pg.Client({ connectionString: system.connectionString });
  await client.connect();
  try {
    const { rows } = await client.query<{ kind: string; error: string; count: string }>(
      `SELECT left(id, 1) AS kind, regexp_replace(error, ':[0-9]+', ':…', 'g') AS error, count(*) AS count
         FROM message_attempts
        WHERE app = 'bench' AND (id LIKE $1 OR id LIKE $2) AND error IS NOT NULL
        GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 8`,
      [`c${run}-%`, `h${run}-%`],
    );
    return rows.map((row) => ({
      receiver: row.kind === 'h' ? 'hanging' : 'quick',
      error: row.error,
      count: Number(row.count),
    }));
  } finally {
    await client.end();
  }
}

function minus(after: AttemptCounts, before: AttemptCounts): AttemptCounts {
  return {
    delivered: after.delivered - before.delivered,
    failed: after.failed - before.failed,
    gone: after.gone - before.gone,
  };
}

interface Wire {
  dueMs: number;
  body: Record<string, unknown>;
}

/** Schedules `wire` (sorted by due time) in batches of 1000 from 4 callers; returns messages/s. */
async function scheduleWire(
  system: HourglassSystem,
  wire: readonly Wire[],
  label: string,
): Promise<number> {
  const progress = new Progress(label, wire.length);
  const started = performance.now();
  const batches = Math.ceil(wire.length / BATCH);
  await runConcurrently(batches, BULK_CONCURRENCY, async (index) => {
    const slice = wire.slice(index * BATCH, (index + 1) * BATCH);
    await system.postBatch(slice.map((w) => w.body));
    progress.add(slice.length);
  });
  progress.finish();
  return Math.round(wire.length / ((performance.now() - started) / 1000));
}

interface PhasePlan {
  label: string;
  rate: number;
  seconds: number;
  /** Callbacks to the quick receiver, and when each is due relative to the first due time. */
  quickCount: number;
  quickOffsetMs: (n: number) => number;
  /** Callbacks to the hanging receiver (phase 2), due evenly over the same seconds. */
  hangingCount: number;
  waitMs: number;
  /** The last phase: nothing follows, so an incomplete one needs no restart. */
  last?: boolean;
}

interface PhaseOutcome {
  result: CallbackPhaseResult;
  hanging?: HangingResult;
}

/**
 * Runs the callback scenario on `ctx.system`, filling `into` phase by phase (so a phase that
 * throws leaves the earlier ones' figures). `restart` replaces the node after a phase that did not
 * complete, so its leftovers do not load the next phase.
 */
export async function callbacks(
  ctx: {
    system: HourglassSystem;
    receivers: CallbackReceivers;
    restart: () => Promise<HourglassSystem>;
  },
  settings: CallbackSettings,
  initialBulkPerSec: number,
  into: CallbackResult,
): Promise<void> {
  let bulkPerSec = initialBulkPerSec;
  const { receivers } = ctx;

  const runPhase = async (plan: PhasePlan): Promise<PhaseOutcome> => {
    const system = ctx.system;
    const run = nextRun();
    const total = plan.quickCount + plan.hangingCount;
    const firstDue = Date.now() + schedulingLeadMs(total, bulkPerSec);
    const wire: Wire[] = [];
    for (let n = 0; n < plan.quickCount; n++) {
      const dueMs = firstDue + plan.quickOffsetMs(n);
      wire.push({
        dueMs,
        body: {
          id: `c${run}-${n}`,
          deliverAt: dueMs,
          payload: { n },
          callback: { url: receivers.quickUrl },
        },
      });
    }
    let lastHangingDue = firstDue;
    for (let n = 0; n < plan.hangingCount; n++) {
      const dueMs =
        firstDue + Math.floor(((n + 0.5) * plan.seconds * 1000) / Math.max(1, plan.hangingCount));
      lastHangingDue = Math.max(lastHangingDue, dueMs);
      wire.push({
        dueMs,
        body: {
          id: `h${run}-${n}`,
          deliverAt: dueMs,
          payload: { n },
          callback: { url: receivers.hangingUrl, timeoutMs: settings.hangingTimeoutMs },
          retry: { maxAttempts: 1 },
        },
      });
    }
    wire.sort((a, b) => a.dueMs - b.dueMs);
    const lastDue = wire[wire.length - 1]?.dueMs ?? firstDue;
    await receivers.track(run, plan.quickCount);
    const before = await attemptCounts(system);
    const scheduledPerSec = await scheduleWire(system, wire, `schedule ${plan.label}`);
    if (total >= 5000) bulkPerSec = scheduledPerSec;
    const scheduledAheadMs = firstDue - Date.now();
    const nodeBefore = await nodeSample(system);
    const stopSampling = sampleLoopDelay(system);
    if (scheduledAheadMs < 0)
      log(`callbacks ${plan.label}: scheduling overlapped firing by ${-scheduledAheadMs} ms`);
    const progress = new Progress(`callbacks ${plan.label}`, plan.quickCount);
    const complete = await receivers.waitAll(plan.quickCount, lastDue + plan.waitMs, progress);
    progress.finish(complete ? '' : 'INCOMPLETE');

    let hanging: HangingResult | undefined;
    if (plan.hangingCount > 0) {
      // Every hanging callback ends within twice its timeout of being due (at most its timeout
      // queued for a connection, then its timeout on one); a little more for the node's settle.
      const deadline = lastHangingDue + 2 * settings.hangingTimeoutMs + 10_000;
      let settled = false;
      let settledAt = Number.NaN;
      for (;;) {
        const failed = (await attemptCounts(system)).failed - before.failed;
        if (failed >= plan.hangingCount) {
          settled = true;
          settledAt = Date.now();
          break;
        }
        if (Date.now() > deadline) break;
        await sleep(200);
      }
      const status = await receivers.status();
      hanging = {
        rate: settings.hangingRate,
        timeoutMs: settings.hangingTimeoutMs,
        maxAttempts: 1,
        sent: plan.hangingCount,
        receiver: status.hanging,
        settled,
        settledAfterLastDueMs: settled ? settledAt - lastHangingDue : Number.NaN,
      };
      if (!settled)
        into.notes.push(
          `the node had not given up on all ${plan.hangingCount} hanging callbacks ${deadline - lastHangingDue} ms after the last was due`,
        );
    }
    const summary = await receivers.summary(firstDue);
    const lag = stopSampling();
    const node = {
      ...nodeDuring(nodeBefore, await nodeSample(system)),
      loopDelayP99Ms: lag.p99Ms,
      loopDelayMaxMs: lag.maxMs,
    };
    const attempts = minus(await attemptCounts(system), before);
    const failures =
      attempts.failed + attempts.gone > 0
        ? await bounded(failureReasons(system, run), 30_000, 'reading the attempt log').catch(
            (error: unknown) => {
              log(`callbacks ${plan.label}: ${String(error)}`);
              return [];
            },
          )
        : [];
    const result: CallbackPhaseResult = {
      rate: plan.rate,
      seconds: plan.seconds,
      complete,
      scheduledAheadMs,
      scheduledPerSec,
      receiver: summary.quick,
      attempts,
      failures,
      node,
      ...summary.lateness,
    };
    if (!complete) {
      // What the node said (it runs at `warn`): e.g. a dependency that went away mid-phase.
      const tail = system.nodeOutput.trim().split('\n').filter(Boolean).slice(-3);
      if (tail.length > 0)
        into.notes.push(
          `${plan.label}: the node's last log lines: ${tail.join(' ⏎ ').slice(0, 600)}`,
        );
    }
    if (!plan.last && (!complete || (hanging && !hanging.settled))) {
      into.notes.push(
        `${plan.label}: ${complete ? 'hanging callbacks still under way' : `incomplete (${summary.lateness.distinct} of ${plan.quickCount})`}; the node was restarted before the next phase`,
      );
      log(`callbacks ${plan.label} did not complete; restarting the node`);
      ctx.system = await ctx.restart();
    }
    return hanging ? { result, hanging } : { result };
  };

  const steadyPlan = (label: string, seconds: number, hangingCount: number): PhasePlan => ({
    label,
    rate: settings.rate,
    seconds,
    quickCount: Math.max(1, Math.round(settings.rate * seconds)),
    quickOffsetMs: (n) => Math.floor((n * 1000) / settings.rate),
    hangingCount,
    waitMs: settings.graceMs,
  });

  if (settings.warmupSeconds > 0) {
    const warm = await runPhase(steadyPlan('warm-up', settings.warmupSeconds, 0));
    if (!warm.result.complete) into.notes.push('the warm-up did not complete');
  }
  into.alone = (await runPhase(steadyPlan('alone', settings.seconds, 0))).result;
  const hangingCount = Math.max(1, Math.round(settings.hangingRate * settings.seconds));
  const withHanging = await runPhase(steadyPlan('with hanging', settings.seconds, hangingCount));
  if (withHanging.hanging)
    into.withHanging = { ...withHanging.result, hanging: withHanging.hanging };
  into.p99DifferenceMs = withHanging.result.p99Ms - into.alone.p99Ms;
  into.p99DifferenceComplete = into.alone.complete && withHanging.result.complete;

  const burst = await runPhase({
    label: `burst of ${settings.burstCount}`,
    rate: 0,
    seconds: 0,
    quickCount: settings.burstCount,
    quickOffsetMs: () => 0,
    hangingCount: 0,
    waitMs: settings.burstTimeoutMs,
    last: true,
  });
  into.burst = {
    ...burst.result,
    messages: settings.burstCount,
    allDeliveredAfterMs: burst.result.complete ? burst.result.lastReceivedAfterMs : Number.NaN,
  };
}

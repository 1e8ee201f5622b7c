/**
 * What every system module and scenario shares: the system contract, the delivery tracker that
 * turns receive times into lateness figures, percentiles, a stderr progress bar, bounded waits.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export { sleep };

/** One message of a scenario: its sequence number within the run and its due time. */
export interface BenchMessage {
  readonly n: number;
  readonly dueMs: number;
}

/**
 * A system under test (Hourglass or a peer, in one configuration). One instance serves several
 * scenarios; every scenario gets a run number that travels with its messages, so a straggler of
 * an earlier scenario is never counted in a later one.
 */
export interface BenchSystem {
  /** `Hourglass`, `BullMQ`, … */
  readonly system: string;
  /** `single node`, `defaults`, `tuned (…)` */
  readonly variant: string;
  /** What an acknowledged add survives, read from the service's live settings at start. */
  durability: string;
  /** Creates its own isolated state (schema, key prefix, topic), starts its consumer. */
  start(): Promise<void>;
  /** One bulk call (≤ 1000 messages): Hourglass's HTTP batch, the peers' bulk add. */
  scheduleBatch(run: number, messages: readonly BenchMessage[]): Promise<void>;
  /** One single add. */
  scheduleOne(run: number, message: BenchMessage): Promise<void>;
  /** One single add through gRPC, for a system that serves gRPC (Hourglass; the peers do not). */
  scheduleOneGrpc?(run: number, message: BenchMessage): Promise<void>;
  /** Where deliveries go: the consumer calls it with the run, the number and the due time. */
  onDeliver: (run: number, n: number, dueMs: number, receivedMs: number) => void;
  /** Resident and heap memory of the process holding the messages, when that is a process of ours. */
  memory?(): Promise<{ rssBytes: number; heapUsedBytes: number; held: number }>;
  /** Stops everything and removes its state. Idempotent. */
  stop(): Promise<void>;
}

export type SystemFactory = () => BenchSystem;

export function percentile(sorted: Float64Array | readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] ?? Number.NaN;
}

export interface LatenessSummary {
  expected: number;
  received: number;
  distinct: number;
  early: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Last receive time minus the earliest due time. */
  lastReceivedAfterMs: number;
}

/** Collects the deliveries of one run: lateness per message, duplicates, completion. */
export class DeliveryTracker {
  private readonly seen: Uint8Array;
  private readonly lateness: Float64Array;
  /** Lateness of message n (its first arrival), NaN until it arrived: for the lateness over time. */
  private readonly latenessByN: Float64Array;
  private count = 0;
  private distinctCount = 0;
  private lastReceivedMs = 0;
  private waiter: (() => void) | undefined;

  constructor(
    readonly run: number,
    readonly expected: number,
  ) {
    this.seen = new Uint8Array(expected);
    this.lateness = new Float64Array(expected);
    this.latenessByN = new Float64Array(expected).fill(Number.NaN);
  }

  /** The lateness of message `n`'s first arrival (ms), NaN when it has not arrived. */
  latenessOf(n: number): number {
    return this.latenessByN[n] ?? Number.NaN;
  }

  get distinct(): number {
    return this.distinctCount;
  }

  record(run: number, n: number, dueMs: number, receivedMs: number): void {
    if (run !== this.run || n < 0 || n >= this.expected) return;
    this.count++;
    this.lastReceivedMs = Math.max(this.lastReceivedMs, receivedMs);
    if (this.seen[n] === 1) return; // a duplicate (at-least-once); lateness counts the first
    this.seen[n] = 1;
    this.latenessByN[n] = receivedMs - dueMs;
    this.lateness[this.distinctCount++] = receivedMs - dueMs;
    if (this.distinctCount === this.expected) this.waiter?.();
  }

  /** Resolves true when every message arrived, false at the deadline (epoch ms). */
  async waitAll(deadlineMs: number, progress?: Progress): Promise<boolean> {
    while (this.distinctCount < this.expected) {
      const left = deadlineMs - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 250));
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = undefined;
      progress?.update(this.distinctCount);
    }
    return true;
  }

  summary(firstDueMs: number): LatenessSummary {
    const sorted = this.lateness.slice(0, this.distinctCount).sort();
    return {
      expected: this.expected,
      received: this.count,
      distinct: this.distinctCount,
      early: sorted.filter((ms) => ms < 0).length,
      p50Ms: percentile(sorted, 50),
      p99Ms: percentile(sorted, 99),
      maxMs: sorted.length > 0 ? (sorted[sorted.length - 1] ?? Number.NaN) : Number.NaN,
      lastReceivedAfterMs: this.lastReceivedMs > 0 ? this.lastReceivedMs - firstDueMs : Number.NaN,
    };
  }
}

/**
 * A text progress bar on stderr. On a terminal it redraws one line; otherwise (CI logs) it
 * prints a line at most every 5 s so logs stay short.
 */
export class Progress {
  private lastDraw = 0;
  private readonly tty = process.stderr.isTTY === true;
  private readonly startedAt = Date.now();
  private done = 0;

  constructor(
    private readonly label: string,
    private readonly total: number,
  ) {
    this.draw(true);
  }

  add(count: number): void {
    this.update(this.done + count);
  }

  update(done: number): void {
    this.done = done;
    this.draw(false);
  }

  finish(note = ''): void {
    this.done = Math.max(this.done, 0);
    this.draw(true, note);
    if (this.tty) process.stderr.write('\n');
  }

  private draw(force: boolean, note = ''): void {
    const now = Date.now();
    if (!force && now - this.lastDraw < (this.tty ? 200 : 5000)) return;
    this.lastDraw = now;
    const fraction = this.total > 0 ? Math.min(1, this.done / this.total) : 1;
    const width = 30;
    const filled = Math.round(fraction * width);
    const bar = `${'#'.repeat(filled)}${'.'.repeat(width - filled)}`;
    const seconds = ((now - this.startedAt) / 1000).toFixed(1);
    const line = `  [${bar}] ${(fraction * 100).toFixed(0).padStart(3)}% ${this.label} ${this.done}/${this.total} ${seconds}s ${note}`;
    process.stderr.write(this.tty ? `\r${line.padEnd(110)}` : `${line}\n`);
  }
}

/** Runs `work(i)` for i in [0, count) with at most `concurrency` in flight. */
export async function runConcurrently(
  count: number,
  concurrency: number,
  work: (index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < count) {
      const index = next++;
      await work(index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
}

/** Rejects with a clear message when `promise` takes longer than `ms`. */
export async function bounded<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export function log(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

export function errorText(error: unknown): string {
  return error instanceof Error ? (error.message.split('\n')[0] ?? error.message) : String(error);
}

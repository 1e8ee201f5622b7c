/**
 * Scenario 7, firing while ingesting (Hourglass single node): scenario 2's steady run (all of
 * its messages scheduled before the first is due), and from its first due time until its last,
 * bulk scheduling on the same node at a paced target rate: batches of 1000 through
 * `POST /v1/messages/batch`, due a day ahead so none of them fires. Tells what accepting at a
 * high rate costs the lateness of what fires meanwhile.
 */
import type { BenchSystem } from './common';
import { Progress, log, percentile, sleep } from './common';
import type { SteadyResult } from './scenarios';
import { awaitSteady, nextRun, scheduleSteady } from './scenarios';

const DAY_MS = 86_400_000;
const BATCH = 1000;
/**
 * Concurrent bulk callers. Batches are paced (batch k starts at k × 1000 / rate s), so this only
 * bounds how far a slow node lets the callers fall behind; twice scenario 1's 4 leaves room to
 * catch up.
 */
const INGEST_CONCURRENCY = 8;

export interface IngestSettings {
  /** Due rate of the fired messages (msg/s) and for how long they fall due (s). */
  fireRate: number;
  seconds: number;
  /** Target bulk scheduling rate while they fire (msg/s). */
  ingestRate: number;
  graceMs: number;
}

export interface IngestFigures {
  targetPerSec: number;
  batch: number;
  concurrency: number;
  /** The window the batches were started in (the steady run's due span), s. */
  seconds: number;
  /** Messages acknowledged (201/200 each), and per second of the window (or until the last answer). */
  accepted: number;
  achievedPerSec: number;
  batches: number;
  failedBatches: number;
  firstError?: string;
  /** Time per batch call (ms). */
  batchP50Ms: number;
  batchP99Ms: number;
  batchMaxMs: number;
}

export interface IngestResult {
  /** Lateness of the messages that fired while the node ingested (with its timeline). */
  fired: SteadyResult;
  ingest: IngestFigures;
}

/**
 * Starts batch k at `startMs + k × 1000 / rate` (or as soon as one of the callers is free when
 * behind) until `windowMs` is over; a batch that fails counts and does not stop the others.
 */
async function ingestFor(
  system: BenchSystem,
  rate: number,
  windowMs: number,
): Promise<IngestFigures> {
  const run = nextRun();
  const intervalMs = (BATCH * 1000) / rate;
  const start = performance.now();
  const end = start + windowMs;
  const durations: number[] = [];
  const figures: IngestFigures = {
    targetPerSec: rate,
    batch: BATCH,
    concurrency: INGEST_CONCURRENCY,
    seconds: windowMs / 1000,
    accepted: 0,
    achievedPerSec: 0,
    batches: 0,
    failedBatches: 0,
    batchP50Ms: Number.NaN,
    batchP99Ms: Number.NaN,
    batchMaxMs: Number.NaN,
  };
  const progress = new Progress(`ingest at ${rate}/s`, Math.ceil(windowMs / intervalMs) * BATCH);
  let next = 0;
  let lastAnswer = start;
  const lane = async (): Promise<void> => {
    for (;;) {
      const k = next++;
      const at = start + k * intervalMs;
      if (at >= end) return;
      const wait = at - performance.now();
      if (wait > 0) await sleep(wait);
      if (performance.now() >= end) return; // behind: the window is over
      const base = Date.now() + DAY_MS + k * BATCH;
      const messages = Array.from({ length: BATCH }, (_, i) => ({
        n: k * BATCH + i,
        dueMs: base + i,
      }));
      const sent = performance.now();
      figures.batches++;
      try {
        await system.scheduleBatch(run, messages);
        figures.accepted += BATCH;
        progress.add(BATCH);
      } catch (error) {
        figures.failedBatches++;
        figures.firstError ??= error instanceof Error ? error.message.slice(0, 300) : String(error);
      }
      lastAnswer = performance.now();
      durations.push(lastAnswer - sent);
    }
  };
  await Promise.all(Array.from({ length: INGEST_CONCURRENCY }, lane));
  progress.finish(figures.failedBatches > 0 ? `${figures.failedBatches} batches failed` : '');
  const sorted = Float64Array.from(durations).sort();
  // Over the window at least: batches are paced over it, so a quick last answer is no faster rate.
  const elapsedMs = Math.max(windowMs, lastAnswer - start);
  figures.achievedPerSec = Math.round(figures.accepted / (elapsedMs / 1000));
  figures.batchP50Ms = percentile(sorted, 50);
  figures.batchP99Ms = percentile(sorted, 99);
  figures.batchMaxMs = sorted.length > 0 ? (sorted[sorted.length - 1] ?? Number.NaN) : Number.NaN;
  return figures;
}

/**
 * The steady run at `fireRate` for `seconds`, scheduled ahead like scenario 2's, and bulk
 * scheduling at `ingestRate` during its due span, on the same system.
 */
export async function fireWhileIngesting(
  system: BenchSystem,
  settings: IngestSettings,
  bulkPerSec: number,
): Promise<IngestResult> {
  const scheduled = await scheduleSteady(system, settings.fireRate, settings.seconds, bulkPerSec);
  const wait = scheduled.firstDueMs - Date.now();
  if (wait > 0) await sleep(wait);
  else log(`ingest: scheduling the fired messages ended ${-wait} ms after the first was due`);
  // The fired messages fall due over [first due, first due + seconds): ingest over the same span.
  const windowMs = scheduled.seconds * 1000;
  const [ingest, fired] = await Promise.all([
    ingestFor(system, settings.ingestRate, windowMs),
    awaitSteady(scheduled, settings.graceMs),
  ]);
  return { fired, ingest };
}

const int = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const num = (value: number | null | undefined): string =>
  typeof value === 'number' && Number.isFinite(value) ? int.format(value) : '—';

/** The scenario's lines under the table, next to the same node's steady run alone. */
export function renderIngestLines(
  result: IngestResult,
  alone: SteadyResult | undefined,
  errors: readonly string[],
): string[] {
  const { fired, ingest } = result;
  const figures = `${num(fired.p50Ms)} / ${num(fired.p99Ms)} / ${num(fired.maxMs)} ms`;
  const firedText = fired.complete
    ? figures
    : `incomplete: ${num(fired.distinct)} of ${num(fired.expected)} in time; ${figures}`;
  const aloneText =
    alone && alone.rate === fired.rate
      ? ` (alone, scenario 2: ${num(alone.p50Ms)} / ${num(alone.p99Ms)} / ${num(alone.maxMs)} ms)`
      : '';
  const failed =
    ingest.failedBatches > 0
      ? `; **${num(ingest.failedBatches)} batches failed**: ${(ingest.firstError ?? '').replace(/[|\n]/g, ' ')}`
      : '';
  const lines = [
    `Firing while ingesting (scenario 7, Hourglass single node): ${num(fired.rate)} msg/s due for ${fired.seconds} s, ` +
      `p50 / p99 / max lateness **${firedText}**${aloneText}${fired.scheduledAheadMs < 0 ? ' (scheduling the fired messages overlapped firing)' : ''}, ` +
      `while the same node accepted bulk scheduling (batches of ${num(ingest.batch)}, due a day ahead, ${ingest.concurrency} callers, paced) ` +
      `at **${num(ingest.achievedPerSec)} msg/s** of ${num(ingest.targetPerSec)} targeted (${num(ingest.accepted)} messages; ` +
      `a batch took p50 ${num(ingest.batchP50Ms)} / p99 ${num(ingest.batchP99Ms)} / max ${num(ingest.batchMaxMs)} ms)${failed}.`,
  ];
  if (errors.length > 0) lines.push('', `**Errors: ${errors.join('; ')}**`);
  return lines;
}

/**
 * The results of one bench run: what results.json holds and the markdown table (printed and saved
 * as table.md); chart.svg is drawn by chart.ts, lateness-over-time.svg by timeline.ts.
 */
import type { ScaleResult } from './scale';
import type { BurstResult, MemoryResult, SteadyResult, ThroughputResult } from './scenarios';
import type { CallbackPhaseResult, CallbackResult } from './callbacks';
import type { RetentionBenchResult } from './retention';
import type { FireStages } from './hourglass';
import type { IngestResult } from './ingest';
import { renderIngestLines } from './ingest';
import { renderTimelineLines } from './timeline';

export interface SystemResult {
  system: string;
  variant: string;
  durability: string;
  /** `n/a`: the system could not be set up for a reason outside the bench (say which in `note`). */
  status: 'ok' | 'n/a' | 'error';
  note?: string;
  errors: string[];
  throughput?: ThroughputResult;
  steady?: SteadyResult;
  peak?: SteadyResult | { skipped: string };
  burst?: BurstResult;
  /** Hourglass: the fire path's statements and requests during the burst, per stage. */
  burstStages?: FireStages;
  memory?: MemoryResult;
  scale?: ScaleResult;
  /** Scenario 6: HTTP callbacks (Hourglass single node only). */
  callbacks?: CallbackResult;
  /** Scenario 7: firing while the same node ingests (Hourglass single node only). */
  ingest?: IngestResult;
  /** Scenario 8: retention of finished rows while firing (Hourglass single node only). */
  retention?: RetentionBenchResult;
}

export interface RunReport {
  startedAt: string;
  finishedAt: string;
  mode: 'quick' | 'full';
  machine: {
    cpus: number;
    cpuModel: string;
    memoryGiB: number;
    node: string;
    platform: string;
    /** os.loadavg() at the start and at the end: other work on the machine shows in the figures. */
    loadAverageStart?: number[];
    loadAverageEnd?: number[];
  };
  settings: Record<string, unknown>;
  /** Rates tried for Hourglass's highest sustained rate, and what each gave. */
  peakSearch: { rate: number; sustained: boolean; p99Ms: number; complete: boolean }[];
  peakRate: number | null;
  results: SystemResult[];
}

const int = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

function num(value: number | undefined): string {
  return value === undefined || Number.isNaN(value) ? '—' : int.format(value);
}

function lateness(result: SteadyResult | { skipped: string } | undefined): string {
  if (result === undefined) return '—';
  if ('skipped' in result) return `skipped (${result.skipped})`;
  const figures = `${num(result.p50Ms)} / ${num(result.p99Ms)} / ${num(result.maxMs)}`;
  if (!result.complete)
    return `incomplete: ${num(result.distinct)} of ${num(result.expected)} in time; ${figures}`;
  const overlap = result.scheduledAheadMs < 0 ? ' (scheduling overlapped firing)' : '';
  return `${figures}${overlap}`;
}

function burstCell(result: BurstResult | undefined): [string, string] {
  if (result === undefined) return ['—', '—'];
  const p99 = num(result.p99Ms);
  if (!result.complete)
    return [`not within the limit: ${num(result.distinct)} of ${num(result.messages)}`, p99];
  return [`${(result.allDeliveredAfterMs / 1000).toFixed(2)} s`, p99];
}

export function renderTable(report: RunReport): string {
  const steadyRate = report.results.find((r) => r.steady)?.steady?.rate ?? 2000;
  const peak = report.peakRate;
  const burstCount = report.results.find((r) => r.burst)?.burst?.messages;
  const lines: string[] = [];
  const ran = (report.settings.scenarios as number[] | undefined) ?? [1, 2, 3];
  // The systems table holds scenarios 1–3; a run of only 4–7 has nothing to put in it.
  const systemsTable = [1, 2, 3].some((scenario) => ran.includes(scenario));
  if (systemsTable)
    lines.push(
      `| system | variant | durability | bulk add (msg/s) | single add (msg/s) | single add (gRPC) (msg/s) | ${int.format(steadyRate)} msg/s: p50 / p99 / max lateness (ms) | ${peak === null ? 'highest rate' : `${int.format(peak)} msg/s`}: p50 / p99 / max (ms) | burst of ${num(burstCount)}: all delivered after | burst p99 (ms) |`,
    );
  if (systemsTable) lines.push('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of systemsTable ? report.results : []) {
    if (r.status === 'n/a' && !r.throughput) {
      lines.push(`| ${r.system} | ${r.variant} | — | ${r.note ?? 'not available'} | | | | | | |`);
      continue;
    }
    const [burstAfter, burstP99] = burstCell(r.burst);
    const errors = r.errors.length > 0 ? ` **errors: ${r.errors.join('; ')}**` : '';
    // Peers have no gRPC API: their cell stays "—".
    lines.push(
      `| ${r.system} | ${r.variant} | ${r.durability} | ${num(r.throughput?.bulkPerSec)} | ${num(r.throughput?.singlePerSec)} | ${num(r.throughput?.singleGrpcPerSec)} | ${lateness(r.steady)} | ${lateness(r.peak)} | ${burstAfter} | ${burstP99}${errors} |`,
    );
  }
  const grpc = report.results.filter((r) => r.throughput?.singleGrpcPerSec !== undefined);
  if (systemsTable && grpc.length > 0) {
    const share = (value: number | undefined): string =>
      value === undefined ? '—' : `${Math.round(value * 100)} %`;
    lines.push(
      '',
      `Single adds, the bench process's own CPU (the 32 callers; share of one core) over HTTP / gRPC (SDK, grpc-js): ${grpc
        .map(
          (r) =>
            `${r.system} ${r.variant} ${share(r.throughput?.singleClientCpuShare)} / ${share(r.throughput?.singleGrpcClientCpuShare)}`,
        )
        .join('; ')}.`,
    );
  }
  const withIngest = report.results.find((r) => r.ingest);
  if (withIngest?.ingest) {
    if (lines.length > 0) lines.push('');
    const errors = withIngest.errors.filter((error) => error.startsWith('ingest:'));
    lines.push(...renderIngestLines(withIngest.ingest, withIngest.steady, errors));
  } else {
    const failed = report.results.find((r) => r.errors.some((e) => e.startsWith('ingest:')));
    if (failed) {
      if (lines.length > 0) lines.push('');
      lines.push(
        `Firing while ingesting (scenario 7): **${failed.errors.filter((e) => e.startsWith('ingest:')).join('; ')}**`,
      );
    }
  }
  const timeline = renderTimelineLines(report);
  if (timeline.length > 0) {
    if (lines.length > 0) lines.push('');
    lines.push(...timeline);
  }
  const memory = report.results.find((r) => r.memory)?.memory;
  if (memory) {
    lines.push('');
    lines.push(
      `Memory (Hourglass single node, ${num(memory.held)} messages held in the wheel): RSS ${num(memory.rssBeforeBytes / 2 ** 20)} → ${num(memory.rssAfterBytes / 2 ** 20)} MiB, ` +
        `**${num(memory.rssBytesPerMessage)} B per held message (RSS delta, no forced GC)**, ${num(memory.heapBytesPerMessage)} B per message of V8 heap. ` +
        (memory.liveBytesPerMessage === undefined
          ? ''
          : `After forced full GCs in the node: **${num(memory.liveBytesPerMessage)} B per held message live** (V8 heap used + ArrayBuffers, ${num((memory.liveBeforeBytes ?? 0) / 2 ** 20)} → ${num((memory.liveAfterBytes ?? 0) / 2 ** 20)} MiB), ` +
            `${num(memory.rssAfterGcBytesPerMessage)} B per message of RSS (${num((memory.rssAfterGcBytes ?? 0) / 2 ** 20)} MiB). `) +
        `The wheel holds no payload (each request carried ${memory.payloadBytesPerMessage} B of payload, which stays in Postgres), so the figure is the same with or without payload.`,
    );
  }
  const scale = report.results.find((r) => r.scale)?.scale;
  if (scale) {
    lines.push('');
    lines.push(
      `Scale (Hourglass single node with ${num(scale.pending)} messages pending, filled by ${scale.filledBy} in ${scale.fillSeconds.toFixed(0)} s): ` +
        `bulk add ${num(scale.throughput.bulkPerSec)} msg/s, single add ${num(scale.throughput.singlePerSec)} msg/s, ` +
        `firing ${num(scale.steady.rate)} msg/s: p50 / p99 / max ${lateness(scale.steady)} ms.`,
    );
  }
  const withRetention = report.results.find((r) => r.retention);
  if (withRetention?.retention) {
    lines.push(
      '',
      'Retention (scenario 8; Hourglass single node): the job removes finished rows while the steady rate fires.',
      '',
      withRetention.retention.table,
    );
  }
  const withCallbacks = report.results.find((r) => r.callbacks);
  if (withCallbacks?.callbacks) {
    if (lines.length > 0) lines.push('');
    const errors = withCallbacks.errors.filter((error) => error.startsWith('callbacks:'));
    lines.push(...renderCallbacks(withCallbacks.callbacks, errors));
  }
  for (const result of report.results) {
    if (!result.burstStages) continue;
    const parts = Object.entries(result.burstStages)
      .filter(([, stage]) => stage.calls > 0)
      .map(
        ([name, stage]) =>
          `${name} ${num(stage.calls)} × ${(stage.messages / stage.calls).toFixed(0)} msgs, ${((stage.seconds * 1000) / stage.calls).toFixed(1)} ms each (${((stage.seconds * 1e6) / Math.max(1, stage.messages)).toFixed(1)} µs/msg)`,
      );
    lines.push('');
    lines.push(
      `Fire path during the burst (${result.system} ${result.variant}): ${parts.join('; ')}.`,
    );
  }
  if (report.peakSearch.length > 0) {
    lines.push('');
    lines.push(
      `Highest sustained rate (Hourglass single node; sustained = all delivered and p99 ≤ 100 ms): ` +
        report.peakSearch
          .map(
            (p) =>
              `${int.format(p.rate)}/s → p99 ${num(p.p99Ms)} ms${p.complete ? '' : ' incomplete'}${p.sustained ? ' ✓' : ' ✗'}`,
          )
          .join(', '),
    );
  }
  const m = report.machine;
  if (m.loadAverageStart) {
    lines.push('');
    lines.push(
      `Machine: ${m.cpus} cores; load average (1 / 5 / 15 min) at the start ${m.loadAverageStart.join(' / ')}` +
        `${m.loadAverageEnd ? `, at the end ${m.loadAverageEnd.join(' / ')}` : ''} (other work on the machine shows in the figures).`,
    );
  }
  return lines.join('\n');
}

/** `p99 ≤ 25 ms ✓`: a figure against its target (reported, not asserted). */
function against(label: string, value: number | undefined, target: number, unit = 'ms'): string {
  if (value === undefined || Number.isNaN(value)) return `${label} ≤ ${num(target)} ${unit}: —`;
  return `${label} ≤ ${num(target)} ${unit} ${value <= target ? '✓' : '✗'}`;
}

function callbackPhaseCells(phase: CallbackPhaseResult | undefined): string {
  if (!phase) return 'not run';
  const figures = `${num(phase.p50Ms)} / ${num(phase.p99Ms)} / ${num(phase.maxMs)}`;
  const overlap = phase.scheduledAheadMs < 0 ? ' (scheduling overlapped firing)' : '';
  if (!phase.complete)
    return `incomplete: ${num(phase.distinct)} of ${num(phase.expected)} in time; ${figures}${overlap}`;
  return `${figures}${overlap}`;
}

function pct(share: number): string {
  return Number.isFinite(share) ? `${Math.round(share * 100)} %` : '—';
}

function attemptsNote(phase: CallbackPhaseResult): string {
  const a = phase.attempts;
  const parts = [
    `node: ${num(a.delivered)} delivered, ${num(a.failed)} failed${a.gone > 0 ? `, ${num(a.gone)} gone` : ''} attempts`,
    `${num(phase.receiver.connections)} new connections`,
  ];
  const duplicates = phase.received - phase.distinct;
  if (duplicates > 0) parts.push(`${num(duplicates)} duplicates`);
  if (phase.receiver.retries > 0) parts.push(`${num(phase.receiver.retries)} retries arrived`);
  if (phase.early > 0) parts.push(`${num(phase.early)} early`);
  parts.push(`scheduled at ${num(phase.scheduledPerSec)}/s`);
  if (phase.node)
    parts.push(
      `node CPU ${pct(phase.node.cpuShare)} of a core, mean callback ${phase.node.meanCallbackMs.toFixed(1)} ms` +
        (phase.node.loopDelayMaxMs === undefined
          ? ''
          : `, loop delay p99 ${(phase.node.loopDelayP99Ms ?? 0).toFixed(0)} ms / max ${phase.node.loopDelayMaxMs.toFixed(0)} ms`),
    );
  const r = phase.receiver;
  if (r.cpuShare !== undefined)
    parts.push(
      `receiver CPU ${pct(r.cpuShare)}, loop delay p99 ${(r.loopDelayP99Ms ?? 0).toFixed(0)} ms / max ${(r.loopDelayMaxMs ?? 0).toFixed(0)} ms`,
    );
  for (const failure of phase.failures ?? [])
    parts.push(
      `${num(failure.count)} × ${failure.receiver}: "${failure.error.slice(0, 120).replace(/[|\n]/g, ' ')}"`,
    );
  return parts.join('; ');
}

/** Scenario 6's own table: lateness at the receiver, alone, with a hanging receiver, burst. */
export function renderCallbacks(c: CallbackResult, errors: readonly string[] = []): string[] {
  const t = c.targets;
  const s = c.settings;
  const lines: string[] = [];
  lines.push(
    `HTTP callbacks (scenario 6; Hourglass single node only: BullMQ, pg-boss and graphile-worker have no HTTP callbacks). ` +
      `Lateness is measured at the receiver (receive time − \`hourglass-deliver-at\`); receivers: ${c.receiver}. ` +
      `Node config: defaults + ${JSON.stringify(c.nodeConfig)}. Targets are the issue's, reported, not asserted.`,
  );
  lines.push('');
  lines.push(
    '| HTTP callbacks | callbacks | p50 / p99 / max lateness (ms) | all delivered after | against the targets | notes |',
  );
  lines.push('| --- | --- | --- | --- | --- | --- |');
  const steadyLabel = `${int.format(s.rate)}/s × ${s.seconds} s to a keep-alive receiver`;
  const latenessTargets = (phase: CallbackPhaseResult | undefined): string =>
    phase ? `${against('p50', phase.p50Ms, t.p50Ms)}, ${against('p99', phase.p99Ms, t.p99Ms)}` : '';
  const a = c.alone;
  lines.push(
    `| ${steadyLabel}, alone | ${num(a?.expected)} | ${callbackPhaseCells(a)} | — | ${latenessTargets(a)} | ${a ? attemptsNote(a) : ''} |`,
  );
  const h = c.withHanging;
  const hangingNote = h
    ? `hanging receiver (${int.format(h.hanging.rate)}/s, timeoutMs ${h.hanging.timeoutMs}, maxAttempts 1): ${num(h.hanging.sent)} sent, ${num(h.hanging.receiver.reached)} reached it, ` +
      `${num(h.hanging.receiver.aborted)} closed by the node, ` +
      (h.hanging.settled
        ? `all failed ${num(h.hanging.settledAfterLastDueMs)} ms after the last was due`
        : '**not all failed in time**') +
      `; ${attemptsNote(h)}`
    : '';
  lines.push(
    `| ${steadyLabel}, with a hanging receiver | ${num(h?.expected)} (+ ${num(h?.hanging.sent)} hanging) | ${callbackPhaseCells(h)} | — | ${latenessTargets(h)} | ${hangingNote} |`,
  );
  const d = c.p99DifferenceMs;
  lines.push(
    `| p99 with − without the hanging receiver | | ${d === undefined ? '—' : `**${d >= 0 ? '+' : ''}${num(d)} ms** (${num(h?.p99Ms)} vs ${num(a?.p99Ms)})${c.p99DifferenceComplete === false ? ', over the callbacks that arrived in time (a phase was incomplete)' : ''}`} | | ${d === undefined ? '' : against('difference', d, t.hangingP99DifferenceMs)} | |`,
  );
  const b = c.burst;
  const burstAfter = !b
    ? 'not run'
    : b.complete
      ? `**${(b.allDeliveredAfterMs / 1000).toFixed(2)} s**`
      : `not within ${(s.burstTimeoutMs / 1000).toFixed(0)} s: ${num(b.distinct)} of ${num(b.messages)}`;
  lines.push(
    `| burst: ${num(s.burstCount)} due at the same instant | ${num(b?.expected)} | ${callbackPhaseCells(b)} | ${burstAfter} | ${b ? against('all', b.complete ? b.allDeliveredAfterMs / 1000 : Number.POSITIVE_INFINITY, t.burstAllDeliveredMs / 1000, 's') : ''} | ${b ? attemptsNote(b) : ''} |`,
  );
  if (c.notes.length > 0) {
    lines.push('');
    lines.push(`Notes: ${c.notes.map((note) => note.replace(/[|\n]/g, ' ')).join('; ')}.`);
  }
  if (errors.length > 0) {
    lines.push('');
    lines.push(`**Errors: ${errors.join('; ')}**`);
  }
  return lines;
}

/**
 * The results of one bench run: the markdown table (printed and saved as table.md), results.json
 * and chart.svg (hand-drawn SVG: no charting dependency).
 */
import type {
  BurstResult,
  MemoryResult,
  ScaleResult,
  SteadyResult,
  ThroughputResult,
} from './scenarios';
import type { CallbackPhaseResult, CallbackResult } from './callbacks';
import type { FireStages } from './hourglass';

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
  // The systems table holds scenarios 1–3; a run of only 4, 5 or 6 has nothing to put in it.
  const systemsTable = [1, 2, 3].some((scenario) => ran.includes(scenario));
  if (systemsTable)
    lines.push(
      `| system | variant | durability | bulk add (msg/s) | single add (msg/s) | ${int.format(steadyRate)} msg/s: p50 / p99 / max lateness (ms) | ${peak === null ? 'highest rate' : `${int.format(peak)} msg/s`}: p50 / p99 / max (ms) | burst of ${num(burstCount)}: all delivered after | burst p99 (ms) |`,
    );
  if (systemsTable) lines.push('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of systemsTable ? report.results : []) {
    if (r.status === 'n/a' && !r.throughput) {
      lines.push(`| ${r.system} | ${r.variant} | — | ${r.note ?? 'not available'} | | | | | |`);
      continue;
    }
    const [burstAfter, burstP99] = burstCell(r.burst);
    const errors = r.errors.length > 0 ? ` **errors: ${r.errors.join('; ')}**` : '';
    lines.push(
      `| ${r.system} | ${r.variant} | ${r.durability} | ${num(r.throughput?.bulkPerSec)} | ${num(r.throughput?.singlePerSec)} | ${lateness(r.steady)} | ${lateness(r.peak)} | ${burstAfter} | ${burstP99}${errors} |`,
    );
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

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * Two horizontal bar charts: lateness at the steady rate (p50 and p99, log scale: the systems
 * differ by orders of magnitude) and bulk scheduling throughput (linear).
 */
export function renderChart(report: RunReport): string {
  const rows = report.results.filter((r) => r.throughput || r.steady);
  const labelWidth = 330;
  const chartWidth = 420;
  const rowHeight = 34;
  const top = 70;
  const height = top + rows.length * rowHeight + 60;
  const width = labelWidth + chartWidth * 2 + 80;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
  );
  out.push(`<rect width="100%" height="100%" fill="white"/>`);
  const steadyRate = rows.find((r) => r.steady)?.steady?.rate ?? 2000;
  out.push(
    `<text x="10" y="20" font-size="15" font-weight="bold">Hourglass bench (${report.mode}, ${escapeXml(report.startedAt)}, ${report.machine.cpus} cores)</text>`,
  );

  // Lateness panel (log10 scale from 1 ms to the largest p99).
  const x0 = labelWidth;
  const maxLate = Math.max(
    10,
    ...rows.map((r) => (r.steady ? r.steady.p99Ms : 0)).filter((v) => Number.isFinite(v)),
  );
  const logMax = Math.log10(maxLate * 1.2);
  const scaleLate = (ms: number): number =>
    (Math.max(0, Math.log10(Math.max(1, ms))) / logMax) * (chartWidth - 20);
  out.push(
    `<text x="${x0}" y="45" font-weight="bold">lateness at ${int.format(steadyRate)} msg/s (ms, log scale): p50 dark, p99 light</text>`,
  );
  // Throughput panel.
  const x1 = labelWidth + chartWidth + 40;
  const maxTp = Math.max(1, ...rows.map((r) => r.throughput?.bulkPerSec ?? 0));
  out.push(`<text x="${x1}" y="45" font-weight="bold">bulk scheduling (msg/s)</text>`);

  rows.forEach((r, i) => {
    const y = top + i * rowHeight;
    const hourglass = r.system === 'Hourglass';
    out.push(
      `<text x="10" y="${y + 16}"${hourglass ? ' font-weight="bold"' : ''}>${escapeXml(`${r.system} ${r.variant}`)}</text>`,
    );
    const s = r.steady;
    if (s && Number.isFinite(s.p99Ms)) {
      const p99w = scaleLate(s.p99Ms);
      const p50w = scaleLate(s.p50Ms);
      out.push(
        `<rect x="${x0}" y="${y + 2}" width="${p99w.toFixed(1)}" height="22" fill="${hourglass ? '#f5b971' : '#a9c4e8'}"/>`,
      );
      out.push(
        `<rect x="${x0}" y="${y + 7}" width="${p50w.toFixed(1)}" height="12" fill="${hourglass ? '#d9770b' : '#2f6db5'}"/>`,
      );
      const flag = s.complete ? '' : ' (incomplete)';
      out.push(
        `<text x="${x0 + p99w + 4}" y="${y + 17}">${int.format(s.p50Ms)} / ${int.format(s.p99Ms)}${flag}</text>`,
      );
    } else {
      out.push(`<text x="${x0}" y="${y + 17}" fill="#888">n/a</text>`);
    }
    const tp = r.throughput?.bulkPerSec;
    if (tp !== undefined) {
      const w = (tp / maxTp) * (chartWidth - 80);
      out.push(
        `<rect x="${x1}" y="${y + 4}" width="${w.toFixed(1)}" height="18" fill="${hourglass ? '#d9770b' : '#2f6db5'}"/>`,
      );
      out.push(`<text x="${x1 + w + 4}" y="${y + 17}">${int.format(tp)}</text>`);
    } else {
      out.push(`<text x="${x1}" y="${y + 17}" fill="#888">n/a</text>`);
    }
  });
  // Log axis ticks.
  const axisY = top + rows.length * rowHeight + 10;
  for (let decade = 1; decade <= maxLate * 1.2; decade *= 10) {
    const x = x0 + scaleLate(decade);
    out.push(`<line x1="${x}" y1="${top - 5}" x2="${x}" y2="${axisY}" stroke="#ddd"/>`);
    out.push(
      `<text x="${x}" y="${axisY + 14}" text-anchor="middle" fill="#555">${int.format(decade)}</text>`,
    );
  }
  out.push('</svg>');
  return out.join('\n');
}

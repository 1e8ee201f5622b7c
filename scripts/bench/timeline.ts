/**
 * Lateness over time: the per-message lateness of a steady run bucketed by due time (p50, p99 and
 * max per bucket), so a stall of a second shows even where it barely moves the run's overall
 * p99. Written into results.json (`steady.timeline`, `ingest.fired.timeline`), drawn in
 * lateness-over-time.svg (hand-drawn SVG, like chart.svg: no charting dependency) and summed up
 * per system as its worst bucket in the table.
 */
import type { BenchMessage, DeliveryTracker } from './common';
import { percentile } from './common';
import type { RunReport } from './report';

export interface LatenessBucket {
  /** Where the bucket starts: due time − the run's first due time (ms). */
  tMs: number;
  /** Messages due in the bucket. */
  due: number;
  /** How many of them arrived before the run's deadline; the figures are over these. */
  arrived: number;
  /** NaN (null in results.json) when none arrived. */
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface LatenessTimeline {
  bucketMs: number;
  buckets: LatenessBucket[];
}

/** Buckets `messages` by due time (`bucketMs` wide from `firstDueMs`) with their lateness. */
export function latenessTimeline(
  tracker: DeliveryTracker,
  messages: readonly BenchMessage[],
  firstDueMs: number,
  bucketMs: number,
): LatenessTimeline {
  const lastDueMs = messages.reduce((last, m) => Math.max(last, m.dueMs), firstDueMs);
  const count = Math.floor((lastDueMs - firstDueMs) / bucketMs) + 1;
  const due = new Array<number>(count).fill(0);
  const values = Array.from({ length: count }, (): number[] => []);
  for (const message of messages) {
    const index = Math.floor((message.dueMs - firstDueMs) / bucketMs);
    due[index] = (due[index] ?? 0) + 1;
    const lateness = tracker.latenessOf(message.n);
    if (!Number.isNaN(lateness)) values[index]?.push(lateness);
  }
  return {
    bucketMs,
    buckets: values.map((list, index) => {
      const sorted = Float64Array.from(list).sort();
      return {
        tMs: index * bucketMs,
        due: due[index] ?? 0,
        arrived: sorted.length,
        p50Ms: percentile(sorted, 50),
        p99Ms: percentile(sorted, 99),
        maxMs: sorted.length > 0 ? (sorted[sorted.length - 1] ?? Number.NaN) : Number.NaN,
      };
    }),
  };
}

/** A figure read back from results.json, where NaN was written as null. */
function finite(value: number | null | undefined): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

/** The bucket with the highest p99 (the earliest of equal ones), if any message arrived. */
export function worstBucket(timeline: LatenessTimeline): LatenessBucket | undefined {
  let worst: LatenessBucket | undefined;
  for (const bucket of timeline.buckets)
    if (finite(bucket.p99Ms) && (!worst || bucket.p99Ms > worst.p99Ms)) worst = bucket;
  return worst;
}

function bucketLabel(bucketMs: number): string {
  return bucketMs % 1000 === 0 ? `${bucketMs / 1000} s` : `${bucketMs} ms`;
}

function seconds(ms: number, bucketMs: number): string {
  return (ms / 1000).toFixed(bucketMs % 1000 === 0 ? 0 : 2);
}

const int = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const fmt = (value: number | null | undefined): string => (finite(value) ? int.format(value) : '—');

/** `worst 1 s bucket: p99 35 ms at t=12s (p50 2, max 80 ms)`, plus messages that never arrived. */
export function worstBucketText(timeline: LatenessTimeline): string {
  const worst = worstBucket(timeline);
  const missing = timeline.buckets.reduce((sum, b) => sum + (b.due - b.arrived), 0);
  const missingText =
    missing > 0
      ? `; ${int.format(missing)} messages missing in ${timeline.buckets.filter((b) => b.arrived < b.due).length} buckets`
      : '';
  if (!worst) return `no ${bucketLabel(timeline.bucketMs)} bucket had a delivery${missingText}`;
  return (
    `worst ${bucketLabel(timeline.bucketMs)} bucket: p99 ${fmt(worst.p99Ms)} ms at t=${seconds(worst.tMs, timeline.bucketMs)}s ` +
    `(p50 ${fmt(worst.p50Ms)}, max ${fmt(worst.maxMs)} ms)${missingText}`
  );
}

interface Panel {
  title: string;
  timeline: LatenessTimeline;
  hourglass: boolean;
}

function panels(report: RunReport): Panel[] {
  const out: Panel[] = [];
  for (const r of report.results) {
    const name = `${r.system} ${r.variant}`;
    if (r.steady?.timeline)
      out.push({
        title: `${name}: steady ${int.format(r.steady.rate)} msg/s`,
        timeline: r.steady.timeline,
        hourglass: r.system === 'Hourglass',
      });
    const fired = r.ingest?.fired;
    if (fired?.timeline)
      out.push({
        title: `${name}: ${int.format(fired.rate)} msg/s firing while ingesting at ${int.format(r.ingest?.ingest.achievedPerSec ?? Number.NaN)} msg/s`,
        timeline: fired.timeline,
        hourglass: r.system === 'Hourglass',
      });
  }
  return out;
}

/** One line per phase with a timeline: its worst bucket. */
export function renderTimelineLines(report: RunReport): string[] {
  const list = panels(report);
  if (list.length === 0) return [];
  return [
    'Lateness over time (buckets by due time; lateness-over-time.svg):',
    '',
    ...list.map((panel) => `- ${panel.title}: ${worstBucketText(panel.timeline)}`),
  ];
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Ticks every 0.25 … 120 s, whichever gives at most 12 over `totalMs`. */
function tickStepMs(totalMs: number): number {
  const steps = [250, 500, 1000, 2000, 5000, 10_000, 15_000, 30_000, 60_000, 120_000];
  return steps.find((step) => totalMs / step <= 12) ?? 300_000;
}

/**
 * One panel per system and phase, stacked: p50, p99 and max lateness per bucket over the due
 * time, log scale (1 ms to the panel's largest max: the systems differ by orders of magnitude),
 * each panel scaled on its own so a stall of one system is not flattened by another's figures.
 * A red mark over a bucket: some of its messages did not arrive in time.
 */
export function renderTimelineChart(report: RunReport): string {
  const list = panels(report);
  const left = 70;
  const plotWidth = 820;
  const plotHeight = 110;
  const panelHeight = plotHeight + 72;
  const top = 56;
  const width = left + plotWidth + 30;
  const height = top + Math.max(1, list.length) * panelHeight + 10;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="20" font-size="15" font-weight="bold">Lateness over time by due time (${report.mode}, ${escapeXml(report.startedAt)}, ${report.machine.cpus} cores)</text>`,
    `<text x="10" y="40" fill="#555">ms, log scale, per bucket: <tspan fill="#222" font-weight="bold">p50</tspan>, <tspan fill="#d9770b" font-weight="bold">p99</tspan>, <tspan fill="#888" font-weight="bold">max (dashed)</tspan>; <tspan fill="#c62828" font-weight="bold">red</tspan>: messages of the bucket missing</text>`,
  ];
  if (list.length === 0)
    out.push(`<text x="${left}" y="${top + 30}" fill="#888">no steady run in this run</text>`);
  list.forEach((panel, index) => {
    const y0 = top + index * panelHeight + 32;
    const { bucketMs, buckets } = panel.timeline;
    const totalMs = Math.max(bucketMs, buckets.length * bucketMs);
    const highest = Math.max(10, ...buckets.map((b) => (finite(b.maxMs) ? b.maxMs : 0)));
    const decades = Math.max(1, Math.ceil(Math.log10(highest)));
    const yOf = (ms: number): number =>
      y0 +
      plotHeight -
      (Math.log10(Math.min(10 ** decades, Math.max(1, ms))) / decades) * plotHeight;
    const xOf = (ms: number): number => left + (ms / totalMs) * plotWidth;
    out.push(
      `<text x="${left}" y="${y0 - 20}" font-weight="bold">${escapeXml(`${panel.title} (${bucketLabel(bucketMs)} buckets)`)}</text>`,
      `<text x="${left}" y="${y0 - 6}" fill="#555">${escapeXml(worstBucketText(panel.timeline))}</text>`,
      `<rect x="${left}" y="${y0}" width="${plotWidth}" height="${plotHeight}" fill="none" stroke="#ccc"/>`,
    );
    for (let decade = 0; decade <= decades; decade++) {
      const y = yOf(10 ** decade).toFixed(1);
      out.push(
        `<line x1="${left}" y1="${y}" x2="${left + plotWidth}" y2="${y}" stroke="#eee"/>`,
        `<text x="${left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle" fill="#555">${int.format(10 ** decade)}</text>`,
      );
    }
    const step = tickStepMs(totalMs);
    for (let t = 0; t <= totalMs; t += step) {
      const x = xOf(t).toFixed(1);
      out.push(
        `<line x1="${x}" y1="${y0 + plotHeight}" x2="${x}" y2="${y0 + plotHeight + 4}" stroke="#555"/>`,
        `<text x="${x}" y="${y0 + plotHeight + 16}" text-anchor="middle" fill="#555">${seconds(t, step)}s</text>`,
      );
    }
    // max last and dashed: it often runs on top of p99 and must not hide it.
    const series: [keyof LatenessBucket, string, number, string][] = [
      ['p99Ms', panel.hourglass ? '#d9770b' : '#2f6db5', 2, ''],
      ['p50Ms', '#222', 1.5, ''],
      ['maxMs', '#888', 1, ' stroke-dasharray="4 3"'],
    ];
    for (const [field, color, strokeWidth, dash] of series) {
      // A bucket without deliveries breaks the line rather than drawing through it.
      let points: string[] = [];
      const flush = (): void => {
        if (points.length === 1) {
          const [x, y] = points[0]!.split(',');
          out.push(`<circle cx="${x}" cy="${y}" r="2" fill="${color}"/>`);
        } else if (points.length > 1) {
          out.push(
            `<polyline points="${points.join(' ')}" fill="none" stroke="${color}" stroke-width="${strokeWidth}"${dash}/>`,
          );
        }
        points = [];
      };
      for (const bucket of buckets) {
        const value = bucket[field];
        if (!finite(value)) {
          flush();
          continue;
        }
        points.push(`${xOf(bucket.tMs + bucketMs / 2).toFixed(1)},${yOf(value).toFixed(1)}`);
      }
      flush();
    }
    for (const bucket of buckets) {
      if (bucket.arrived >= bucket.due) continue;
      const x = xOf(bucket.tMs);
      out.push(
        `<rect x="${x.toFixed(1)}" y="${y0}" width="${Math.max(1, (bucketMs / totalMs) * plotWidth).toFixed(1)}" height="5" fill="#c62828"><title>${bucket.due - bucket.arrived} of ${bucket.due} missing</title></rect>`,
      );
    }
  });
  out.push('</svg>');
  return out.join('\n');
}

/**
 * `npm run bench -- --compare A B`: reads two runs' results.json (each given as its folder or the
 * file) and prints a markdown table of every figure both have, per system and scenario, with B/A.
 * It starts nothing (scripts/bench/run skips the services for it) and only reads the two files.
 *
 *   node --require tsx/cjs scripts/bench/compare.ts bench-results/<a> bench-results/<b>
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { LatenessSummary } from './common';
import type { RunReport } from './report';
import type { LatenessTimeline } from './timeline';
import { worstBucket } from './timeline';

interface Figure {
  system: string;
  variant: string;
  scenario: string;
  figure: string;
  value: number;
  better: 'higher' | 'lower';
  /** Decimals to print (seconds get 2, the rest none). */
  decimals: number;
  /** Set when the figure comes from a run that did not complete (over what arrived in time). */
  incomplete?: boolean;
}

/** NaN was written to results.json as null. */
function finite(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

const int = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

/** Every figure of one run, flat, keyed by system, variant, scenario and figure. */
export function flatten(report: RunReport): Map<string, Figure> {
  const out = new Map<string, Figure>();
  for (const r of report.results) {
    const add = (
      scenario: string,
      figure: string,
      value: unknown,
      better: Figure['better'],
      extra: { decimals?: number; incomplete?: boolean } = {},
    ): void => {
      if (!finite(value)) return;
      const entry: Figure = {
        system: r.system,
        variant: r.variant,
        scenario,
        figure,
        value,
        better,
        decimals: extra.decimals ?? 0,
        ...(extra.incomplete ? { incomplete: true } : {}),
      };
      out.set(`${r.system}\u0000${r.variant}\u0000${scenario}\u0000${figure}`, entry);
    };
    const lateness = (
      scenario: string,
      label: string,
      s: (LatenessSummary & { complete?: boolean; timeline?: LatenessTimeline }) | undefined,
    ): void => {
      if (!s) return;
      const incomplete = s.complete === false;
      add(scenario, `${label}: p50 lateness (ms)`, s.p50Ms, 'lower', { incomplete });
      add(scenario, `${label}: p99 lateness (ms)`, s.p99Ms, 'lower', { incomplete });
      add(scenario, `${label}: max lateness (ms)`, s.maxMs, 'lower', { incomplete });
      if (s.timeline) {
        const worst = worstBucket(s.timeline);
        const width =
          s.timeline.bucketMs % 1000 === 0
            ? `${s.timeline.bucketMs / 1000} s`
            : `${s.timeline.bucketMs} ms`;
        add(scenario, `${label}: worst ${width} bucket p99 (ms)`, worst?.p99Ms, 'lower', {
          incomplete,
        });
      }
    };
    const tp = r.throughput;
    add('1 throughput', 'bulk add (msg/s)', tp?.bulkPerSec, 'higher');
    add('1 throughput', 'single add (msg/s)', tp?.singlePerSec, 'higher');
    add('1 throughput', 'single add (gRPC) (msg/s)', tp?.singleGrpcPerSec, 'higher');
    if (r.steady) lateness('2 steady', `${int.format(r.steady.rate)}/s`, r.steady);
    if (r.peak && 'rate' in r.peak)
      lateness('2 steady', `peak ${int.format(r.peak.rate)}/s`, r.peak);
    const b = r.burst;
    if (b) {
      const label = `burst of ${int.format(b.messages)}`;
      add(
        '3 burst',
        `${label}: all delivered after (s)`,
        b.complete ? b.allDeliveredAfterMs / 1000 : undefined,
        'lower',
        { decimals: 2 },
      );
      add('3 burst', `${label}: p99 lateness (ms)`, b.p99Ms, 'lower', { incomplete: !b.complete });
    }
    const m = r.memory;
    if (m) {
      add(
        '4 memory',
        `${int.format(m.held)} held: RSS delta per message (B)`,
        m.rssBytesPerMessage,
        'lower',
      );
      add(
        '4 memory',
        `${int.format(m.held)} held: live after GC per message (B)`,
        m.liveBytesPerMessage,
        'lower',
      );
    }
    const sc = r.scale;
    if (sc) {
      const label = `${int.format(sc.pending)} pending`;
      add('5 scale', `${label}: bulk add (msg/s)`, sc.throughput.bulkPerSec, 'higher');
      add('5 scale', `${label}: single add (msg/s)`, sc.throughput.singlePerSec, 'higher');
      lateness('5 scale', `${label}: ${int.format(sc.steady.rate)}/s`, sc.steady);
    }
    const c = r.callbacks;
    if (c) {
      lateness('6 callbacks', `${int.format(c.settings.rate)}/s alone`, c.alone);
      lateness(
        '6 callbacks',
        `${int.format(c.settings.rate)}/s with a hanging receiver`,
        c.withHanging,
      );
      add(
        '6 callbacks',
        'p99 difference with the hanging receiver (ms)',
        c.p99DifferenceMs,
        'lower',
      );
      if (c.burst) {
        const label = `burst of ${int.format(c.burst.messages)}`;
        add(
          '6 callbacks',
          `${label}: all delivered after (s)`,
          c.burst.complete ? c.burst.allDeliveredAfterMs / 1000 : undefined,
          'lower',
          { decimals: 2 },
        );
        add('6 callbacks', `${label}: p99 lateness (ms)`, c.burst.p99Ms, 'lower', {
          incomplete: !c.burst.complete,
        });
      }
    }
    const ing = r.ingest;
    if (ing) {
      lateness('7 ingest', `${int.format(ing.fired.rate)}/s firing while ingesting`, ing.fired);
      add(
        '7 ingest',
        `bulk rate achieved (msg/s, ${int.format(ing.ingest.targetPerSec)} targeted)`,
        ing.ingest.achievedPerSec,
        'higher',
      );
    }
  }
  if (finite(report.peakRate))
    out.set('\u0000run\u0000peak', {
      system: 'Hourglass',
      variant: 'single node',
      scenario: '2 steady',
      figure: 'highest sustained rate (msg/s)',
      value: report.peakRate,
      better: 'higher',
      decimals: 0,
    });
  return out;
}

function readReport(path: string): { file: string; report: RunReport } {
  const file = existsSync(path) && statSync(path).isDirectory() ? join(path, 'results.json') : path;
  if (!existsSync(file))
    throw new Error(`${file}: no such file (give a results folder or its results.json)`);
  const report = JSON.parse(readFileSync(file, 'utf8')) as RunReport;
  if (!Array.isArray(report.results))
    throw new Error(`${file}: not a bench results.json (no "results")`);
  return { file, report };
}

function describe(label: string, file: string, report: RunReport): string {
  const m = report.machine;
  const load = m.loadAverageStart
    ? `, load ${m.loadAverageStart.join(' / ')}${m.loadAverageEnd ? ` → ${m.loadAverageEnd.join(' / ')}` : ''}`
    : '';
  return `- **${label}**: \`${file}\` (${report.mode}, ${report.startedAt}, ${m.cpus} cores, node ${m.node}${load})`;
}

function cell(figure: Figure): string {
  const text = new Intl.NumberFormat('en-US', {
    minimumFractionDigits: figure.decimals,
    maximumFractionDigits: figure.decimals,
  }).format(figure.value);
  return figure.incomplete ? `${text} (incomplete)` : text;
}

function ratio(a: number, b: number): string {
  if (a === 0) return b === 0 ? '1.00×' : '—';
  return `${(b / a).toFixed(2)}×`;
}

/** The comparison as markdown lines: B against A. */
export function renderComparison(
  a: { file: string; report: RunReport },
  b: { file: string; report: RunReport },
): string[] {
  const figuresA = flatten(a.report);
  const figuresB = flatten(b.report);
  const lines = [
    'Bench comparison (B against A; B/A > 1 means B is higher, whether that is better says the last column):',
    '',
    describe('A', a.file, a.report),
    describe('B', b.file, b.report),
    '',
    '| system | variant | scenario | figure | A | B | B/A | better |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  let both = 0;
  for (const [key, fa] of figuresA) {
    const fb = figuresB.get(key);
    if (!fb) continue;
    both++;
    lines.push(
      `| ${fa.system} | ${fa.variant} | ${fa.scenario} | ${fa.figure} | ${cell(fa)} | ${cell(fb)} | ${ratio(fa.value, fb.value)} | ${fa.better} |`,
    );
  }
  if (both === 0) lines.push('| (no figure in both) | | | | | | | |');
  const onlyA = [...figuresA.keys()].filter((key) => !figuresB.has(key)).length;
  const onlyB = [...figuresB.keys()].filter((key) => !figuresA.has(key)).length;
  if (onlyA + onlyB > 0)
    lines.push(
      '',
      `${both} figures in both; left out: ${onlyA} only in A, ${onlyB} only in B (other systems, scenarios or rates).`,
    );
  return lines;
}

/** Prints the comparison of `pathB` against `pathA` on stdout; the exit status. */
export function compareResults(pathA: string, pathB: string | undefined): number {
  if (pathB === undefined) {
    process.stderr.write(
      'bench: --compare takes two results (folders or results.json): --compare A B\n',
    );
    return 2;
  }
  try {
    process.stdout.write(`${renderComparison(readReport(pathA), readReport(pathB)).join('\n')}\n`);
    return 0;
  } catch (error) {
    process.stderr.write(
      `bench: --compare: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    return 2;
  }
}

if (require.main === module) {
  // Run directly (scripts/bench/run does for --compare): `compare.ts A B` or `compare.ts --compare A B`.
  const paths = process.argv.slice(2).filter((arg) => arg !== '--compare');
  process.exitCode = compareResults(paths[0] ?? '', paths[1]);
}

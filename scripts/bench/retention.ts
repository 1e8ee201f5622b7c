/**
 * Scenario 8, retention (issue 14): `npm run bench -- --scenarios retention` (10 million rows with
 * `--scale`, 1 million otherwise, 20,000 with `--quick`), or on its own:
 *
 *   node --require tsx/cjs scripts/bench/retention.ts [ROWS=10000000] [STEADY_SECONDS=30]
 *
 * On a fresh Hourglass single node (its own process, like the bench's), with the retention job
 * running every second (`archive.scheduler: '* * * * * *'`, the default batch and pause unless
 * RETENTION_BENCH_ARCHIVE gives other archive settings as JSON):
 * 1. fills `messages` with ROWS delivered rows finished 10 days ago, one server-side
 *    INSERT … SELECT generate_series per million rows (the app's retention override is 365 days,
 *    so nothing is due yet);
 * 2. times `GET /v1/admin/stats` with ROWS finished rows in the table;
 * 3. runs a steady 2,000 msg/s firing for STEADY_SECONDS without retention work (the baseline);
 * 4. schedules the same steady firing again, then lowers the app's delivered retention to 1 day
 *    (`PATCH /v1/admin/apps/bench`), so the job starts removing the ROWS rows while the messages
 *    fire; it times the stats endpoint every 250 ms meanwhile and waits until every filled row
 *    is gone.
 * On its own it prints a table and writes bench-results/<timestamp>-retention/results.json; in
 * `npm run bench` the result goes into the run's results and table.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { Progress, percentile, sleep } from './common';
import { HourglassSystem, scrapeMetrics } from './hourglass';
import { awaitSteady, scheduleSteady, steady } from './scenarios';
import type { SteadyResult } from './scenarios';

const DAY_MS = 86_400_000;
const ADMIN_TOKEN = 'admin-token';
const RATE = 2000;
/** A conservative bulk rate: it only sizes how far ahead the steady messages are scheduled. */
const BULK_PER_SEC = 5000;
const GRACE_MS = 10_000;

async function timedStats(url: string): Promise<number> {
  const started = performance.now();
  const response = await fetch(`${url}/v1/admin/stats`, {
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  await response.text();
  if (response.status !== 200) throw new Error(`stats: HTTP ${response.status}`);
  return performance.now() - started;
}

async function setDeliveredRetention(url: string, days: number): Promise<void> {
  const response = await fetch(`${url}/v1/admin/apps/bench`, {
    method: 'PATCH',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ retention: { deliveredDays: days } }),
  });
  if (response.status !== 200)
    throw new Error(`PATCH retention: HTTP ${response.status} ${await response.text()}`);
}

function summary(samples: number[]): { n: number; p50Ms: number; p99Ms: number; maxMs: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    n: sorted.length,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    maxMs: sorted[sorted.length - 1] ?? Number.NaN,
  };
}

export interface RetentionBenchResult {
  /** Every figure of the run (results.json). */
  readonly result: Record<string, unknown>;
  /** The figures as a Markdown table. */
  readonly table: string;
}

/** Fills `rows` finished rows, then measures removal, stats and firing as described above. */
export async function benchRetention(
  rows: number,
  steadySeconds: number,
  archiveOverrides: Record<string, unknown> = {},
): Promise<RetentionBenchResult> {
  const archive = { scheduler: '* * * * * *', ...archiveOverrides };
  const system = new HourglassSystem({ nodes: 1, config: { archive } });
  await system.start();
  const url = system.nodeUrls[0]!;
  const client = new pg.Client({ connectionString: system.connectionString });
  await client.connect();
  try {
    await setDeliveredRetention(url, 365);
    const finishedAt = Date.now() - 10 * DAY_MS;
    const fillStarted = performance.now();
    const progress = new Progress('fill finished rows', rows);
    for (let from = 0; from < rows; from += 1_000_000) {
      const to = Math.min(rows, from + 1_000_000);
      await client.query(
        `INSERT INTO messages (app, id, slot, topic, payload, payload_encoding, deliver_at, state,
                               finished_at, attempts, fingerprint)
         SELECT 'bench', 'old-' || g, g % 256, 'bench.old', '\\x7b226e223a317d'::bytea, 0,
                $3::bigint, 2, $3::bigint + (g % 1000), 1, 'bench'
         FROM generate_series($1::bigint, $2::bigint - 1) AS g`,
        [from, to, finishedAt],
      );
      progress.update(to);
    }
    progress.finish();
    await client.query('ANALYZE messages');
    const fillSeconds = (performance.now() - fillStarted) / 1000;

    const statsFull: number[] = [];
    for (let i = 0; i < 30; i++) statsFull.push(await timedStats(url));

    process.stderr.write('baseline: steady firing without retention work\n');
    const baseline: SteadyResult = await steady(
      system,
      RATE,
      steadySeconds,
      BULK_PER_SEC,
      GRACE_MS,
    );

    process.stderr.write('retention: steady firing while the job removes the filled rows\n');
    const scheduled = await scheduleSteady(system, RATE, steadySeconds, BULK_PER_SEC);
    const removedBefore =
      (await scrapeMetrics(url)).get('hourglass_retention_removed_total{state="delivered"}') ?? 0;
    const removalStarted = performance.now();
    await setDeliveredRetention(url, 1);
    const statsDuring: number[] = [];
    let removalSeconds = Number.NaN;
    const removal = (async () => {
      const deadline = Date.now() + 3_600_000;
      while (Date.now() < deadline) {
        statsDuring.push(await timedStats(url));
        const { rows: left } = await client.query<{ n: string }>(
          `SELECT count(*) AS n FROM (SELECT 1 FROM messages WHERE app = 'bench' AND state = 2
                                      AND finished_at < $1 LIMIT 1) x`,
          [finishedAt + 1000],
        );
        if (Number(left[0]?.n ?? 1) === 0) {
          removalSeconds = (performance.now() - removalStarted) / 1000;
          return;
        }
        await sleep(250);
      }
    })();
    const during = await awaitSteady(scheduled, GRACE_MS);
    await removal;
    const removed =
      ((await scrapeMetrics(url)).get('hourglass_retention_removed_total{state="delivered"}') ??
        0) - removedBefore;
    const statsAfter: number[] = [];
    for (let i = 0; i < 30; i++) statsAfter.push(await timedStats(url));

    const result = {
      archive,
      rows,
      fillSeconds,
      removed,
      removalSeconds,
      removedPerSec: removed / removalSeconds,
      statsWithFullTable: summary(statsFull),
      statsDuringRemoval: summary(statsDuring),
      statsAfter: summary(statsAfter),
      steadyBaseline: { p50Ms: baseline.p50Ms, p99Ms: baseline.p99Ms, complete: baseline.complete },
      steadyDuringRemoval: { p50Ms: during.p50Ms, p99Ms: during.p99Ms, complete: during.complete },
      note: `steady ${RATE}/s for ${steadySeconds} s; removal overlapped the steady run for its first ${Math.min(steadySeconds, removalSeconds).toFixed(0)} s`,
    };
    const f = (n: number): string => n.toFixed(1);
    const table = [
      `| figure | value |`,
      `| --- | --- |`,
      `| finished rows filled | ${rows.toLocaleString('en')} in ${f(fillSeconds)} s |`,
      `| removal by the job (${JSON.stringify(archive)}) | ${removed.toLocaleString('en')} rows in ${f(removalSeconds)} s = ${Math.round(result.removedPerSec).toLocaleString('en')} rows/s |`,
      `| GET /v1/admin/stats with ${rows.toLocaleString('en')} rows, p50 / p99 / max | ${f(result.statsWithFullTable.p50Ms)} / ${f(result.statsWithFullTable.p99Ms)} / ${f(result.statsWithFullTable.maxMs)} ms |`,
      `| … during removal (${result.statsDuringRemoval.n} calls) | ${f(result.statsDuringRemoval.p50Ms)} / ${f(result.statsDuringRemoval.p99Ms)} / ${f(result.statsDuringRemoval.maxMs)} ms |`,
      `| steady ${RATE}/s lateness p50 / p99, no retention work | ${f(baseline.p50Ms)} / ${f(baseline.p99Ms)} ms${baseline.complete ? '' : ' (INCOMPLETE)'} |`,
      `| … while the job removes | ${f(during.p50Ms)} / ${f(during.p99Ms)} ms${during.complete ? '' : ' (INCOMPLETE)'} |`,
    ].join('\n');
    return { result, table: `${table}\n\n${result.note}` };
  } finally {
    await client.end().catch(() => undefined);
    await system.stop();
  }
}

async function main(): Promise<void> {
  const rows = Number(process.argv[2] ?? 10_000_000);
  const steadySeconds = Number(process.argv[3] ?? 30);
  // RETENTION_BENCH_ARCHIVE='{"pauseMs":10}' tries other archive settings.
  const overrides = JSON.parse(process.env.RETENTION_BENCH_ARCHIVE ?? '{}') as Record<
    string,
    unknown
  >;
  const { result, table } = await benchRetention(rows, steadySeconds, overrides);
  const dir = resolve(
    __dirname,
    '../../bench-results',
    `${new Date().toISOString().replace(/[:.]/g, '-')}-retention`,
  );
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'results.json'), `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(join(dir, 'table.md'), `${table}\n`);
  process.stdout.write(`\n${table}\nwrote ${dir}\n`);
}

if (require.main === module)
  main().catch((error: unknown) => {
    process.stderr.write(
      `retention bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exitCode = 1;
  });

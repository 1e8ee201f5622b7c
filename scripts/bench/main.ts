/**
 * `npm run bench` (scripts/bench/run): Hourglass against BullMQ, pg-boss and graphile-worker on
 * this machine, scenario by scenario (issue 5). See scripts/bench/README.md.
 *
 *   npm run bench                    full run, scenarios 1–4, 6 and 7
 *   npm run bench -- --quick         tiny counts, about 2 minutes; exits 1 if any scenario errors
 *   npm run bench -- --scale         adds scenario 5 (10 million pending; long)
 *   npm run bench -- --scenarios callbacks   only scenario 6 (HTTP callbacks, single node)
 *   npm run bench -- --scenarios ingest      only scenario 7 (firing while ingesting)
 *   npm run bench -- --scenarios retention   only scenario 8 (retention while firing)
 *   npm run bench -- --only hourglass,bullmq-tuned --profile
 *   npm run bench -- --compare bench-results/A bench-results/B   B against A (compare.ts)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import type { BenchSystem } from './common';
import { errorText, log } from './common';
import { compareResults } from './compare';
import { HourglassSystem } from './hourglass';
import { summarizeProfiles } from './profile';
import type { RunReport, SystemResult } from './report';
import { renderTable } from './report';
import { renderChart } from './chart';
import { scale } from './scale';
import { burst, memory, setTiming, steady, throughput } from './scenarios';
import { benchRetention } from './retention';
import type { SteadyResult } from './scenarios';
import { SUSTAINED_P99_MS, benchOptions } from './settings';
import { benchCallbacks, runIngest } from './single-node';
import type { Entry } from './systems';
import { selectEntries, startSystem, stopSystem, systemEntries } from './systems';
import { renderTimelineChart } from './timeline';

const options = benchOptions(process.argv.slice(2));
const { args, positionals, quick, settings, scenarios, resultsDir, profileDir } = options;
const entries = systemEntries(args.profile ? profileDir : undefined);
const selected = selectEntries(entries, args.only);

function sustained(result: SteadyResult): boolean {
  return result.complete && result.p99Ms <= SUSTAINED_P99_MS && result.scheduledAheadMs >= 0;
}

/** Whether scenario 7 ran (or was tried) on the single node of scenarios 1–3. */
let ingestRan = false;

const report: RunReport = {
  startedAt: new Date().toISOString(),
  finishedAt: '',
  mode: quick ? 'quick' : 'full',
  machine: {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    platform: process.platform,
    loadAverageStart: loadavg().map((load) => Math.round(load * 100) / 100),
  },
  settings: { ...settings, scenarios: [...scenarios], sustainedP99Ms: SUSTAINED_P99_MS },
  peakSearch: [],
  peakRate: null,
  results: [],
};

/**
 * Runs scenarios 1–3 on one system, restarting it after an incomplete scenario so its leftovers
 * do not load the next one.
 */
async function benchSystem(entry: Entry): Promise<SystemResult> {
  let system: BenchSystem;
  const probe = entry.make();
  const result: SystemResult = {
    system: probe.system,
    variant: probe.variant,
    durability: '',
    status: 'ok',
    errors: [],
  };
  log(`── ${result.system} ${result.variant}`);
  try {
    system = await startSystem(entry.make);
  } catch (error) {
    const text = errorText(error);
    result.status = text.startsWith('not available') ? 'n/a' : 'error';
    if (result.status === 'n/a') result.note = text;
    else result.errors.push(`setup: ${text}`);
    log(`${result.system} ${result.variant}: ${text}`);
    return result;
  }
  result.durability = system.durability;
  const attempt = async <T>(name: string, work: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await work();
    } catch (error) {
      result.status = 'error';
      result.errors.push(`${name}: ${errorText(error)}`);
      log(`${result.system} ${result.variant} ${name} failed: ${errorText(error)}`);
      return undefined;
    }
  };
  const restart = async (): Promise<void> => {
    await stopSystem(system);
    system = await startSystem(entry.make);
  };
  try {
    let bulkRate = 5000;
    if (scenarios.has(1)) {
      result.throughput = await attempt('throughput', () =>
        throughput(system, settings.bulkCount, settings.singleCount),
      );
      bulkRate = result.throughput?.bulkPerSec ?? bulkRate;
    }
    if (scenarios.has(2)) {
      if (settings.warmupSeconds > 0) {
        const warm = await attempt('warm-up', () =>
          steady(
            system,
            settings.steadyRate,
            settings.warmupSeconds,
            bulkRate,
            settings.steadyGraceMs,
          ),
        );
        if (warm && !warm.complete) await restart();
      }
      result.steady = await attempt('steady', () =>
        steady(
          system,
          settings.steadyRate,
          settings.steadySeconds,
          bulkRate,
          settings.steadyGraceMs,
        ),
      );
      if (result.steady && !result.steady.complete) await restart();
      if (entry.key === 'hourglass' && settings.peakRates.length > 0)
        await findPeak(system, bulkRate);
      if (report.peakRate !== null) {
        const steadyResult = result.steady;
        if (!steadyResult || !steadyResult.complete || steadyResult.p99Ms > 5000) {
          result.peak = { skipped: `did not keep up with ${settings.steadyRate}/s` };
        } else {
          const peakRate = report.peakRate;
          result.peak = await attempt('peak', () =>
            steady(system, peakRate, settings.steadySeconds, bulkRate, settings.steadyGraceMs),
          );
          if (result.peak && 'complete' in result.peak && !result.peak.complete) await restart();
        }
      }
    }
    if (scenarios.has(3)) {
      const stagesBefore =
        system instanceof HourglassSystem ? await system.fireStages() : undefined;
      result.burst = await attempt('burst', () =>
        burst(system, settings.burstCount, bulkRate, settings.burstTimeoutMs),
      );
      if (stagesBefore && system instanceof HourglassSystem) {
        const after = await system.fireStages();
        result.burstStages = Object.fromEntries(
          Object.entries(after).map(([stage, total]) => {
            const before = stagesBefore[stage] ?? { calls: 0, messages: 0, seconds: 0 };
            return [
              stage,
              {
                calls: total.calls - before.calls,
                messages: total.messages - before.messages,
                seconds: total.seconds - before.seconds,
              },
            ];
          }),
        );
      }
      if (result.burst && !result.burst.complete) await restart();
    }
    if (scenarios.has(7) && entry.key === 'hourglass') {
      ingestRan = true;
      // Last on this node: the bulk it accepts (due a day ahead) stays in its table.
      await runIngest(options, system, result, bulkRate, !scenarios.has(2));
    }
  } catch (error) {
    result.status = 'error';
    result.errors.push(errorText(error));
  } finally {
    await stopSystem(system);
  }
  return result;
}

/** Tries the candidate rates on Hourglass (shorter runs) and keeps the highest it sustains. */
async function findPeak(system: BenchSystem, bulkRate: number): Promise<void> {
  for (const rate of settings.peakRates) {
    log(`peak search: ${rate}/s for ${settings.peakSearchSeconds} s`);
    const r = await steady(
      system,
      rate,
      settings.peakSearchSeconds,
      bulkRate,
      settings.steadyGraceMs,
    );
    const ok = sustained(r);
    report.peakSearch.push({ rate, sustained: ok, p99Ms: r.p99Ms, complete: r.complete });
    if (ok) report.peakRate = rate;
    else break;
  }
}

async function main(): Promise<void> {
  mkdirSync(resultsDir, { recursive: true });
  if (quick) setTiming({ leadBaseMs: 1500, settleMs: 2000 });
  setTiming({ timelineBucketMs: settings.timelineBucketMs });
  const started = Date.now();
  log(
    `${quick ? 'quick' : 'full'} run of ${selected.map((e) => e.key).join(', ')}; scenarios ${[...scenarios].join(',')}; results in ${resultsDir}`,
  );

  const hourglass = selected.find((e) => e.key === 'hourglass') ?? entries[0]!;
  // Hourglass single first: the peak rate it finds is the rate every other system runs at too.
  const ordered = [...selected].sort((a, b) =>
    a.key === 'hourglass' ? -1 : b.key === 'hourglass' ? 1 : 0,
  );
  if ([1, 2, 3].some((s) => scenarios.has(s))) {
    for (const entry of ordered) report.results.push(await benchSystem(entry));
  }

  const single = (): SystemResult => {
    let r = report.results.find((x) => x.system === 'Hourglass' && x.variant === 'single node');
    if (!r) {
      r = { system: 'Hourglass', variant: 'single node', durability: '', status: 'ok', errors: [] };
      report.results.unshift(r);
    }
    return r;
  };
  const bulkRate = single().throughput?.bulkPerSec ?? 10_000;
  if (scenarios.has(7) && !ingestRan) {
    // The single node was not among the systems of scenarios 1–3: a fresh one.
    const r = single();
    try {
      const system = (await startSystem(hourglass.make)) as HourglassSystem;
      r.durability ||= system.durability;
      try {
        await runIngest(options, system, r, bulkRate, true);
      } finally {
        await stopSystem(system);
      }
    } catch (error) {
      r.status = 'error';
      r.errors.push(`ingest: ${errorText(error)}`);
    }
  }
  if (scenarios.has(4)) {
    log('── memory (Hourglass single node, fresh)');
    const r = single();
    try {
      const system = (await startSystem(hourglass.make)) as HourglassSystem;
      r.durability ||= system.durability;
      try {
        r.memory = await memory(system, settings.memoryCount, bulkRate);
      } finally {
        await stopSystem(system);
      }
    } catch (error) {
      r.status = 'error';
      r.errors.push(`memory: ${errorText(error)}`);
    }
  }
  if (scenarios.has(5)) {
    log(`── scale (Hourglass single node, ${settings.scaleCount} pending)`);
    const r = single();
    try {
      const system = (await startSystem(hourglass.make)) as HourglassSystem;
      try {
        r.scale = await scale(
          system,
          settings.scaleCount,
          { bulk: settings.bulkCount, single: settings.singleCount },
          quick ? 1 : 30,
          settings.steadyGraceMs,
        );
      } finally {
        await stopSystem(system);
      }
    } catch (error) {
      r.status = 'error';
      r.errors.push(`scale: ${errorText(error)}`);
    }
  }
  if (scenarios.has(6))
    await benchCallbacks(options, single(), single().throughput?.bulkPerSec ?? 5000);
  if (scenarios.has(8)) {
    log(`── retention (Hourglass single node, ${settings.retentionRows} finished rows)`);
    const r = single();
    try {
      r.retention = await benchRetention(settings.retentionRows, settings.steadySeconds);
    } catch (error) {
      r.status = 'error';
      r.errors.push(`retention: ${errorText(error)}`);
    }
  }

  report.finishedAt = new Date().toISOString();
  report.machine.loadAverageEnd = loadavg().map((load) => Math.round(load * 100) / 100);
  const table = renderTable(report);
  writeFileSync(join(resultsDir, 'results.json'), `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(join(resultsDir, 'table.md'), `${table}\n`);
  writeFileSync(join(resultsDir, 'chart.svg'), renderChart(report));
  writeFileSync(join(resultsDir, 'lateness-over-time.svg'), renderTimelineChart(report));
  if (args.profile) {
    const summary = summarizeProfiles(profileDir);
    writeFileSync(join(resultsDir, 'profile.txt'), summary);
    process.stderr.write(`\n${summary}\n`);
  }
  process.stdout.write(`\n${table}\n\n`);
  const seconds = ((Date.now() - started) / 1000).toFixed(0);
  log(
    `done in ${seconds} s; wrote ${join(resultsDir, 'results.json')}, table.md, chart.svg, lateness-over-time.svg`,
  );
  const errors = report.results.filter((r) => r.status === 'error');
  if (errors.length > 0) {
    log(
      `scenarios with errors: ${errors.map((r) => `${r.system} ${r.variant}: ${r.errors.join('; ')}`).join(' | ')}`,
    );
    process.exitCode = 1;
  }
}

if (args.compare !== undefined) {
  // Reads two results.json and prints the comparison; starts nothing.
  process.exitCode = compareResults(args.compare, positionals[0]);
} else {
  main()
    .catch((error: unknown) => {
      process.stderr.write(
        `bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
      );
      process.exitCode = 1;
    })
    .finally(() => {
      // Clients of finished systems can leave sockets behind; nothing is running any more.
      setTimeout(() => process.exit(), 500).unref();
    });
}

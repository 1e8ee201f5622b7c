/**
 * The bench's command line (scripts/bench/README.md): every count of the run, the scenarios it
 * runs, where its results go. `--quick` shrinks the counts so the whole run takes about two
 * minutes (what CI runs).
 */
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

/** Scenario names `--scenarios` takes besides their numbers. */
export const SCENARIO_NAMES: Record<string, number> = {
  throughput: 1,
  steady: 2,
  burst: 3,
  memory: 4,
  scale: 5,
  callbacks: 6,
  ingest: 7,
  retention: 8,
};
const LAST_SCENARIO = 8;

/** The steady run at the peak rate counts as sustained under this p99. */
export const SUSTAINED_P99_MS = 100;

export function benchOptions(argv: readonly string[]) {
  const { values: args, positionals } = parseArgs({
    args: [...argv],
    // Only `--compare A B` takes a second, positional path.
    allowPositionals: true,
    options: {
      quick: { type: 'boolean', default: false },
      scale: { type: 'boolean', default: false },
      only: { type: 'string' },
      scenarios: { type: 'string' },
      seconds: { type: 'string' },
      bulk: { type: 'string' },
      single: { type: 'string' },
      rates: { type: 'string' },
      'peak-seconds': { type: 'string' },
      warmup: { type: 'string' },
      burst: { type: 'string' },
      'burst-timeout': { type: 'string' },
      'memory-count': { type: 'string' },
      'scale-count': { type: 'string' },
      'callback-rate': { type: 'string' },
      'callback-seconds': { type: 'string' },
      'callback-hanging-rate': { type: 'string' },
      'callback-burst': { type: 'string' },
      'ingest-rate': { type: 'string' },
      'ingest-fire-rate': { type: 'string' },
      'ingest-seconds': { type: 'string' },
      'retention-rows': { type: 'string' },
      'bucket-ms': { type: 'string' },
      profile: { type: 'boolean', default: false },
      out: { type: 'string' },
      compare: { type: 'string' },
    },
  });
  if (args.compare === undefined && positionals.length > 0)
    throw new Error(`unexpected argument "${positionals[0]}" (only --compare A B takes two)`);

  const quick = args.quick === true;
  const steadySeconds = Number(args.seconds ?? (quick ? 1 : 60));
  /** Every count of the run; `--quick` shrinks them so the whole run takes about two minutes. */
  const settings = {
    bulkCount: Number(args.bulk ?? (quick ? 2000 : 100_000)),
    singleCount: Number(args.single ?? (quick ? 200 : 10_000)),
    steadyRate: 2000,
    steadySeconds,
    steadyGraceMs: quick ? 5000 : 30_000,
    /**
     * An unmeasured run at the steady rate before scenario 2, for every system alike: JIT, pools
     * and producer/consumer connections warm up, so the first measured seconds are not a cold start.
     */
    warmupSeconds: Number(args.warmup ?? (quick ? 1 : 5)),
    peakRates: quick ? [] : (args.rates ?? '5000,10000,20000').split(',').map(Number),
    peakSearchSeconds: Number(args['peak-seconds'] ?? 20),
    burstCount: Number(args.burst ?? (quick ? 2000 : 200_000)),
    burstTimeoutMs: Number(args['burst-timeout'] ?? (quick ? 8 : 120)) * 1000,
    memoryCount: Number(args['memory-count'] ?? (quick ? 20_000 : 1_000_000)),
    scaleCount: Number(args['scale-count'] ?? (quick ? 200_000 : 10_000_000)),
    /** Scenario 6, HTTP callbacks: the steady rate to the quick receiver, and for how long. */
    callbackRate: Number(args['callback-rate'] ?? (quick ? 200 : 2000)),
    callbackSeconds: Number(args['callback-seconds'] ?? args.seconds ?? (quick ? 1 : 60)),
    /** Callbacks per second to the receiver that never answers (5 % of the steady rate). */
    callbackHangingRate: Number(args['callback-hanging-rate'] ?? (quick ? 10 : 100)),
    callbackHangingTimeoutMs: 2000,
    callbackBurstCount: Number(args['callback-burst'] ?? args.burst ?? (quick ? 2000 : 200_000)),
    /** Scenario 7, firing while ingesting: the due rate, for how long, and the bulk rate meanwhile. */
    ingestFireRate: Number(args['ingest-fire-rate'] ?? (quick ? 200 : 2000)),
    ingestSeconds: Number(args['ingest-seconds'] ?? steadySeconds),
    ingestRate: Number(args['ingest-rate'] ?? (quick ? 2000 : 20_000)),
    /**
     * Scenario 8, retention: finished rows the job removes while the steady rate fires (issue 14's
     * target is 10 million: `--scale`).
     */
    retentionRows: Number(
      args['retention-rows'] ?? (quick ? 20_000 : args.scale ? 10_000_000 : 1_000_000),
    ),
    /** Lateness-over-time bucket width (ms); 0: 1 s for runs of 10 s or more, else 250 ms. */
    timelineBucketMs: Number(args['bucket-ms'] ?? 0),
  };
  const scenarios = new Set(
    (args.scenarios ?? (args.scale ? '1,2,3,4,5,6,7,8' : '1,2,3,4,6,7,8'))
      .split(',')
      .map((name) => {
        const number = SCENARIO_NAMES[name.trim()] ?? Number(name);
        if (!Number.isInteger(number) || number < 1 || number > LAST_SCENARIO)
          throw new Error(
            `--scenarios: unknown scenario "${name}" (1–${LAST_SCENARIO} or ${Object.keys(SCENARIO_NAMES).join(', ')})`,
          );
        return number;
      }),
  );
  const resultsDir = resolve(
    args.out ?? join('bench-results', new Date().toISOString().replace(/[:.]/g, '-')),
  );
  return {
    args,
    positionals,
    quick,
    settings,
    scenarios,
    resultsDir,
    profileDir: join(resultsDir, 'profiles'),
  };
}

export type BenchOptions = ReturnType<typeof benchOptions>;

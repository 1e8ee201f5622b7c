/**
 * The suite's command line and the settings derived from it (scripts/chaos/README.md, "options").
 * Read once, when main.ts imports this module; bad usage exits 2 here.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { SetupError, errorText } from './common';
import { FAULT_NAMES } from './faults';
import type { FaultName, FaultTiming } from './faults';
import type { RowKind } from './judge';
import type { Via } from './load';
import { repoRoot } from './services';

/**
 * The retry of every callback message: every 500 ms, 100 attempts (the most allowed), so a
 * callback keeps being retried for 50 s, through any fault of the quick run and past the
 * receiver's own outage.
 */
export const CALLBACK_RETRY = {
  strategy: 'fixed',
  initialDelayMs: 500,
  maxAttempts: 100,
  jitter: false,
} as const;

function usage(code: number): never {
  process.stderr.write(
    'usage: npm run chaos -- [--quick] [--only kill,stop,kafka,postgres,etcd,receiver] [--rate N] [--callbacks-share 0-1] [--reschedule-share 0-1] [--schedules N]\n',
  );
  process.exit(code);
}

function bad(message: string): never {
  process.stderr.write(`chaos: ${message}\n`);
  usage(2);
}

function parseCommandLine() {
  try {
    return parseArgs({
      options: {
        quick: { type: 'boolean', default: false },
        only: { type: 'string' },
        rate: { type: 'string' },
        'callbacks-share': { type: 'string' },
        'reschedule-share': { type: 'string' },
        schedules: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }).values;
  } catch (error) {
    bad(errorText(error));
  }
}
const args = parseCommandLine();
if (args.help) usage(0);
export const quick = args.quick === true;

function share(name: 'callbacks-share' | 'reschedule-share', fallback: number): number {
  const value = Number(args[name] ?? fallback);
  if (!(value >= 0 && value <= 1)) bad(`--${name} wants a number from 0 to 1, got ${args[name]}`);
  return value;
}
export const callbackShare = share('callbacks-share', 0.5);
/** The share of the Kafka messages that are moved with a PATCH once acknowledged. */
export const rescheduleShare = share('reschedule-share', 0.2);
/** Recurring schedules (`every: 1s`) created when the load starts. */
export const scheduleCount = Number(args.schedules ?? 3);
if (!Number.isInteger(scheduleCount) || scheduleCount < 0 || scheduleCount > 20) {
  bad(`--schedules wants an integer 0-20, got ${args.schedules}`);
}

/** The ways of delivering the load uses. */
export const vias: Via[] = [
  ...(callbackShare < 1 ? (['kafka'] as const) : []),
  ...(callbackShare > 0 ? (['http'] as const) : []),
];
/** The kinds of message of the run, in the order of their rows within a window. */
export const kinds: RowKind[] = [
  ...(callbackShare < 1 ? (['kafka'] as const) : []),
  ...(callbackShare < 1 && rescheduleShare > 0 ? (['moved'] as const) : []),
  ...(scheduleCount > 0 ? (['recurring'] as const) : []),
  ...(callbackShare > 0 ? (['http'] as const) : []),
];

export const faults: FaultName[] = [];
// Without callbacks in the load, the receiver fault has nothing to act on; --quick leaves it out
// unless --only names it (its window adds 15 s to a run CI keeps under 3 minutes).
const defaultFaults = FAULT_NAMES.filter(
  (name) => name !== 'receiver' || (vias.includes('http') && !quick),
);
for (const name of (args.only ?? defaultFaults.join(',')).split(',').map((s) => s.trim())) {
  if (!(FAULT_NAMES as readonly string[]).includes(name)) {
    bad(`unknown fault '${name}' (expected ${FAULT_NAMES.join(', ')})`);
  }
  if (name === 'receiver' && !vias.includes('http')) {
    bad(`the receiver fault needs callbacks (--callbacks-share > 0)`);
  }
  if (!faults.includes(name as FaultName)) faults.push(name as FaultName);
}
faults.sort((a, b) => FAULT_NAMES.indexOf(a) - FAULT_NAMES.indexOf(b));
export const rate = Number(args.rate ?? (quick ? 40 : 200));
if (!Number.isInteger(rate) || rate < 1 || rate > 5000) {
  bad(`--rate wants an integer 1-5000, got ${args.rate}`);
}

/** cluster.leaseTtlSeconds of config/default.yaml: the nodes are given exactly that. */
function defaultLeaseTtl(): number {
  const config = parseYaml(readFileSync(resolve(repoRoot, 'config/default.yaml'), 'utf8')) as {
    cluster?: { leaseTtlSeconds?: number };
  };
  const ttl = config.cluster?.leaseTtlSeconds;
  if (typeof ttl !== 'number' || ttl <= 0)
    throw new SetupError('no cluster.leaseTtlSeconds in config/default.yaml');
  return ttl;
}

export const leaseTtlSeconds = defaultLeaseTtl();
export const timing: FaultTiming = {
  killDownMs: 5_000,
  stopMs: leaseTtlSeconds * 1000 + 3_000,
  outageMs: quick
    ? { kafka: 5_000, postgres: 5_000, etcd: 5_000 }
    : { kafka: 30_000, postgres: 15_000, etcd: 60_000 },
  receiverOutageMs: 5_000,
};
export const settings = {
  mode: quick ? 'quick' : 'full',
  faults,
  rate,
  callbackShare,
  rescheduleShare,
  schedules: scheduleCount,
  callbackRetry: CALLBACK_RETRY,
  /** The callbacks' timeout: the default (callbacks.defaultTimeoutMs), named. */
  callbackTimeoutMs: 10_000,
  nodes: 3,
  delayMs: [1_000, 4_000],
  warmupMs: quick ? 10_000 : 20_000,
  settleMs: quick ? 10_000 : 20_000,
  drainMs: 60_000,
  leaseTtlSeconds,
  timing,
  concurrency: 64,
  requestTimeoutMs: 5_000,
  giveUpMs: quick ? 60_000 : 120_000,
  /** The whole run is aborted (exit 3) after this long. */
  runTimeoutMs: quick ? 10 * 60_000 : 25 * 60_000,
};

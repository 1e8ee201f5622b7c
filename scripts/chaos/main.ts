/**
 * `npm run chaos` (scripts/chaos/run starts the suite's own services first): a 3-node cluster
 * under steady load from retrying clients, one fault after another, measured from outside (what
 * the clients were acknowledged, what a Kafka consumer and an HTTP callback receiver received).
 * See scripts/chaos/README.md.
 *
 *   npm run chaos                          the full run (≈ 7 minutes)
 *   npm run chaos -- --quick               short outages and lower load (≈ 3 minutes)
 *   npm run chaos -- --only kill,kafka --rate 100 --callbacks-share 0.25
 *
 * Exits 0 when every acknowledged message was received and none early; 1 on a missing or early
 * message; 2 on bad usage; 3 when a node or a service could not be started (or the run timed
 * out); 130/143 on SIGINT/SIGTERM.
 */
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import { parse as parseYaml } from 'yaml';
import { AbortedError, SetupError, errorText, log, sleep } from './common';
import { ADMIN_TOKEN, Cluster } from './cluster';
import { Recorder } from './consumer';
import { CallbackReceiver } from './receiver';
import type { CallbackReceipt } from './receiver';
import { FAULT_NAMES, runFault } from './faults';
import type { FaultName, FaultRecord, FaultTiming } from './faults';
import { LoadGenerator } from './load';
import type { SentMessage, Via } from './load';
import { analyse, messagesCsv, renderTable, windowsOf } from './report';
import type { Arrivals } from './report';
import { chaosServices, createRunTopic, freshDatabase, repoRoot } from './services';
import { collectEvidence, grantTopic } from './evidence';

const APP = 'demo';
const APP_TOKEN = 'demo-token';
const PARTITIONS = 4;
const KEEP_RUNS = 5;
/**
 * The retry of every callback message: every 500 ms, 100 attempts (the most allowed), so a
 * callback keeps being retried for 50 s, through any fault of the quick run and past the
 * receiver's own outage.
 */
const CALLBACK_RETRY = {
  strategy: 'fixed',
  initialDelayMs: 500,
  maxAttempts: 100,
  jitter: false,
} as const;

function usage(code: number): never {
  process.stderr.write(
    'usage: npm run chaos -- [--quick] [--only kill,stop,kafka,postgres,etcd,receiver] [--rate N] [--callbacks-share 0-1]\n',
  );
  process.exit(code);
}

let args;
try {
  args = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      rate: { type: 'string' },
      'callbacks-share': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  }).values;
} catch (error) {
  process.stderr.write(`chaos: ${errorText(error)}\n`);
  usage(2);
}
if (args.help) usage(0);
const quick = args.quick === true;
const callbackShare = Number(args['callbacks-share'] ?? 0.5);
if (!(callbackShare >= 0 && callbackShare <= 1)) {
  process.stderr.write(
    `chaos: --callbacks-share wants a number from 0 to 1, got ${args['callbacks-share']}\n`,
  );
  usage(2);
}
/** The ways of delivering the load uses, in the order of their rows in the table. */
const vias: Via[] = [
  ...(callbackShare < 1 ? (['kafka'] as const) : []),
  ...(callbackShare > 0 ? (['http'] as const) : []),
];
const faults: FaultName[] = [];
// Without callbacks in the load, the receiver fault has nothing to act on; --quick leaves it out
// unless --only names it (its window adds 15 s to a run CI keeps under 3 minutes).
const defaultFaults = FAULT_NAMES.filter(
  (name) => name !== 'receiver' || (vias.includes('http') && !quick),
);
for (const name of (args.only ?? defaultFaults.join(',')).split(',').map((s) => s.trim())) {
  if (!(FAULT_NAMES as readonly string[]).includes(name)) {
    process.stderr.write(`chaos: unknown fault '${name}' (expected ${FAULT_NAMES.join(', ')})\n`);
    usage(2);
  }
  if (name === 'receiver' && !vias.includes('http')) {
    process.stderr.write(`chaos: the receiver fault needs callbacks (--callbacks-share > 0)\n`);
    usage(2);
  }
  if (!faults.includes(name as FaultName)) faults.push(name as FaultName);
}
faults.sort((a, b) => FAULT_NAMES.indexOf(a) - FAULT_NAMES.indexOf(b));
const rate = Number(args.rate ?? (quick ? 40 : 200));
if (!Number.isInteger(rate) || rate < 1 || rate > 5000) {
  process.stderr.write(`chaos: --rate wants an integer 1-5000, got ${args.rate}\n`);
  usage(2);
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

const leaseTtlSeconds = defaultLeaseTtl();
const timing: FaultTiming = {
  killDownMs: 5_000,
  stopMs: leaseTtlSeconds * 1000 + 3_000,
  outageMs: quick
    ? { kafka: 5_000, postgres: 5_000, etcd: 5_000 }
    : { kafka: 30_000, postgres: 15_000, etcd: 60_000 },
  receiverOutageMs: 5_000,
};
const settings = {
  mode: quick ? 'quick' : 'full',
  faults,
  rate,
  callbackShare,
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

const abort = new AbortController();
let abortCode = 0;
let cluster: Cluster | undefined;
let load: LoadGenerator | undefined;
let recorder: Recorder | undefined;
let receiver: CallbackReceiver | undefined;

let firstSignalAt = 0;
function onSignal(signal: NodeJS.Signals, code: number): void {
  // Ctrl-C reaches the whole process group, and scripts/chaos/run then sends SIGTERM as well:
  // only a signal well after the first one means "exit now".
  if (firstSignalAt > 0 && Date.now() - firstSignalAt < 3_000) return;
  if (firstSignalAt > 0) {
    log(`${signal} again: killing the nodes and exiting`);
    for (const node of cluster?.nodes ?? []) node.signal('SIGKILL');
    receiver?.kill();
    process.exit(code);
  }
  firstSignalAt = Date.now();
  abortRun(code, `${signal}: stopping the load, the consumer and the nodes`);
}

function abortRun(code: number, why: string): void {
  log(why);
  abortCode = code;
  abort.abort();
  // Whatever is still awaited, the suite ends within a minute.
  setTimeout(() => {
    log('cleanup took over 60 s; killing the nodes');
    for (const node of cluster?.nodes ?? []) node.signal('SIGKILL');
    receiver?.kill();
    process.exit(code);
  }, 60_000).unref();
}
process.on('SIGINT', () => onSignal('SIGINT', 130));
process.on('SIGTERM', () => onSignal('SIGTERM', 143));
process.on('exit', () => {
  for (const node of cluster?.nodes ?? []) node.signal('SIGKILL');
  receiver?.kill();
});

function pruneRuns(runsDir: string): void {
  const runs = readdirSync(runsDir).sort();
  for (const old of runs.slice(0, Math.max(0, runs.length - KEEP_RUNS))) {
    rmSync(resolve(runsDir, old), { recursive: true, force: true });
  }
}

async function drain(
  loadGen: LoadGenerator,
  arrived: (message: SentMessage) => boolean,
): Promise<void> {
  loadGen.stopGenerating();
  log(`load stopped; waiting for the ${loadGen.inFlight} message(s) still being sent`);
  if (!(await loadGen.settle(settings.giveUpMs + 10_000))) await loadGen.cancel();
  const acked = [...loadGen.messages.values()].filter((m) => m.dueMs !== undefined);
  const lastDue = acked.reduce((max, m) => Math.max(max, m.dueMs ?? 0), Date.now());
  const deadline = lastDue + settings.drainMs;
  let outstanding = acked.filter((m) => !arrived(m));
  let lastLog = 0;
  while (outstanding.length > 0 && Date.now() < deadline) {
    if (Date.now() - lastLog > 5_000) {
      log(
        `waiting for ${outstanding.length} acknowledged message(s) to arrive (at most ${Math.ceil((deadline - Date.now()) / 1000)} s more)`,
      );
      lastLog = Date.now();
    }
    await sleep(250, abort.signal);
    outstanding = outstanding.filter((m) => !arrived(m));
  }
  // Duplicates produced late would still be on their way: a last short look.
  await sleep(2_000, abort.signal);
}

async function main(): Promise<number> {
  const runTimer = setTimeout(
    () =>
      abortRun(3, `the run took longer than ${settings.runTimeoutMs / 60_000} minutes; aborting`),
    settings.runTimeoutMs,
  );
  runTimer.unref();

  const services = await chaosServices();
  const runId =
    `${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '')}-${randomBytes(3).toString('hex')}`.toLowerCase();
  const runsDir = resolve(services.stateDir, 'runs');
  const runDir = resolve(runsDir, runId);
  mkdirSync(runDir, { recursive: true });
  pruneRuns(runsDir);
  log(
    `run ${runId} (${settings.mode}: ${faults.join(', ')} at ${rate} msg/s); services in ${services.stateDir}, logs in ${runDir}`,
  );

  const databaseUrl = await freshDatabase(services.postgres, runId.replace(/-/g, '_'));
  cluster = await Cluster.create(services, {
    nodes: settings.nodes,
    runId,
    runDir,
    databaseUrl,
    leaseTtlSeconds,
  });
  await cluster.start(abort.signal);
  const topic = `chaos.${runId}`;
  await createRunTopic(services.kafkaBrokers, topic, PARTITIONS);
  await grantTopic(cluster.urls, APP, topic, ADMIN_TOKEN);
  recorder = new Recorder(services.kafkaBrokers, topic, runId);
  await recorder.start(30_000);
  log(`topic ${topic} granted to app ${APP}; consumer joined`);
  // Started only when the load sends callbacks; `recv` is then the same, else undefined.
  const recv = vias.includes('http') ? new CallbackReceiver(`/chaos/${runId}`) : undefined;
  receiver = recv;
  if (recv) {
    await recv.start();
    log(
      `callback receiver on ${recv.url} (pid ${recv.pid}); ${Math.round(callbackShare * 100)} % of the load are callbacks to it`,
    );
  }

  load = new LoadGenerator(cluster.urls, APP_TOKEN, topic, runId, {
    rate,
    minDelayMs: settings.delayMs[0] ?? 1000,
    maxDelayMs: settings.delayMs[1] ?? 4000,
    concurrency: settings.concurrency,
    requestTimeoutMs: settings.requestTimeoutMs,
    giveUpMs: settings.giveUpMs,
    maxPending: rate * 100,
    callbackShare,
    callbackUrl: recv?.url ?? '',
    callbackRetry: CALLBACK_RETRY,
    callbackTimeoutMs: settings.callbackTimeoutMs,
  });
  const loadGen = load;
  const rec = recorder;
  const arrived = (m: SentMessage): boolean =>
    m.via === 'http' ? (recv?.delivered.has(m.id) ?? false) : rec.receipts.has(m.id);
  const arrivals: Arrivals = { kafka: rec.receipts, http: recv?.receipts ?? new Map() };
  const received = (): string =>
    `received ${rec.receipts.size} by Kafka${recv ? ` and ${recv.delivered.size} by callback` : ''}`;
  const loadStartedAt = Date.now();
  load.start();
  // This process's own stalls (load generator, consumer and receiver share its event loop) delay
  // its receive times; the progress lines show the longest of each 10 s.
  const loopDelay = monitorEventLoopDelay({ resolution: 20 });
  loopDelay.enable();
  let maxLoopDelayMs = 0;
  const progress = setInterval(() => {
    const acked = [...loadGen.messages.values()].filter((m) => m.ackedAt !== undefined).length;
    const stallMs = Math.round(loopDelay.max / 1e6);
    maxLoopDelayMs = Math.max(maxLoopDelayMs, stallMs);
    loopDelay.reset();
    log(
      `sent ${loadGen.messages.size}, acked ${acked}, ${received()}, sending ${loadGen.inFlight}; longest stall ${stallMs} ms`,
    );
  }, 10_000);
  const records: FaultRecord[] = [];
  try {
    log(`warm-up: ${settings.warmupMs / 1000} s of load without a fault`);
    await sleep(settings.warmupMs, abort.signal);
    // A cluster that delivers nothing at all (one way) is not worth putting through faults.
    const silent = (): Via[] =>
      vias.filter((via) => (via === 'http' ? recv?.delivered.size : rec.receipts.size) === 0);
    for (let waited = 0; silent().length > 0; waited += 500) {
      if (waited >= 20_000) {
        throw new SetupError(
          `nothing was delivered by ${silent().join(' or ')} during the warm-up (${loadGen.messages.size} sent, ${loadGen.rejections} rejected); see the node logs in ${runDir}`,
        );
      }
      await sleep(500, abort.signal);
    }
    for (const name of faults) {
      log(`fault ${name}: starting`);
      const record = await runFault(name, { cluster, receiver: recv, timing, abort: abort.signal });
      records.push(record);
      const settleUntil = Date.now() + settings.settleMs;
      try {
        const view = await cluster.waitBalanced(settings.settleMs, abort.signal);
        record.notes.push(
          `balanced ${((Date.now() - record.endedAt) / 1000).toFixed(1)} s after the end (${view})`,
        );
      } catch (error) {
        if (error instanceof AbortedError) throw error;
        record.notes.push(`not balanced within ${settings.settleMs / 1000} s of the end`);
      }
      const settleLeft = Math.max(0, Math.round((settleUntil - Date.now()) / 1000));
      log(`fault ${name}: over; settling ${settleLeft} s more`);
      await sleep(Math.max(0, settleUntil - Date.now()), abort.signal);
    }
    await drain(loadGen, arrived);
    await recv?.flush();
  } finally {
    clearInterval(progress);
    loopDelay.disable();
  }

  const windows = windowsOf(loadStartedAt, records);
  const findings = analyse(windows, loadGen.messages, arrivals, vias, loadStartedAt);
  const table = renderTable(findings.rows);
  const bad = findings.missingIds.length + findings.earlyIds.length;
  const bodyMismatchIds = [...(recv?.receipts ?? new Map<string, CallbackReceipt[]>())]
    .filter(([id, got]) => got.some((r) => r.bodyId !== id))
    .map(([id]) => id);
  const evidence =
    bad > 0 ? await collectEvidence(cluster, APP_TOKEN, findings, loadGen.messages, arrivals) : [];
  const report = {
    runId,
    startedAt: new Date(loadStartedAt).toISOString(),
    finishedAt: new Date().toISOString(),
    settings,
    services,
    nodes: cluster.nodes.map((n) => ({ name: n.name, url: n.url, log: n.logFile })),
    topic,
    callbackUrl: recv?.url ?? null,
    databaseUrl,
    totals: {
      generated: loadGen.messages.size,
      shed: loadGen.shed,
      acknowledged: findings.rows.reduce((sum, r) => sum + r.acknowledged, 0),
      receivedRecords: rec.received,
      receivedNotAcknowledged: findings.receivedNotAcknowledged,
      recordsWithoutId: rec.anonymous,
      callbackRequests: recv?.requests ?? 0,
      callbackRequestsRefused: recv?.refused ?? 0,
      callbackRequestsWithoutId: recv?.anonymous ?? 0,
      /** Callbacks whose body was not the payload sent with their id. */
      callbackBodyMismatches: bodyMismatchIds.length,
      byVia: findings.byVia,
      /** The longest stall of this process's event loop during the load (as in the progress lines). */
      maxEventLoopStallMs: maxLoopDelayMs,
    },
    rows: findings.rows,
    missingIds: findings.missingIds,
    earlyIds: findings.earlyIds,
    duplicateIds: findings.duplicateIds,
    /** Every receipt of the first 100 duplicated messages: which offsets or attempts, when. */
    duplicates: findings.duplicateIds.slice(0, 100).map((id) => {
      const via = loadGen.messages.get(id)?.via ?? 'kafka';
      return { id, via, receipts: arrivals[via].get(id) ?? [] };
    }),
    dueMismatchIds: findings.dueMismatchIds,
    bodyMismatchIds: bodyMismatchIds.slice(0, 100),
    evidence,
  };
  const json = JSON.stringify(report, null, 2);
  writeFileSync(resolve(runDir, 'result.json'), json);
  writeFileSync(resolve(runDir, 'table.md'), `${table}\n`);
  writeFileSync(resolve(runDir, 'messages.csv'), messagesCsv(loadGen.messages, arrivals));
  writeFileSync(resolve(services.stateDir, 'last-result.json'), json);
  process.stdout.write(`\n${table}\n\n`);
  const t = report.totals;
  const { kafka: k, http: h } = findings.byVia;
  process.stdout.write(
    `${t.generated} messages generated (${t.shed} shed), ${t.acknowledged} acknowledged` +
      (recv
        ? ` (${k.acknowledged} Kafka, ${h.acknowledged} HTTP callback), ${t.receivedRecords} records and ${t.callbackRequests} callback requests received (${t.callbackRequestsRefused} of them answered 503)`
        : `, ${t.receivedRecords} records received`) +
      `${t.receivedNotAcknowledged > 0 ? `, ${t.receivedNotAcknowledged} received but never acknowledged` : ''}` +
      `${findings.dueMismatchIds.length > 0 ? `, ${findings.dueMismatchIds.length} with a deliver-at header other than the acknowledged deliverAt` : ''}` +
      `${bodyMismatchIds.length > 0 ? `, ${bodyMismatchIds.length} callback(s) with a body other than the payload sent` : ''}.\n` +
      `Result: ${resolve(runDir, 'result.json')}; node logs: ${runDir}\n`,
  );
  const byWay = (pick: (f: typeof k) => number): string =>
    vias
      .map((via) => `${pick(findings.byVia[via])} ${via === 'http' ? 'HTTP' : 'Kafka'}`)
      .join(', ');
  if (bad > 0) {
    log(
      `FAILED: ${findings.missingIds.length} missing (${byWay((f) => f.missing)}), ${findings.earlyIds.length} early (${byWay((f) => f.early)}) (ids and GET /v1/messages/{id} of each in result.json)`,
    );
    return 1;
  }
  log(`ok: every acknowledged message was received (${byWay((f) => f.acknowledged)}), none early`);
  return 0;
}

async function run(): Promise<void> {
  let code: number;
  try {
    code = await main();
  } catch (error) {
    if (error instanceof AbortedError || abort.signal.aborted) {
      code = abortCode || 130;
      log(`aborted (${errorText(error)})`);
    } else {
      code = error instanceof SetupError ? 3 : 1;
      log(`error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    }
  }
  try {
    await load?.cancel();
    await cluster?.stop();
    await recorder?.stop();
    await receiver?.stop();
  } catch (error) {
    log(`cleanup: ${errorText(error)}`);
    code ||= 1;
  }
  log(`exit ${code}`);
  process.exit(code);
}

void run();

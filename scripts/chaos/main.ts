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
 * The load: Kafka messages, a share of them moved by a PATCH once acknowledged (reschedule.ts),
 * HTTP callbacks, and recurring schedules whose occurrences are judged like messages
 * (recurring.ts); options in settings.ts.
 *
 * Exits 0 when every acknowledged message (and every occurrence) was received and none early;
 * 1 on a missing or early one, a moved message delivered in a version it must not be, or a stray
 * occurrence; 2 on bad usage; 3 when a node or a service could not be started (or the run timed
 * out); 130/143 on SIGINT/SIGTERM. Duplicates are reported, never fatal (at-least-once delivery).
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import { AbortedError, SetupError, errorText, log, sleep } from './common';
import { ADMIN_TOKEN, Cluster } from './cluster';
import { Recorder } from './consumer';
import { CallbackReceiver } from './receiver';
import type { CallbackReceipt } from './receiver';
import { runFault } from './faults';
import type { FaultRecord } from './faults';
import type { RowKind } from './judge';
import { drain } from './drain';
import { LoadGenerator } from './load';
import type { SentMessage } from './load';
import { RecurringSchedules } from './recurring';
import { analyse, windowsOf } from './report';
import type { Arrivals, Totals } from './report';
import { chaosServices, createRunTopic, freshDatabase } from './services';
import { messagesCsv, renderTable } from './table';
import { collectEvidence, grantTopic } from './evidence';
import {
  CALLBACK_RETRY,
  callbackShare,
  faults,
  kinds,
  leaseTtlSeconds,
  rate,
  rescheduleShare,
  scheduleCount,
  settings,
  timing,
  vias,
} from './settings';

const APP = 'demo';
const APP_TOKEN = 'demo-token';
const PARTITIONS = 4;
const KEEP_RUNS = 5;

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
    rescheduleShare,
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
  const recurring =
    scheduleCount > 0
      ? new RecurringSchedules(loadGen.client, topic, runId, scheduleCount)
      : undefined;
  if (recurring) loadGen.track(recurring.create(settings.giveUpMs));
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
    const silent = (): string[] => kinds.flatMap((kind) => silence(kind));
    const silence = (kind: RowKind): string[] => {
      switch (kind) {
        case 'kafka':
          return rec.receipts.size === 0 ? ['nothing was delivered by Kafka'] : [];
        case 'http':
          return (recv?.delivered.size ?? 0) === 0 ? ['nothing was delivered by callback'] : [];
        case 'moved':
          return [...loadGen.messages.values()].some((m) => m.move?.outcome === 'moved')
            ? []
            : ['no PATCH of a message was acknowledged'];
        case 'recurring': {
          const missing = recurring?.unacknowledged ?? [];
          if (missing.length > 0) return [`schedules not created (${missing.join('; ')})`];
          return recurring?.occurrencesIn(rec.receipts)
            ? []
            : ['no occurrence of a schedule arrived'];
        }
      }
    };
    for (let waited = 0; silent().length > 0; waited += 500) {
      if (waited >= 20_000) {
        throw new SetupError(
          `during the warm-up: ${silent().join('; ')} (${loadGen.messages.size} sent, ${loadGen.rejections} rejected); see the node logs in ${runDir}`,
        );
      }
      await sleep(500, abort.signal);
    }
    // A node that exited by itself (the kill fault restarts its own) is noted in its window.
    const exited = new Set<string>();
    const noteExits = (record: FaultRecord | undefined): void => {
      for (const node of cluster?.nodes ?? []) {
        if (node.running || exited.has(node.name)) continue;
        exited.add(node.name);
        const note = `${node.name} exited by itself (code ${node.exitCode}), not restarted`;
        log(`${note}; see ${node.logFile}`);
        record?.notes.push(note);
      }
    };
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
      noteExits(record);
    }
    await drain(loadGen, arrived, (until) => recurring?.expected(until) ?? [], {
      giveUpMs: settings.giveUpMs,
      drainMs: settings.drainMs,
      abort: abort.signal,
    });
    noteExits(records.at(-1));
    await recv?.flush();
  } finally {
    clearInterval(progress);
    loopDelay.disable();
  }

  const windows = windowsOf(loadStartedAt, records);
  // The load's messages and, judged alike, the occurrences due before the load stopped.
  const messages = new Map(loadGen.messages);
  for (const m of recurring?.expected(loadGen.stoppedGeneratingAt ?? Date.now()) ?? [])
    messages.set(m.id, m);
  const findings = analyse(windows, messages.values(), arrivals, kinds, loadStartedAt);
  const strayIds = recurring?.strays(rec.receipts) ?? [];
  const table = renderTable(findings.rows);
  const bad =
    findings.missingIds.length +
    findings.earlyIds.length +
    findings.oldVersionIds.length +
    strayIds.length;
  const bodyMismatchIds = [...(recv?.receipts ?? new Map<string, CallbackReceipt[]>())]
    .filter(([id, got]) => got.some((r) => r.bodyId !== id))
    .map(([id]) => id);
  const evidence =
    bad > 0 ? await collectEvidence(cluster, APP_TOKEN, findings, messages, arrivals) : [];
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
      byKind: findings.byKind,
      /** Occurrence ids of the run's schedules that none of them has (fail the run). */
      strayOccurrences: strayIds.length,
      /** The longest stall of this process's event loop during the load (as in the progress lines). */
      maxEventLoopStallMs: maxLoopDelayMs,
    },
    rows: findings.rows,
    missingIds: findings.missingIds,
    earlyIds: findings.earlyIds,
    oldVersionIds: findings.oldVersionIds,
    strayIds: strayIds.slice(0, 100),
    schedules: recurring?.schedules ?? [],
    duplicateIds: findings.duplicateIds,
    /** Every receipt of the first 100 duplicated messages: which offsets or attempts, when. */
    duplicates: findings.duplicateIds.slice(0, 100).map((id) => {
      const via = messages.get(id)?.via ?? 'kafka';
      return { id, via, receipts: arrivals[via].get(id) ?? [] };
    }),
    dueMismatchIds: findings.dueMismatchIds,
    bodyMismatchIds: bodyMismatchIds.slice(0, 100),
    evidence,
  };
  const json = JSON.stringify(report, null, 2);
  writeFileSync(resolve(runDir, 'result.json'), json);
  writeFileSync(resolve(runDir, 'table.md'), `${table}\n`);
  writeFileSync(resolve(runDir, 'messages.csv'), messagesCsv(messages.values(), arrivals));
  writeFileSync(resolve(services.stateDir, 'last-result.json'), json);
  process.stdout.write(`\n${table}\n\n`);
  const t = report.totals;
  const NAMES: Record<RowKind, string> = {
    kafka: 'Kafka',
    moved: 'moved by PATCH',
    recurring: 'occurrences of schedules',
    http: 'HTTP callback',
  };
  const byWay = (pick: (f: Totals) => number): string =>
    kinds.map((kind) => `${pick(findings.byKind[kind])} ${NAMES[kind]}`).join(', ');
  process.stdout.write(
    `${t.generated} messages generated (${t.shed} shed), ${t.acknowledged} acknowledged (${byWay((f) => f.acknowledged)}), ` +
      (recv
        ? `${t.receivedRecords} records and ${t.callbackRequests} callback requests received (${t.callbackRequestsRefused} of them answered 503)`
        : `${t.receivedRecords} records received`) +
      `${t.receivedNotAcknowledged > 0 ? `, ${t.receivedNotAcknowledged} received but never acknowledged` : ''}` +
      `${findings.dueMismatchIds.length > 0 ? `, ${findings.dueMismatchIds.length} with a deliver-at header other than the acknowledged deliverAt` : ''}` +
      `${bodyMismatchIds.length > 0 ? `, ${bodyMismatchIds.length} callback(s) with a body other than the payload sent` : ''}.\n` +
      `Result: ${resolve(runDir, 'result.json')}; node logs: ${runDir}\n`,
  );
  if (bad > 0) {
    const moved = kinds.includes('moved')
      ? `, ${findings.oldVersionIds.length} moved message(s) delivered a version they must not have`
      : '';
    const strays = kinds.includes('recurring')
      ? `, ${strayIds.length} occurrence(s) no schedule has`
      : '';
    log(
      `FAILED: ${findings.missingIds.length} missing (${byWay((f) => f.missing)}), ${findings.earlyIds.length} early (${byWay((f) => f.early)})${moved}${strays} (ids and GET /v1/messages/{id} of each in result.json)`,
    );
    return 1;
  }
  log(
    `ok: every acknowledged message was received (${byWay((f) => f.acknowledged)}), none early${kinds.includes('moved') ? ', no moved message in a version it must not have' : ''}${kinds.includes('recurring') ? ', no stray occurrence' : ''}`,
  );
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

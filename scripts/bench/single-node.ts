/**
 * The bench's phases on the Hourglass single node alone, apart from scenarios 1–3: scenario 6
 * (HTTP callbacks, on a fresh node with its receivers) and scenario 7 (firing while ingesting,
 * on the node of scenarios 1–3 or a fresh one).
 */
import type { BenchSystem } from './common';
import { errorText, log } from './common';
import type { CallbackResult } from './callbacks';
import { CALLBACK_NODE_CONFIG, CALLBACK_TARGETS, CallbackReceivers, callbacks } from './callbacks';
import { HourglassSystem } from './hourglass';
import { fireWhileIngesting } from './ingest';
import type { SystemResult } from './report';
import { steady } from './scenarios';
import type { BenchOptions } from './settings';
import { startSystem, stopSystem } from './systems';

/**
 * Scenario 7 on a running single node: the fired messages at `--ingest-fire-rate` while it
 * ingests at `--ingest-rate` (ingest.ts); `warm`: a warm-up first (scenario 2 did not run on it).
 */
export async function runIngest(
  { settings }: BenchOptions,
  system: BenchSystem,
  r: SystemResult,
  bulkRate: number,
  warm: boolean,
): Promise<void> {
  log(
    `── firing while ingesting: ${settings.ingestFireRate}/s due while bulk scheduling at ${settings.ingestRate}/s for ${settings.ingestSeconds} s`,
  );
  try {
    if (warm && settings.warmupSeconds > 0)
      await steady(
        system,
        settings.steadyRate,
        settings.warmupSeconds,
        bulkRate,
        settings.steadyGraceMs,
      );
    r.ingest = await fireWhileIngesting(
      system,
      {
        fireRate: settings.ingestFireRate,
        seconds: settings.ingestSeconds,
        ingestRate: settings.ingestRate,
        graceMs: settings.steadyGraceMs,
      },
      bulkRate,
    );
    if (r.ingest.ingest.failedBatches > 0) {
      r.status = 'error';
      r.errors.push(
        `ingest: ${r.ingest.ingest.failedBatches} batches failed: ${r.ingest.ingest.firstError ?? ''}`,
      );
    }
  } catch (error) {
    r.status = 'error';
    r.errors.push(`ingest: ${errorText(error)}`);
    log(`firing while ingesting failed: ${errorText(error)}`);
  }
}

/**
 * Scenario 6: HTTP callbacks on a fresh single node (`callbacks.allowNetworks: [127.0.0.0/8]`),
 * to receivers in a child process of their own (scripts/bench/callback-receiver.ts).
 */
export async function benchCallbacks(
  { args, settings, profileDir }: BenchOptions,
  r: SystemResult,
  bulkRate: number,
): Promise<void> {
  log('── HTTP callbacks (Hourglass single node; receivers in a child process)');
  const result: CallbackResult = {
    settings: {
      rate: settings.callbackRate,
      seconds: settings.callbackSeconds,
      warmupSeconds: settings.warmupSeconds,
      hangingRate: settings.callbackHangingRate,
      hangingTimeoutMs: settings.callbackHangingTimeoutMs,
      burstCount: settings.callbackBurstCount,
      burstTimeoutMs: settings.burstTimeoutMs,
      graceMs: settings.steadyGraceMs,
    },
    receiver:
      'node:http servers in a child process of the bench (quick: 200 "ok", keep-alive; hanging: never answers)',
    nodeConfig: CALLBACK_NODE_CONFIG,
    targets: CALLBACK_TARGETS,
    notes: [],
  };
  r.callbacks = result;
  const make = (): HourglassSystem =>
    new HourglassSystem({
      nodes: 1,
      consumer: false,
      config: CALLBACK_NODE_CONFIG,
      ...(args.profile ? { cpuProfDir: profileDir } : {}),
    });
  const receivers = new CallbackReceivers();
  const started = Date.now();
  let system: HourglassSystem | undefined;
  try {
    await receivers.start();
    system = (await startSystem(make)) as HourglassSystem;
    r.durability ||= system.durability;
    const ctx = {
      system,
      receivers,
      restart: async (): Promise<HourglassSystem> => {
        await stopSystem(ctx.system);
        return (await startSystem(make)) as HourglassSystem;
      },
    };
    try {
      await callbacks(ctx, result.settings, bulkRate, result);
    } finally {
      system = ctx.system;
    }
  } catch (error) {
    r.status = 'error';
    r.errors.push(`callbacks: ${errorText(error)}`);
    log(`callbacks failed: ${errorText(error)}`);
    if (system) log(`node output: ${system.nodeOutput.slice(-1500)}`);
  } finally {
    if (system) await stopSystem(system);
    await receivers.stop();
    log(`HTTP callbacks: done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  }
}

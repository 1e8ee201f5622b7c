/**
 * Diagnostic (not part of the bench run): one Hourglass node and the callback receivers of
 * scenario 6, `rate` callbacks/s for `seconds` to the quick receiver (optionally a burst instead),
 * the node's callback and fire-stage metrics every 2 s, then the receiver's lateness and the
 * node's last log lines.
 *
 *   node --require tsx/cjs scripts/bench/probe-callbacks.ts RATE SECONDS [BURST] ['{"callbacks":{…}}']
 */
import { CALLBACK_NODE_CONFIG, CallbackReceivers, callbacks } from './callbacks';
import type { CallbackResult } from './callbacks';
import { HourglassSystem } from './hourglass';

async function main(): Promise<void> {
  const rate = Number(process.argv[2] ?? 2000);
  const seconds = Number(process.argv[3] ?? 10);
  const burstCount = Number(process.argv[4] ?? 2000);
  const extra = JSON.parse(process.argv[5] ?? '{}') as Record<string, unknown>;
  const config = {
    ...extra,
    callbacks: { ...CALLBACK_NODE_CONFIG.callbacks, ...(extra.callbacks as object | undefined) },
  };
  const receivers = new CallbackReceivers();
  await receivers.start();
  const make = (): HourglassSystem => new HourglassSystem({ nodes: 1, consumer: false, config });
  const system = make();
  await system.start();
  const timer = setInterval(() => {
    void system.metrics().then((m) => {
      const pick = [...m].filter(([k]) =>
        /callback_(attempts_total|lateness_seconds_(sum|count)|duration_seconds_(sum|count))|fire_stage_seconds_(sum|count)|wheel_size|process_cpu_seconds_total/.test(
          k,
        ),
      );
      process.stderr.write(
        `${new Date().toISOString().slice(17, 23)} ${pick.map(([k, v]) => `${k.replace('hourglass_', '')}=${v}`).join(' ')}\n`,
      );
    });
  }, 2000);
  const result: CallbackResult = {
    settings: {
      rate,
      seconds,
      warmupSeconds: 1,
      hangingRate: 0,
      hangingTimeoutMs: 2000,
      burstCount,
      burstTimeoutMs: 60_000,
      graceMs: 20_000,
    },
    receiver: 'child process',
    nodeConfig: config,
    targets: { p50Ms: 5, p99Ms: 25, hangingP99DifferenceMs: 5, burstAllDeliveredMs: 10_000 },
    notes: [],
  };
  const ctx = { system, receivers, restart: () => Promise.resolve(system) };
  try {
    await callbacks(ctx, result.settings, 10_000, result);
  } catch (error) {
    console.error(error);
  } finally {
    clearInterval(timer);
    console.log(JSON.stringify(result, null, 2));
    process.stderr.write(system.nodeOutput.slice(-3000));
    await system.stop();
    await receivers.stop();
  }
}
void main();

/**
 * Diagnostic (not part of the bench run): one Hourglass node, a steady run, and the node's own
 * metrics every 2 s (delivered, wheel size, batches in flight, CPU), then its last log lines.
 *
 *   node --require tsx/cjs scripts/bench/probe.ts RATE SECONDS ['{"core":{"fireConcurrency":1}}']
 */
import { HourglassSystem, scrapeMetrics } from './hourglass';
import { steady } from './scenarios';

async function main(): Promise<void> {
  const rate = Number(process.argv[2] ?? 2000);
  const seconds = Number(process.argv[3] ?? 15);
  const system = new HourglassSystem({
    nodes: 1,
    config: JSON.parse(process.argv[4] ?? '{}') as Record<string, unknown>,
  });
  await system.start();
  const url = (system as unknown as { nodes: { url: string }[] }).nodes[0]!.url;
  const timer = setInterval(() => {
    void scrapeMetrics(url).then((m) => {
      const pick = [...m].filter(([k]) =>
        /delivered_total|wheel_size|in_flight|lateness_seconds_(sum|count)|process_cpu_seconds_total/.test(
          k,
        ),
      );
      process.stderr.write(
        `${new Date().toISOString().slice(17, 23)} ${pick.map(([k, v]) => `${k.replace('hourglass_', '')}=${v}`).join(' ')}\n`,
      );
    });
  }, 2000);
  try {
    const r = await steady(system, rate, seconds, 20000, 20000);
    console.log(JSON.stringify(r));
  } finally {
    clearInterval(timer);
    process.stderr.write(system.nodeOutput.slice(-3000));
    await system.stop();
  }
}
void main();

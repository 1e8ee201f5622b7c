/**
 * The systems the bench knows (`--only` keys) and their bounded start and stop.
 */
import type { BenchSystem, SystemFactory } from './common';
import { bounded, errorText, log } from './common';
import { BullmqSystem } from './bullmq';
import { GraphileSystem } from './graphile';
import { HourglassSystem } from './hourglass';
import { PgBossSystem } from './pgboss';

export interface Entry {
  key: string;
  make: SystemFactory;
}

/** Every system, Hourglass single node first; `profileDir`: profile the single node there. */
export function systemEntries(profileDir: string | undefined): Entry[] {
  return [
    {
      key: 'hourglass',
      make: () =>
        new HourglassSystem({ nodes: 1, ...(profileDir ? { cpuProfDir: profileDir } : {}) }),
    },
    { key: 'hourglass-cluster', make: () => new HourglassSystem({ nodes: 3 }) },
    { key: 'bullmq-defaults', make: () => new BullmqSystem({}) },
    { key: 'bullmq-tuned', make: () => new BullmqSystem({ concurrency: 200 }) },
    { key: 'pgboss-defaults', make: () => new PgBossSystem({}) },
    {
      key: 'pgboss-tuned',
      make: () => new PgBossSystem({ pollingIntervalSeconds: 0.5, batchSize: 2000 }),
    },
    { key: 'graphile-defaults', make: () => new GraphileSystem({}) },
    // Poll 100 ms as asked; concurrency 10 because with its default of 1 a job at a time cannot
    // keep up with 2,000/s at all, which would measure the queue rather than the timer.
    {
      key: 'graphile-tuned',
      make: () => new GraphileSystem({ pollInterval: 100, concurrency: 10 }),
    },
  ];
}

/** `--only bullmq` selects both BullMQ variants; `--only hourglass` only the single node. */
export function selectEntries(entries: readonly Entry[], only: string | undefined): Entry[] {
  const keys = only?.split(',');
  return entries.filter(
    (e) =>
      !keys ||
      keys.some(
        (o) => e.key === o || (!entries.some((x) => x.key === o) && e.key.startsWith(`${o}-`)),
      ),
  );
}

/** Setup and teardown are bounded so one hung system cannot stall the run. */
const SETUP_MS = 90_000;

export async function startSystem(make: SystemFactory): Promise<BenchSystem> {
  const system = make();
  try {
    await bounded(system.start(), SETUP_MS, `starting ${system.system} ${system.variant}`);
  } catch (error) {
    await bounded(system.stop(), SETUP_MS, 'cleanup').catch(() => undefined);
    throw error;
  }
  return system;
}

export async function stopSystem(system: BenchSystem): Promise<void> {
  await bounded(system.stop(), SETUP_MS, `stopping ${system.system} ${system.variant}`).catch(
    (error: unknown) =>
      log(`cleanup of ${system.system} ${system.variant} failed: ${errorText(error)}`),
  );
}

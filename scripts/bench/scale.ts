/**
 * Scenario 5, scale (`--scale`, optional): the Hourglass single node with millions of pending
 * messages, then scenarios 1 and 2 on top of them.
 */
import pg from 'pg';
import { Progress } from './common';
import type { HourglassSystem } from './hourglass';
import type { SteadyResult, ThroughputResult } from './scenarios';
import { steady, throughput } from './scenarios';

const DAY_MS = 86_400_000;

export interface ScaleResult {
  pending: number;
  /** How the pending rows were put there. */
  filledBy: string;
  fillSeconds: number;
  throughput: ThroughputResult;
  steady: SteadyResult;
}

/**
 * `pending` far-future messages (a year ahead) written straight into the node's `messages` table
 * with one server-side INSERT … SELECT per million rows (through the HTTP API this would take
 * hours on this machine), then scenario 1 and a steady 2,000/s firing on top of them.
 */
export async function scale(
  system: HourglassSystem,
  pending: number,
  throughputCounts: { bulk: number; single: number },
  steadySeconds: number,
  graceMs: number,
): Promise<ScaleResult> {
  const client = new pg.Client({ connectionString: system.connectionString });
  await client.connect();
  const started = performance.now();
  const progress = new Progress('fill pending rows', pending);
  try {
    const chunk = 1_000_000;
    const base = Date.now() + 365 * DAY_MS;
    for (let from = 0; from < pending; from += chunk) {
      const to = Math.min(pending, from + chunk);
      // slot = g mod 256 rather than the real hash: these rows never come near the horizon, so no
      // loader ever reads them; they only have to be there, in the table and its indexes.
      await client.query(
        `INSERT INTO messages (app, id, slot, topic, msg_key, payload, payload_encoding, headers, deliver_at, fingerprint)
         SELECT 'bench', 'pending-' || g, g % 256, 'bench.pending', NULL, '\\x7b226e223a317d'::bytea, 0, '{}'::jsonb, $3::bigint + g, 'bench'
         FROM generate_series($1::bigint, $2::bigint - 1) AS g`,
        [from, to, base],
      );
      progress.update(to);
    }
    await client.query('ANALYZE messages');
  } finally {
    progress.finish();
    await client.end();
  }
  const fillSeconds = (performance.now() - started) / 1000;
  const tp = await throughput(system, throughputCounts.bulk, throughputCounts.single);
  const st = await steady(system, 2000, steadySeconds, tp.bulkPerSec, graceMs);
  return {
    pending,
    filledBy: 'server-side INSERT … SELECT generate_series (not the HTTP API)',
    fillSeconds,
    throughput: tp,
    steady: st,
  };
}

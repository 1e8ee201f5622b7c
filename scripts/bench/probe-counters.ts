/**
 * Diagnostic (not part of the bench run): what the message counters' triggers (008_retention)
 * cost the hot statements. Runs rounds of one 1000-row insert, one 1000-row claim and one
 * 1000-row mark through PgMessageStore, alternating rounds with the counter triggers enabled and
 * disabled (so warm-up and table growth hit both alike), and prints the median and p90 of each.
 *
 *   node --require tsx/cjs scripts/bench/probe-counters.ts [ROUNDS=40] [BATCH=1000]
 */
import { createHash } from 'node:crypto';
import type { MessageRef, NewMessage } from '@hourglass/core';
import { slotOf } from '@hourglass/core';
import { PgMessageStore } from '@hourglass/postgres';
import { createTestDatabase } from '@hourglass/testkit';
import pg from 'pg';

const SLOTS = 256;
const TRIGGERS = [
  'message_counts_insert',
  'message_counts_update',
  'message_counts_delete',
] as const;

function message(n: number, dueMs: number): NewMessage {
  const id = `c-${n}`;
  return {
    app: `app${n % 3}`,
    id,
    slot: slotOf('bench', id, SLOTS),
    topic: 'bench.topic',
    key: null,
    payload: Buffer.from(JSON.stringify({ n, pad: 'x'.repeat(100) })),
    payloadEncoding: 'json',
    headers: {},
    deliverAtMs: dueMs,
    fingerprint: createHash('sha256').update(id).digest('base64url'),
  };
}

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

async function main(): Promise<void> {
  const rounds = Number(process.argv[2] ?? 40);
  const batch = Number(process.argv[3] ?? 1000);
  const db = await createTestDatabase();
  const store = new PgMessageStore({ connectionString: db.connectionString, poolSize: 4 });
  const sql = new pg.Client({ connectionString: db.connectionString });
  try {
    await store.migrate(SLOTS);
    await store.start();
    await sql.connect();
    const leases = new Map(
      (
        await store.acquireSlots(
          Array.from({ length: SLOTS }, (_, i) => i),
          0,
        )
      ).map((l) => [l.slot, l.epoch]),
    );
    const due = Date.now();
    const context = { ownedEpochs: leases, hintBeforeMs: 0 };
    const times = {
      on: { insert: [] as number[], claim: [] as number[], mark: [] as number[] },
      off: { insert: [] as number[], claim: [] as number[], mark: [] as number[] },
    };
    let n = 0;
    // Two warm-up rounds (one each way) are not counted.
    for (let round = -2; round < rounds; round++) {
      const enabled = round % 2 === 0;
      for (const trigger of TRIGGERS)
        await sql.query(
          `ALTER TABLE messages ${enabled ? 'ENABLE' : 'DISABLE'} TRIGGER ${trigger}`,
        );
      const messages = Array.from({ length: batch }, () => message(n++, due));
      let started = performance.now();
      const outcomes = await store.insertBatch(messages, context);
      const insertMs = performance.now() - started;
      const refs: MessageRef[] = outcomes.map((outcome) =>
        outcome.kind === 'created'
          ? { seq: outcome.seq, slot: outcome.message.slot }
          : { seq: -1, slot: 0 },
      );
      started = performance.now();
      const claimed = await store.claim(refs, leases, due + 1);
      const claimMs = performance.now() - started;
      started = performance.now();
      await store.markDelivered(refs, leases, due + 2);
      const markMs = performance.now() - started;
      if (claimed.length !== batch) throw new Error(`claimed ${claimed.length} of ${batch}`);
      if (round < 0) continue;
      const into = enabled ? times.on : times.off;
      into.insert.push(insertMs);
      into.claim.push(claimMs);
      into.mark.push(markMs);
    }
    const row = (label: string, off: number[], on: number[]): string => {
      const [a, b] = [quantile(off, 0.5), quantile(on, 0.5)];
      return `| ${label} | ${a.toFixed(2)} / ${quantile(off, 0.9).toFixed(2)} | ${b.toFixed(2)} / ${quantile(on, 0.9).toFixed(2)} | ${(((b - a) / a) * 100).toFixed(1)} % |`;
    };
    console.log(`${rounds / 2} rounds each way, ${batch} rows per statement, ms p50 / p90`);
    console.log('| statement | without triggers | with triggers | p50 change |');
    console.log('| --- | --- | --- | --- |');
    console.log(row(`insert ${batch}`, times.off.insert, times.on.insert));
    console.log(row(`claim ${batch}`, times.off.claim, times.on.claim));
    console.log(row(`mark delivered ${batch}`, times.off.mark, times.on.mark));
  } finally {
    await sql.end().catch(() => undefined);
    await store.stop();
    await db.drop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});

/**
 * Diagnostic (not part of the bench run): times claim/markDelivered of 1000 refs over N pending
 * messages and prints the claim's EXPLAIN ANALYZE.
 *
 *   node --require tsx/cjs scripts/bench/probe-claim.ts [N=30000]
 */
/** Time claim/markDelivered of 1000 refs on a table of N messages, with EXPLAIN ANALYZE. */
import type { MessageRef } from '@hourglass/core';
import { slotOf } from '@hourglass/core';
import { PgMessageStore } from '@hourglass/postgres';
import { createTestDatabase } from '@hourglass/testkit';
import pg from 'pg';

async function main(): Promise<void> {
  const db = await createTestDatabase();
  const store = new PgMessageStore({ connectionString: db.connectionString });
  await store.migrate(256);
  await store.start();
  const leases = new Map(
    (
      await store.acquireSlots(
        Array.from({ length: 256 }, (_, i) => i),
        0,
      )
    ).map((l) => [l.slot, l.epoch]),
  );
  const now = Date.now();
  const total = Number(process.argv[2] ?? 30000);
  const created: MessageRef[] = [];
  for (let off = 0; off < total; off += 1000) {
    const msgs = Array.from({ length: 1000 }, (_, k) => {
      const id = `m-${off + k}`;
      return {
        app: 'bench',
        id,
        slot: slotOf('bench', id, 256),
        topic: 't',
        key: null,
        payload: Buffer.from('{}'),
        payloadEncoding: 'json' as const,
        headers: {},
        deliverAtMs: now - 1000,
        fingerprint: 'f',
      };
    });
    for (const outcome of await store.insertBatch(msgs, { ownedEpochs: leases, hintBeforeMs: now }))
      if (outcome.kind === 'created')
        created.push({ seq: outcome.seq, slot: outcome.message.slot });
  }
  const refs = created.slice(0, 1000);
  let t = performance.now();
  const claimed = await store.claim(refs, leases, Date.now());
  console.log(
    `claim 1000 of ${total}: ${(performance.now() - t).toFixed(1)} ms, ${claimed.length} rows`,
  );
  t = performance.now();
  await store.markDelivered(refs, leases, Date.now());
  console.log(`mark 1000: ${(performance.now() - t).toFixed(1)} ms`);
  const refs2 = created.slice(1000, 2000);
  // eslint-disable-next-line @typescript-eslint/unbound-method -- re-bound with .call below
  const orig = pg.Pool.prototype.query as unknown as (
    this: pg.Pool,
    text: string,
    values?: unknown[],
  ) => Promise<pg.QueryResult>;
  let explained = false;
  (pg.Pool.prototype as unknown as { query: unknown }).query = async function (
    this: pg.Pool,
    text: unknown,
    values: unknown,
  ) {
    if (!explained && typeof text === 'string' && text.includes('UPDATE messages m')) {
      explained = true;
      const r = await orig.call(this, `EXPLAIN (ANALYZE, BUFFERS) ${text}`, values as unknown[]);
      console.log((r.rows as { 'QUERY PLAN': string }[]).map((x) => x['QUERY PLAN']).join('\n'));
    }
    return orig.call(this, text as string, values as unknown[]);
  };
  await store.claim(refs2, leases, Date.now());
  await store.stop();
  await db.drop();
}
void main();

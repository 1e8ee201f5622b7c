/**
 * Diagnostic (not part of the bench run): the accept path's store side alone. Inserts N messages
 * shaped like the bench's (batches of 1000 from C concurrent callers, due a day ahead) straight
 * through PgMessageStore.insertBatch, prints the rate, then the insert statement's
 * `EXPLAIN (ANALYZE, BUFFERS)` for one more batch of 1000.
 *
 *   node --require tsx/cjs scripts/bench/probe-insert.ts [N=100000] [C=4]
 */
import { createHash } from 'node:crypto';
import type { NewMessage } from '@hourglass/core';
import { slotOf } from '@hourglass/core';
import { PgMessageStore } from '@hourglass/postgres';
import { createTestDatabase } from '@hourglass/testkit';
import pg from 'pg';

const SLOTS = 256;
const BATCH = Number(process.env.PROBE_BATCH ?? 1000);

function message(n: number, dueMs: number): NewMessage {
  const id = `r1-${n}`;
  const payload = Buffer.from(JSON.stringify({ n }));
  return {
    app: 'bench',
    id,
    slot: slotOf('bench', id, SLOTS),
    topic: 'bench.topic',
    key: null,
    payload,
    payloadEncoding: 'json',
    headers: {},
    deliverAtMs: dueMs + n,
    fingerprint: createHash('sha256').update(id).digest('base64url'),
  };
}

async function main(): Promise<void> {
  const total = Number(process.argv[2] ?? 100_000);
  const concurrency = Number(process.argv[3] ?? 4);
  const db = await createTestDatabase();
  const store = new PgMessageStore({ connectionString: db.connectionString, poolSize: 20 });
  try {
    await store.migrate(SLOTS);
    await store.start();
    const leases = new Map(
      (
        await store.acquireSlots(
          Array.from({ length: SLOTS }, (_, i) => i),
          0,
        )
      ).map((l) => [l.slot, l.epoch]),
    );
    const due = Date.now() + 86_400_000;
    const context = { ownedEpochs: leases, hintBeforeMs: Date.now() + 300_000 };
    const batches: NewMessage[][] = [];
    for (let off = 0; off < total; off += BATCH)
      batches.push(
        Array.from({ length: Math.min(BATCH, total - off) }, (_, k) => message(off + k, due)),
      );
    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < batches.length) await store.insertBatch(batches[next++]!, context);
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    console.log(
      `insertBatch: ${total} messages, ${concurrency} callers: ${(total / seconds).toFixed(0)} msg/s`,
    );

    // One more batch under EXPLAIN, through the store (so the statement is exactly its own).
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
      if (!explained && typeof text === 'string' && text.includes('INSERT INTO messages')) {
        explained = true;
        const r = await orig.call(
          this,
          `EXPLAIN (ANALYZE, BUFFERS, VERBOSE) ${text}`,
          values as unknown[],
        );
        console.log((r.rows as { 'QUERY PLAN': string }[]).map((x) => x['QUERY PLAN']).join('\n'));
        return orig.call(this, text, values as unknown[]);
      }
      return orig.call(this, text as string, values as unknown[]);
    };
    await store
      .insertBatch(
        Array.from({ length: BATCH }, (_, k) => message(total + k, due)),
        context,
      )
      .catch(() => undefined);
    (pg.Pool.prototype as unknown as { query: unknown }).query = orig;
  } finally {
    await store.stop();
    await db.drop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});

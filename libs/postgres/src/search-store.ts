/**
 * The search and bulk cancel methods of PgMessageStore (issue 14), kept apart from store.ts: they
 * sequence the statements of ./sql/search.ts and settle what those could not lock at once with
 * the single cancel (./sql/messages.ts), which waits for the row lock.
 */
import type {
  CancelledRef,
  FilterCancelBatch,
  IdsCancelOutcome,
  MessageFilter,
  SearchPage,
  SearchPosition,
} from '@hourglass/core';
import type { Queryable } from './sql/db';
import { cancelMessage } from './sql/messages';
import { cancelIdRows, cancelMatchingWindow, selectSearchPage } from './sql/search';
import { seqNumber, toStoredMessage } from './rows';

/** Like PgMessageStore.cancel: a refusal while the row still looks scheduled is asked again. */
const SINGLE_CANCEL_ATTEMPTS = 3;

export async function searchMessages(
  db: Queryable,
  filter: MessageFilter,
  after: SearchPosition | null,
  limit: number,
  scanLimit: number,
): Promise<SearchPage> {
  const page = await selectSearchPage(db, filter, after, limit, scanLimit);
  return { messages: page.rows.map(toStoredMessage), next: page.next };
}

type Settled = 'cancelled' | 'finished' | 'delivering' | 'not_found';

/** The single cancel, for one row another transaction held: waits for its lock, then decides. */
async function settleOne(
  db: Queryable,
  app: string,
  id: string,
  nowMs: number,
): Promise<{ outcome: Settled; ref?: CancelledRef }> {
  for (let attempt = 1; ; attempt++) {
    const row = await cancelMessage(db, app, id, nowMs);
    if (row === null) return { outcome: 'not_found' };
    if (row.cancelled)
      return {
        outcome: 'cancelled',
        ref: { id, seq: seqNumber(row.seq), deliverAtMs: Number(row.deliver_at) },
      };
    const state = toStoredMessage(row).state;
    if (state === 'scheduled' && attempt < SINGLE_CANCEL_ATTEMPTS) continue;
    return { outcome: state === 'scheduled' || state === 'delivering' ? 'delivering' : 'finished' };
  }
}

function refOf(row: { id: string; seq: string; deliverAt: string }): CancelledRef {
  return { id: row.id, seq: seqNumber(row.seq), deliverAtMs: Number(row.deliverAt) };
}

export async function cancelIds(
  db: Queryable,
  app: string,
  ids: readonly string[],
  nowMs: number,
): Promise<IdsCancelOutcome> {
  const rows = await cancelIdRows(db, app, ids, nowMs);
  const cancelled = rows.cancelled.map(refOf);
  let alreadyFinished = 0;
  let deliveryInProgress = 0;
  let notFound = 0;
  for (const { id, state } of rows.others) {
    if (state === null) notFound++;
    else if (state === 1) deliveryInProgress++;
    else if (state !== 0) alreadyFinished++;
    else {
      const settled = await settleOne(db, app, id, nowMs);
      if (settled.ref) cancelled.push(settled.ref);
      else if (settled.outcome === 'not_found') notFound++;
      else if (settled.outcome === 'delivering') deliveryInProgress++;
      else alreadyFinished++;
    }
  }
  return { cancelled, alreadyFinished, deliveryInProgress, notFound };
}

export async function cancelMatching(
  db: Queryable,
  filter: MessageFilter,
  after: SearchPosition | null,
  batchSize: number,
  scanLimit: number,
  nowMs: number,
): Promise<FilterCancelBatch> {
  const app = filter.app;
  if (app === null) throw new Error('a filter cancel needs an app');
  const window = await cancelMatchingWindow(
    db,
    { ...filter, app },
    after?.id ?? null,
    batchSize,
    scanLimit,
    nowMs,
  );
  const cancelled = window.cancelled.map(refOf);
  let notCancellable = window.delivering;
  for (const id of window.contended) {
    const settled = await settleOne(db, app, id, nowMs);
    if (settled.ref) cancelled.push(settled.ref);
    else if (settled.outcome !== 'not_found') notCancellable++;
  }
  return {
    cancelled,
    notCancellable,
    next: window.nextId === null ? null : { app, id: window.nextId },
  };
}

/**
 * insertBatch's rounds: one insert statement (sql/insert.ts), then the outcome of every input row:
 * created, an identical re-send of an existing id, or a conflict, and a repeat within the batch
 * as a re-send of its first occurrence. An id whose conflicting row vanished before it could be
 * read (removed by retention meanwhile) is inserted again, in a round of its own.
 */
import type { InsertContext, InsertOutcome, NewMessage, StoredMessage } from '@hourglass/core';
import { INITIAL_TARGET_STATE, messageKey } from '@hourglass/core';
import type { Pool } from 'pg';
import type { MessageRow } from './rows';
import { toStoredMessage } from './rows';
import { insertMessages, selectMessages } from './sql/insert';

/** Rounds of insert for ids whose conflicting row vanished before it could be read (removed by archiving). */
const INSERT_ROUNDS = 3;

export async function insertRound(
  pool: Pool,
  messages: readonly NewMessage[],
  context: InsertContext,
  channel: string,
  round: number,
): Promise<InsertOutcome[]> {
  const inserted = await insertMessages(
    pool,
    messages,
    context.ownedEpochs,
    context.hintBeforeMs,
    channel,
  );
  const outcomes: (InsertOutcome | undefined)[] = new Array<InsertOutcome | undefined>(
    messages.length,
  );
  /**
   * Created rows by seq: a second occurrence of an id created by this batch joins the same new
   * row, so it comes back with the same seq (numbers: cheaper keys than app and id).
   */
  const firstBySeq = new Map<number, number>();
  /** [index, index of the first occurrence]. */
  const repeats: [number, number][] = [];
  /** Ids that exist already (every occurrence): compared with the stored row below. */
  const existing: number[] = [];
  inserted.seqs.forEach((seq, index) => {
    if (seq === null) {
      existing.push(index);
      return;
    }
    const first = firstBySeq.get(seq);
    if (first !== undefined) {
      repeats.push([index, first]);
      return;
    }
    firstBySeq.set(seq, index);
    outcomes[index] = {
      kind: 'created',
      message: createdMessage(messages[index]!, inserted.createdAtMs(index)),
      seq,
      wheelable: inserted.wheelable[index] === true,
    };
  });

  if (existing.length > 0) {
    // Read with a new snapshot, so rows a concurrent insert committed after our statement began
    // (ON CONFLICT waited for them) are seen too.
    const found = new Map<string, MessageRow>();
    for (const row of await selectMessages(
      pool,
      existing.map((i) => messages[i]!),
    ))
      found.set(messageKey(row.app, row.id), row);
    const vanished: number[] = [];
    for (const index of existing) {
      const message = messages[index]!;
      const row = found.get(messageKey(message.app, message.id));
      if (row) outcomes[index] = compare(message, toStoredMessage(row));
      else vanished.push(index);
    }
    if (vanished.length > 0) {
      if (round >= INSERT_ROUNDS)
        throw new Error(
          `ids ${vanished.map((i) => messages[i]!.id).join(', ')} kept vanishing while being inserted`,
        );
      const retried = await insertRound(
        pool,
        vanished.map((i) => messages[i]!),
        context,
        channel,
        round + 1,
      );
      vanished.forEach((index, k) => (outcomes[index] = retried[k]));
    }
  }

  // A second occurrence of an id created by the batch is a re-send of the first.
  for (const [index, first] of repeats) {
    outcomes[index] = compare(messages[index]!, outcomes[first]!.message);
  }
  return outcomes.map((outcome, index) => {
    if (!outcome) throw new Error(`insert returned no outcome for message ${index}`);
    return outcome;
  });
}

function createdMessage(message: NewMessage, createdAtMs: number): StoredMessage {
  return {
    app: message.app,
    id: message.id,
    slot: message.slot,
    topic: message.topic,
    key: message.key,
    payload: message.payload,
    payloadEncoding: message.payloadEncoding,
    headers: message.headers,
    deliverAtMs: message.deliverAtMs,
    state: 'scheduled',
    createdAtMs,
    finishedAtMs: null,
    attempts: 0,
    lastError: null,
    fingerprint: message.fingerprint,
    targets: message.targets ?? null,
    targetStates: message.targets?.map(() => INITIAL_TARGET_STATE) ?? null,
    retry: message.retry ?? null,
    contentType: message.contentType ?? null,
    firstDeliverAtMs: null,
  };
}

function compare(message: NewMessage, stored: StoredMessage): InsertOutcome {
  return stored.fingerprint === message.fingerprint
    ? { kind: 'existing', message: stored }
    : { kind: 'conflict', message: stored };
}

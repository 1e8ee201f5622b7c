/**
 * Per-window figures and the table. A message belongs to the window in which it was due (its
 * acknowledged `deliverAt`):
 *
 *   baseline   from the start of the load to the start of the first fault
 *   <fault>    from the start of the fault to the start of the next one (the fault itself, then
 *              the settle period after it); the last fault's window runs to the end of the run
 *
 * Each window has one row per kind of message in the run: Kafka records (`kill`), Kafka messages
 * moved by a PATCH (`kill (moved)`), occurrences of recurring schedules (`kill (recurring)`) and
 * HTTP callbacks (`kill (http)`), judged alike: missing, early, duplicates, lateness, recovery;
 * a moved message also by which version arrived (./judge.ts). A callback request the receiver
 * answered with a failure (the `receiver` fault) is an attempt, not a delivery: it counts for the
 * early check only.
 */
import type { FaultRecord } from './faults';
import { expectationOf, kindOf, viaOf } from './judge';
import type { RowKind } from './judge';
import type { SentMessage, Via } from './load';

/**
 * One arrival of a message where it is delivered: a Kafka record at the consumer (with the
 * broker's append time) or a callback request at the receiver (with its attempt and answer).
 */
export interface Arrival {
  receivedAt: number;
  /** The broker's append time; only Kafka records have one. */
  appendedAt?: number;
  /** The `hourglass-deliver-at` it carried, epoch ms. */
  deliverAt: number;
  /** `hourglass-attempt` of a callback request. */
  attempt?: number;
  /** false: the receiver answered with a failure, so this was a failed attempt, not a delivery. */
  accepted?: boolean;
  /** The payload's version (Kafka records): 2 for the moved version of a rescheduled message. */
  version?: number;
}

/** What arrived, by message id, for each way of delivering. */
export type Arrivals = Readonly<Record<Via, ReadonlyMap<string, readonly Arrival[]>>>;

const int = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
export const num = (value: number): string => (Number.isFinite(value) ? int.format(value) : '—');

export const deliveries = (got: readonly Arrival[]): Arrival[] =>
  got.filter((a) => a.accepted !== false);

export interface Window {
  name: string;
  description: string;
  start: number;
  /** When the fault was undone (`start` for the baseline). */
  faultEnd: number;
  end: number;
  notes: string[];
}

export interface Spread {
  p50: number;
  p99: number;
  max: number;
}

export interface Row {
  window: string;
  kind: RowKind;
  via: Via;
  description: string;
  /** Seconds since the load started: window start, fault end, window end. */
  fromS: number;
  faultEndS: number;
  toS: number | null;
  acknowledged: number;
  missing: number;
  early: number;
  duplicates: number;
  /**
   * Moved rows only: messages of which a version was delivered that must never be (the old one
   * after a 200 to the PATCH, the new one after a refusal, or both).
   */
  oldVersion?: number;
  /** Messages generated for this window that never got a 2xx (gave up, rejected). */
  notAcknowledged: number;
  /** Failed request attempts (5xx, 429, connection errors, timeouts) made during the window. */
  failedRequests: number;
  /** First receipt at the consumer (first request answered 2xx at the receiver) − deliverAt. */
  latenessMs: Spread | null;
  /** The broker's append time − deliverAt (Kafka rows only). */
  brokerLatenessMs: Spread | null;
  /** Callback requests the receiver answered with a failure (HTTP rows only). */
  refusedAttempts?: number;
  /** The highest `hourglass-attempt` a delivered callback carried (HTTP rows only). */
  maxAttempt?: number;
  /**
   * From the fault's end until every message acknowledged by then and due by then was received
   * (0 when all were received before the end); null if one of them never was; undefined for the
   * baseline.
   */
  recoveryMs?: number | null;
  /** The same by the broker's append times: without the consumer's own lag (Kafka rows only). */
  brokerRecoveryMs?: number | null;
  notes: string[];
}

export function windowsOf(loadStartedAt: number, faults: readonly FaultRecord[]): Window[] {
  const first = faults[0];
  const windows: Window[] = [
    {
      name: 'baseline',
      description: 'no fault',
      start: loadStartedAt,
      faultEnd: loadStartedAt,
      end: first ? first.startedAt : Infinity,
      notes: [],
    },
  ];
  faults.forEach((fault, i) => {
    windows.push({
      name: fault.name,
      description: fault.description,
      start: fault.startedAt,
      faultEnd: fault.endedAt,
      end: faults[i + 1]?.startedAt ?? Infinity,
      notes: fault.notes,
    });
  });
  return windows;
}

function spread(values: number[]): Spread | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)] ?? NaN;
  return { p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1] ?? NaN };
}

export function firstReceipt(receipts: readonly Arrival[]): Arrival | undefined {
  let first: Arrival | undefined;
  for (const receipt of receipts)
    if (!first || receipt.receivedAt < first.receivedAt) first = receipt;
  return first;
}

export interface Findings {
  rows: Row[];
  missingIds: string[];
  earlyIds: string[];
  /** Moved messages that delivered a version they must not have (see Row.oldVersion). */
  oldVersionIds: string[];
  duplicateIds: string[];
  /** Acknowledged messages whose `hourglass-deliver-at` differs from the acknowledged deliverAt. */
  dueMismatchIds: string[];
  /** Received, but never acknowledged to the client (its attempts failed, yet one committed). */
  receivedNotAcknowledged: number;
  /** The same figures by way of delivering (moved and recurring messages are Kafka ones). */
  byVia: Record<Via, Totals>;
  /** ... and by kind of message (the rows). */
  byKind: Record<RowKind, Totals>;
}

export interface Totals {
  acknowledged: number;
  missing: number;
  early: number;
  duplicates: number;
  oldVersion: number;
  receivedNotAcknowledged: number;
}

const ROW_LABEL: Record<RowKind, string> = {
  kafka: '',
  moved: ' (moved)',
  recurring: ' (recurring)',
  http: ' (http)',
};

/**
 * `kinds`: the kinds of message the run had, in the order of their rows within a window.
 */
export function analyse(
  windows: readonly Window[],
  messages: Iterable<SentMessage>,
  arrivals: Arrivals,
  kinds: readonly RowKind[],
  loadStartedAt: number,
): Findings {
  const rel = (t: number): number => Math.round((t - loadStartedAt) / 100) / 10;
  const zero = (): Totals => ({
    acknowledged: 0,
    missing: 0,
    early: 0,
    duplicates: 0,
    oldVersion: 0,
    receivedNotAcknowledged: 0,
  });
  const findings: Findings = {
    rows: [],
    missingIds: [],
    earlyIds: [],
    oldVersionIds: [],
    duplicateIds: [],
    dueMismatchIds: [],
    receivedNotAcknowledged: 0,
    byVia: { kafka: zero(), http: zero() },
    byKind: { kafka: zero(), moved: zero(), recurring: zero(), http: zero() },
  };
  interface Tally {
    w: Window;
    late: number[];
    broker: number[];
    row: Row;
    recoveryDone: number;
    brokerRecoveryDone: number;
    recoveryBroken: boolean;
    /** Moved rows: how their PATCHes ended. */
    outcomes: Map<string, number>;
  }
  const perWindow = windows.map((w) =>
    kinds.map((kind): Tally => ({
      w,
      late: [],
      broker: [],
      outcomes: new Map(),
      row: {
        window: `${w.name}${ROW_LABEL[kind]}`,
        kind,
        via: viaOf(kind),
        description: w.description,
        fromS: rel(w.start),
        faultEndS: rel(w.faultEnd),
        toS: Number.isFinite(w.end) ? rel(w.end) : null,
        acknowledged: 0,
        missing: 0,
        early: 0,
        duplicates: 0,
        notAcknowledged: 0,
        failedRequests: 0,
        latenessMs: null,
        brokerLatenessMs: null,
        ...(kind === 'http' ? { refusedAttempts: 0, maxAttempt: 0 } : {}),
        ...(kind === 'moved' ? { oldVersion: 0 } : {}),
        // The fault's notes go with its first row.
        notes: kind === kinds[0] ? [...w.notes] : [],
      },
      recoveryDone: w.faultEnd,
      brokerRecoveryDone: w.faultEnd,
      recoveryBroken: false,
    })),
  );
  const find = (t: number, kind: RowKind): Tally | undefined => {
    const index = windows.findIndex((w) => t >= w.start && t < w.end);
    const slots = index >= 0 ? perWindow[index] : t < loadStartedAt ? perWindow[0] : undefined;
    return slots?.find((slot) => slot.row.kind === kind);
  };

  for (const message of messages) {
    const kind = kindOf(message);
    const counters = [findings.byVia[message.via], findings.byKind[kind]];
    const count = (field: keyof Totals): void => {
      for (const totals of counters) totals[field]++;
    };
    for (const failure of [...message.failures, ...(message.move?.failures ?? [])]) {
      const slot = find(failure.at, kind);
      if (slot) slot.row.failedRequests++;
    }
    const got = arrivals[message.via].get(message.id) ?? [];
    const delivered = deliveries(got);
    const { ackedAt, dueMs } = message;
    if (ackedAt === undefined || dueMs === undefined) {
      const slot = find(message.createdAt + message.delayMs, kind);
      if (slot) slot.row.notAcknowledged++;
      if (delivered.length > 0) {
        findings.receivedNotAcknowledged++;
        count('receivedNotAcknowledged');
      }
      continue;
    }
    const expected = expectationOf({ ...message, ackedAt, dueMs }, delivered);
    const due = expected.dueMs;
    const slot = find(due, kind);
    if (!slot) continue;
    const row = slot.row;
    row.acknowledged++;
    count('acknowledged');
    if (message.move?.outcome !== undefined) {
      const outcome = `${message.move.outcome} (${message.move.answer ?? '?'})`;
      slot.outcomes.set(outcome, (slot.outcomes.get(outcome) ?? 0) + 1);
    }
    if (row.refusedAttempts !== undefined) row.refusedAttempts += got.length - delivered.length;
    const inRecovery = due <= slot.w.faultEnd && expected.ackedAt <= slot.w.faultEnd;
    // Any arrival before the due time is early, a refused attempt too: it reached the receiver.
    if (got.some((r) => Math.min(r.receivedAt, r.appendedAt ?? Infinity) < expected.dueOf(r))) {
      row.early++;
      count('early');
      findings.earlyIds.push(message.id);
    }
    if (got.some((r) => r.deliverAt !== expected.dueOf(r)))
      findings.dueMismatchIds.push(message.id);
    if (row.oldVersion !== undefined && expected.wrongVersion(delivered)) {
      row.oldVersion++;
      count('oldVersion');
      findings.oldVersionIds.push(message.id);
    }
    const first = firstReceipt(delivered);
    if (!first) {
      row.missing++;
      count('missing');
      findings.missingIds.push(message.id);
      if (inRecovery) slot.recoveryBroken = true;
      continue;
    }
    if (delivered.length > 1) {
      row.duplicates++;
      count('duplicates');
      findings.duplicateIds.push(message.id);
    }
    if (row.maxAttempt !== undefined) {
      for (const r of delivered) row.maxAttempt = Math.max(row.maxAttempt, r.attempt ?? 0);
    }
    slot.late.push(first.receivedAt - expected.dueOf(first));
    const appended = delivered.flatMap((r) => (r.appendedAt === undefined ? [] : [r.appendedAt]));
    const appendedAt = appended.length > 0 ? Math.min(...appended) : undefined;
    if (appendedAt !== undefined) slot.broker.push(appendedAt - expected.dueOf(first));
    if (inRecovery) {
      slot.recoveryDone = Math.max(slot.recoveryDone, first.receivedAt);
      if (appendedAt !== undefined)
        slot.brokerRecoveryDone = Math.max(slot.brokerRecoveryDone, appendedAt);
    }
  }
  for (const slot of perWindow.flat()) {
    const row = slot.row;
    row.latenessMs = spread(slot.late);
    row.brokerLatenessMs = spread(slot.broker);
    if (slot.w.name !== 'baseline') {
      row.recoveryMs = slot.recoveryBroken ? null : slot.recoveryDone - slot.w.faultEnd;
      if (row.via === 'kafka') {
        row.brokerRecoveryMs = slot.recoveryBroken
          ? null
          : slot.brokerRecoveryDone - slot.w.faultEnd;
      }
    }
    if (row.refusedAttempts)
      row.notes.push(`receiver refused ${num(row.refusedAttempts)} attempt(s)`);
    if (row.maxAttempt !== undefined && row.maxAttempt > 1)
      row.notes.push(`delivered at attempt ≤ ${num(row.maxAttempt)}`);
    if (slot.outcomes.size > 0) {
      const outcomes = [...slot.outcomes].sort(([a], [b]) => a.localeCompare(b));
      row.notes.push(`PATCH ${outcomes.map(([o, n]) => `${o}: ${num(n)}`).join(', ')}`);
    }
    findings.rows.push(row);
  }
  return findings;
}

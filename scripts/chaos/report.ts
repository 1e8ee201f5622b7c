/**
 * Per-window figures and the table. A message belongs to the window in which it was due (its
 * acknowledged `deliverAt`):
 *
 *   baseline   from the start of the load to the start of the first fault
 *   <fault>    from the start of the fault to the start of the next one (the fault itself, then
 *              the settle period after it); the last fault's window runs to the end of the run
 *
 * Each window has one row per way of delivering in the run: Kafka records (`kill`) and HTTP
 * callbacks (`kill (http)`), judged alike: missing, early, duplicates, lateness, recovery. A
 * callback request the receiver answered with a failure (the `receiver` fault) is an attempt,
 * not a delivery: it counts for the early check only.
 */
import type { FaultRecord } from './faults';
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
}

/** What arrived, by message id, for each way of delivering. */
export type Arrivals = Readonly<Record<Via, ReadonlyMap<string, readonly Arrival[]>>>;

const int = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const num = (value: number): string => (Number.isFinite(value) ? int.format(value) : '—');

const deliveries = (got: readonly Arrival[]): Arrival[] => got.filter((a) => a.accepted !== false);

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

function firstReceipt(receipts: readonly Arrival[]): Arrival | undefined {
  let first: Arrival | undefined;
  for (const receipt of receipts)
    if (!first || receipt.receivedAt < first.receivedAt) first = receipt;
  return first;
}

export interface Findings {
  rows: Row[];
  missingIds: string[];
  earlyIds: string[];
  duplicateIds: string[];
  /** Acknowledged messages whose `hourglass-deliver-at` differs from the acknowledged deliverAt. */
  dueMismatchIds: string[];
  /** Received, but never acknowledged to the client (its attempts failed, yet one committed). */
  receivedNotAcknowledged: number;
  /** The same figures by way of delivering. */
  byVia: Record<
    Via,
    {
      acknowledged: number;
      missing: number;
      early: number;
      duplicates: number;
      receivedNotAcknowledged: number;
    }
  >;
}

/**
 * `vias`: the ways of delivering the run used, in the order of their rows within a window.
 */
export function analyse(
  windows: readonly Window[],
  messages: ReadonlyMap<string, SentMessage>,
  arrivals: Arrivals,
  vias: readonly Via[],
  loadStartedAt: number,
): Findings {
  const rel = (t: number): number => Math.round((t - loadStartedAt) / 100) / 10;
  const zero = (): Findings['byVia']['kafka'] => ({
    acknowledged: 0,
    missing: 0,
    early: 0,
    duplicates: 0,
    receivedNotAcknowledged: 0,
  });
  const findings: Findings = {
    rows: [],
    missingIds: [],
    earlyIds: [],
    duplicateIds: [],
    dueMismatchIds: [],
    receivedNotAcknowledged: 0,
    byVia: { kafka: zero(), http: zero() },
  };
  interface Tally {
    w: Window;
    late: number[];
    broker: number[];
    row: Row;
    recoveryDone: number;
    brokerRecoveryDone: number;
    recoveryBroken: boolean;
  }
  const perWindow = windows.map((w) =>
    vias.map((via): Tally => ({
      w,
      late: [],
      broker: [],
      row: {
        window: via === 'kafka' ? w.name : `${w.name} (${via})`,
        via,
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
        ...(via === 'http' ? { refusedAttempts: 0, maxAttempt: 0 } : {}),
        // The fault's notes go with its first row.
        notes: via === vias[0] ? [...w.notes] : [],
      },
      recoveryDone: w.faultEnd,
      brokerRecoveryDone: w.faultEnd,
      recoveryBroken: false,
    })),
  );
  const find = (t: number, via: Via): Tally | undefined => {
    const index = windows.findIndex((w) => t >= w.start && t < w.end);
    const slots = index >= 0 ? perWindow[index] : t < loadStartedAt ? perWindow[0] : undefined;
    return slots?.find((slot) => slot.row.via === via);
  };

  for (const message of messages.values()) {
    const totals = findings.byVia[message.via];
    for (const failure of message.failures) {
      const slot = find(failure.at, message.via);
      if (slot) slot.row.failedRequests++;
    }
    const got = arrivals[message.via].get(message.id) ?? [];
    const delivered = deliveries(got);
    if (message.ackedAt === undefined || message.dueMs === undefined) {
      const slot = find(message.createdAt + message.delayMs, message.via);
      if (slot) slot.row.notAcknowledged++;
      if (delivered.length > 0) {
        findings.receivedNotAcknowledged++;
        totals.receivedNotAcknowledged++;
      }
      continue;
    }
    const due = message.dueMs;
    const slot = find(due, message.via);
    if (!slot) continue;
    const row = slot.row;
    row.acknowledged++;
    totals.acknowledged++;
    if (row.refusedAttempts !== undefined) row.refusedAttempts += got.length - delivered.length;
    const inRecovery = due <= slot.w.faultEnd && message.ackedAt <= slot.w.faultEnd;
    // Any arrival before the due time is early, a refused attempt too: it reached the receiver.
    if (got.some((r) => Math.min(r.receivedAt, r.appendedAt ?? Infinity) < due)) {
      row.early++;
      totals.early++;
      findings.earlyIds.push(message.id);
    }
    if (got.some((r) => r.deliverAt !== due)) findings.dueMismatchIds.push(message.id);
    const first = firstReceipt(delivered);
    if (!first) {
      row.missing++;
      totals.missing++;
      findings.missingIds.push(message.id);
      if (inRecovery) slot.recoveryBroken = true;
      continue;
    }
    if (delivered.length > 1) {
      row.duplicates++;
      totals.duplicates++;
      findings.duplicateIds.push(message.id);
    }
    if (row.maxAttempt !== undefined) {
      for (const r of delivered) row.maxAttempt = Math.max(row.maxAttempt, r.attempt ?? 0);
    }
    slot.late.push(first.receivedAt - due);
    const appended = delivered.flatMap((r) => (r.appendedAt === undefined ? [] : [r.appendedAt]));
    const appendedAt = appended.length > 0 ? Math.min(...appended) : undefined;
    if (appendedAt !== undefined) slot.broker.push(appendedAt - due);
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
    findings.rows.push(row);
  }
  return findings;
}

function spreadCell(value: Spread | null, full = true): string {
  if (!value) return '—';
  return full
    ? `${num(value.p50)} / ${num(value.p99)} / ${num(value.max)}`
    : `${num(value.p99)} / ${num(value.max)}`;
}

function recoveryCell(row: Row): string {
  if (row.recoveryMs === undefined) return '—';
  if (row.recoveryMs === null) return '**never**';
  return `${num(row.recoveryMs)} / ${row.via === 'kafka' ? num(row.brokerRecoveryMs ?? NaN) : '—'}`;
}

export function renderTable(rows: readonly Row[]): string {
  const lines = [
    '| window | fault | due in (s) | acked | missing | early | duplicates | lateness p50 / p99 / max (ms) | at broker p99 / max (ms) | recovery: received / broker (ms) | failed requests | not acked | notes |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of rows) {
    const span = `${r.fromS.toFixed(1)}–${r.toS === null ? 'end' : r.toS.toFixed(1)}`;
    const bold = (n: number): string => (n > 0 ? `**${num(n)}**` : num(n));
    lines.push(
      `| ${r.window} | ${r.via === 'kafka' ? r.description : ''} | ${span} | ${num(r.acknowledged)} | ${bold(r.missing)} | ${bold(r.early)} | ${num(r.duplicates)} | ${spreadCell(r.latenessMs)} | ${spreadCell(r.brokerLatenessMs, false)} | ${recoveryCell(r)} | ${num(r.failedRequests)} | ${num(r.notAcknowledged)} | ${r.notes.join('; ')} |`,
    );
  }
  return lines.join('\n');
}

/**
 * One line per message, times in epoch ms (empty when it never happened): for plotting lateness
 * over time, or for following one message. `receipts` counts deliveries (records; callback
 * requests answered 2xx), `refused` the callback requests the receiver answered with a failure.
 */
export function messagesCsv(
  messages: ReadonlyMap<string, SentMessage>,
  arrivals: Arrivals,
): string {
  const lines = ['id,created,attempts,acked,status,due,received,appended,receipts,via,refused'];
  for (const m of messages.values()) {
    const all = arrivals[m.via].get(m.id) ?? [];
    const got = deliveries(all);
    const first = firstReceipt(got);
    const appended = got.flatMap((r) => (r.appendedAt === undefined ? [] : [r.appendedAt]));
    lines.push(
      [
        m.id,
        m.createdAt,
        m.attempts,
        m.ackedAt ?? '',
        m.ackStatus ?? (m.rejected ? 'rejected' : m.gaveUp ? 'gave-up' : ''),
        m.dueMs ?? '',
        first?.receivedAt ?? '',
        appended.length > 0 ? Math.min(...appended) : '',
        got.length,
        m.via,
        all.length - got.length,
      ].join(','),
    );
  }
  return `${lines.join('\n')}\n`;
}

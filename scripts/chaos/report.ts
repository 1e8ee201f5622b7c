/**
 * Per-window figures and the table. A message belongs to the window in which it was due (its
 * acknowledged `deliverAt`):
 *
 *   baseline   from the start of the load to the start of the first fault
 *   <fault>    from the start of the fault to the start of the next one (the fault itself, then
 *              the settle period after it); the last fault's window runs to the end of the run
 */
import type { FaultRecord } from './faults';
import type { SentMessage } from './load';
import type { Receipt } from './consumer';

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
  /** First receipt at the consumer − deliverAt. */
  latenessMs: Spread | null;
  /** The broker's append time − deliverAt. */
  brokerLatenessMs: Spread | null;
  /**
   * From the fault's end until every message acknowledged by then and due by then was received
   * (0 when all were received before the end); null if one of them never was; undefined for the
   * baseline.
   */
  recoveryMs?: number | null;
  /** The same by the broker's append times: without the consumer's own lag. */
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

function firstReceipt(receipts: readonly Receipt[]): Receipt | undefined {
  let first: Receipt | undefined;
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
}

export function analyse(
  windows: readonly Window[],
  messages: ReadonlyMap<string, SentMessage>,
  receipts: ReadonlyMap<string, Receipt[]>,
  loadStartedAt: number,
): Findings {
  const rel = (t: number): number => Math.round((t - loadStartedAt) / 100) / 10;
  const findings: Findings = {
    rows: [],
    missingIds: [],
    earlyIds: [],
    duplicateIds: [],
    dueMismatchIds: [],
    receivedNotAcknowledged: 0,
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
  const perWindow = windows.map((w): Tally => ({
    w,
    late: [],
    broker: [],
    row: {
      window: w.name,
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
      notes: [...w.notes],
    },
    recoveryDone: w.faultEnd,
    brokerRecoveryDone: w.faultEnd,
    recoveryBroken: false,
  }));
  const find = (t: number): Tally | undefined =>
    perWindow.find(({ w }) => t >= w.start && t < w.end) ??
    (t < loadStartedAt ? perWindow[0] : undefined);

  for (const message of messages.values()) {
    for (const failure of message.failures) {
      const slot = find(failure.at);
      if (slot) slot.row.failedRequests++;
    }
    const got = receipts.get(message.id) ?? [];
    if (message.ackedAt === undefined || message.dueMs === undefined) {
      const slot = find(message.createdAt + message.delayMs);
      if (slot) slot.row.notAcknowledged++;
      if (got.length > 0) findings.receivedNotAcknowledged++;
      continue;
    }
    const due = message.dueMs;
    const slot = find(due);
    if (!slot) continue;
    const row = slot.row;
    row.acknowledged++;
    const inRecovery = due <= slot.w.faultEnd && message.ackedAt <= slot.w.faultEnd;
    const first = firstReceipt(got);
    if (!first) {
      row.missing++;
      findings.missingIds.push(message.id);
      if (inRecovery) slot.recoveryBroken = true;
      continue;
    }
    if (got.some((r) => Math.min(r.receivedAt, r.appendedAt) < due)) {
      row.early++;
      findings.earlyIds.push(message.id);
    }
    if (got.length > 1) {
      row.duplicates++;
      findings.duplicateIds.push(message.id);
    }
    if (got.some((r) => r.deliverAt !== due)) findings.dueMismatchIds.push(message.id);
    slot.late.push(first.receivedAt - due);
    const appendedAt = Math.min(...got.map((r) => r.appendedAt));
    slot.broker.push(appendedAt - due);
    if (inRecovery) {
      slot.recoveryDone = Math.max(slot.recoveryDone, first.receivedAt);
      slot.brokerRecoveryDone = Math.max(slot.brokerRecoveryDone, appendedAt);
    }
  }
  for (const slot of perWindow) {
    slot.row.latenessMs = spread(slot.late);
    slot.row.brokerLatenessMs = spread(slot.broker);
    if (slot.w.name !== 'baseline') {
      slot.row.recoveryMs = slot.recoveryBroken ? null : slot.recoveryDone - slot.w.faultEnd;
      slot.row.brokerRecoveryMs = slot.recoveryBroken
        ? null
        : slot.brokerRecoveryDone - slot.w.faultEnd;
    }
    findings.rows.push(slot.row);
  }
  return findings;
}

const int = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const num = (value: number): string => (Number.isFinite(value) ? int.format(value) : '—');

function spreadCell(value: Spread | null, full = true): string {
  if (!value) return '—';
  return full
    ? `${num(value.p50)} / ${num(value.p99)} / ${num(value.max)}`
    : `${num(value.p99)} / ${num(value.max)}`;
}

function recoveryCell(row: Row): string {
  if (row.recoveryMs === undefined) return '—';
  if (row.recoveryMs === null) return '**never**';
  return `${num(row.recoveryMs)} / ${num(row.brokerRecoveryMs ?? NaN)}`;
}

export function renderTable(rows: readonly Row[]): string {
  const lines = [
    '| window | fault | due in (s) | acked | missing | early | duplicates | lateness p50 / p99 / max (ms) | at broker p99 / max (ms) | recovery: consumer / broker (ms) | failed requests | not acked | notes |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of rows) {
    const span = `${r.fromS.toFixed(1)}–${r.toS === null ? 'end' : r.toS.toFixed(1)}`;
    const bold = (n: number): string => (n > 0 ? `**${num(n)}**` : num(n));
    lines.push(
      `| ${r.window} | ${r.description} | ${span} | ${num(r.acknowledged)} | ${bold(r.missing)} | ${bold(r.early)} | ${num(r.duplicates)} | ${spreadCell(r.latenessMs)} | ${spreadCell(r.brokerLatenessMs, false)} | ${recoveryCell(r)} | ${num(r.failedRequests)} | ${num(r.notAcknowledged)} | ${r.notes.join('; ')} |`,
    );
  }
  return lines.join('\n');
}

/**
 * One line per message, times in epoch ms (empty when it never happened): for plotting lateness
 * over time, or for following one message.
 */
export function messagesCsv(
  messages: ReadonlyMap<string, SentMessage>,
  receipts: ReadonlyMap<string, Receipt[]>,
): string {
  const lines = ['id,created,attempts,acked,status,due,received,appended,receipts'];
  for (const m of messages.values()) {
    const got = receipts.get(m.id) ?? [];
    const first = firstReceipt(got);
    lines.push(
      [
        m.id,
        m.createdAt,
        m.attempts,
        m.ackedAt ?? '',
        m.ackStatus ?? (m.rejected ? 'rejected' : m.gaveUp ? 'gave-up' : ''),
        m.dueMs ?? '',
        first?.receivedAt ?? '',
        first ? Math.min(...got.map((r) => r.appendedAt)) : '',
        got.length,
      ].join(','),
    );
  }
  return `${lines.join('\n')}\n`;
}

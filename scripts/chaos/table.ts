/**
 * The report's text: the table of per-window rows (./report.ts) and messages.csv, one line per
 * message.
 */
import { kindOf } from './judge';
import type { SentMessage } from './load';
import { deliveries, firstReceipt, num } from './report';
import type { Arrivals, Row, Spread } from './report';

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
    '| window | fault | due in (s) | acked | missing | early | old version | duplicates | lateness p50 / p99 / max (ms) | at broker p99 / max (ms) | recovery: received / broker (ms) | failed requests | not acked | notes |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  rows.forEach((r, i) => {
    const span = `${r.fromS.toFixed(1)}–${r.toS === null ? 'end' : r.toS.toFixed(1)}`;
    const bold = (n: number): string => (n > 0 ? `**${num(n)}**` : num(n));
    // The fault is named on the first row of its window.
    const fault = rows[i - 1]?.fromS === r.fromS ? '' : r.description;
    const oldVersion = r.oldVersion === undefined ? '—' : bold(r.oldVersion);
    lines.push(
      `| ${r.window} | ${fault} | ${span} | ${num(r.acknowledged)} | ${bold(r.missing)} | ${bold(r.early)} | ${oldVersion} | ${num(r.duplicates)} | ${spreadCell(r.latenessMs)} | ${spreadCell(r.brokerLatenessMs, false)} | ${recoveryCell(r)} | ${num(r.failedRequests)} | ${num(r.notAcknowledged)} | ${r.notes.join('; ')} |`,
    );
  });
  return lines.join('\n');
}

/**
 * One line per message, times in epoch ms (empty when it never happened): for plotting lateness
 * over time, or for following one message. `receipts` counts deliveries (records; callback
 * requests answered 2xx), `refused` the callback requests the receiver answered with a failure.
 * For a moved message: the `deliverAt` its PATCH asked for, how the PATCH ended, and the
 * versions delivered (`1+2`: both).
 */
export function messagesCsv(messages: Iterable<SentMessage>, arrivals: Arrivals): string {
  const lines = [
    'id,created,attempts,acked,status,due,received,appended,receipts,via,refused,kind,moved_to,patch,versions',
  ];
  for (const m of messages) {
    const all = arrivals[m.via].get(m.id) ?? [];
    const got = deliveries(all);
    const first = firstReceipt(got);
    const appended = got.flatMap((r) => (r.appendedAt === undefined ? [] : [r.appendedAt]));
    const versions = [...new Set(got.map((r) => r.version ?? 1))].sort().join('+');
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
        kindOf(m),
        m.move?.dueMs ?? m.move?.requestedMs ?? '',
        m.move?.outcome ? `${m.move.outcome} ${m.move.answer ?? ''}`.replace(/,/g, ';') : '',
        versions,
      ].join(','),
    );
  }
  return `${lines.join('\n')}\n`;
}

// The chaos suite's judging of rescheduled messages and recurring occurrences, on made-up
// arrivals: run with `npx mocha --require tsx/cjs --extension ts scripts/chaos/test/*.test.ts`.
import assert from 'node:assert/strict';
import type { SentMessage } from '../load';
import { RecurringSchedules } from '../recurring';
import type { RetryingClient } from '../requests';
import { analyse } from '../report';
import type { Arrival, Arrivals, Row, Window } from '../report';
import { MIN_LEAD_MS, newDueTime } from '../reschedule';
import type { MoveOutcome } from '../reschedule';

const T0 = 1_800_000_000_000;
const windows: Window[] = [
  {
    name: 'baseline',
    description: 'no fault',
    start: T0,
    faultEnd: T0,
    end: T0 + 60_000,
    notes: [],
  },
  {
    name: 'kill',
    description: 'kill -9',
    start: T0 + 60_000,
    faultEnd: T0 + 65_000,
    end: Infinity,
    notes: [],
  },
];

/** A Kafka message acknowledged at T0 + 1 s, due at `dueMs`; moved to `movedTo` when given. */
function message(
  id: string,
  dueMs: number,
  move?: { outcome: MoveOutcome; to: number; answer?: string },
): SentMessage {
  return {
    id,
    via: 'kafka',
    createdAt: T0,
    delayMs: dueMs - T0,
    attempts: 1,
    failures: [],
    ackedAt: T0 + 1_000,
    ackStatus: 201,
    dueMs,
    ...(move
      ? {
          move: {
            attempts: 1,
            failures: [],
            requestedMs: move.to,
            outcome: move.outcome,
            answer: move.answer ?? (move.outcome === 'moved' ? '200' : '409 delivery_in_progress'),
            ...(move.outcome === 'moved' ? { ackedAt: T0 + 1_100, dueMs: move.to } : {}),
          },
        }
      : {}),
  };
}

function record(at: number, deliverAt: number, version = 1): Arrival {
  return { receivedAt: at + 5, appendedAt: at, deliverAt, version };
}

function judge(
  messages: SentMessage[],
  kafka: Record<string, Arrival[]>,
): { rows: Row[]; moved: (window: string) => Row; findings: ReturnType<typeof analyse> } {
  const arrivals: Arrivals = { kafka: new Map(Object.entries(kafka)), http: new Map() };
  const findings = analyse(windows, messages, arrivals, ['kafka', 'moved', 'recurring'], T0);
  const moved = (window: string): Row => {
    const row = findings.rows.find((r) => r.window === `${window} (moved)`);
    assert.ok(row, `a row ${window} (moved)`);
    return row;
  };
  return { rows: findings.rows, moved, findings };
}

describe('chaos judging of rescheduled messages', () => {
  const due = T0 + 10_000;
  const later = T0 + 62_000;

  it('files a moved message under its new due time and accepts version 2 there', () => {
    const { moved, findings } = judge([message('m', due, { outcome: 'moved', to: later })], {
      m: [record(later + 3, later, 2)],
    });
    assert.equal(moved('baseline').acknowledged, 0);
    const row = moved('kill');
    assert.deepEqual(
      [row.acknowledged, row.missing, row.early, row.oldVersion, row.duplicates],
      [1, 0, 0, 0, 0],
    );
    assert.equal(row.latenessMs?.max, 8);
    assert.deepEqual(findings.dueMismatchIds, []);
    assert.match(row.notes.join(' '), /moved \(200\): 1/);
  });

  it('counts the old version delivered after a 200, even at the old time', () => {
    const { moved, findings } = judge([message('m', due, { outcome: 'moved', to: later })], {
      m: [record(due + 2, due, 1)],
    });
    assert.equal(moved('kill').oldVersion, 1);
    assert.deepEqual(findings.oldVersionIds, ['m']);
    assert.deepEqual(findings.byKind.moved.oldVersion, 1);
  });

  it('counts version 2 before its new time as early', () => {
    const { moved, findings } = judge([message('m', due, { outcome: 'moved', to: later })], {
      m: [record(later - 1, later, 2)],
    });
    assert.equal(moved('kill').early, 1);
    assert.deepEqual(findings.earlyIds, ['m']);
  });

  it('counts a moved message that never arrives as missing', () => {
    const { moved, findings } = judge([message('m', due, { outcome: 'moved', to: later })], {});
    assert.equal(moved('kill').missing, 1);
    assert.deepEqual(findings.missingIds, ['m']);
  });

  it('wants version 1 at the old time after a refused PATCH', () => {
    const refused = { outcome: 'refused' as const, to: later };
    const ok = judge([message('m', due, refused)], { m: [record(due + 1, due, 1)] });
    assert.deepEqual([ok.moved('baseline').acknowledged, ok.moved('baseline').oldVersion], [1, 0]);
    const wrong = judge([message('m', due, refused)], { m: [record(later + 1, later, 2)] });
    assert.equal(wrong.moved('baseline').oldVersion, 1);
  });

  it('takes either version when the PATCH outcome is unknown, but never both', () => {
    const unknown = { outcome: 'unknown' as const, to: later, answer: 'gave up' };
    const v2 = judge([message('m', due, unknown)], { m: [record(later + 1, later, 2)] });
    assert.deepEqual([v2.moved('kill').acknowledged, v2.moved('kill').oldVersion], [1, 0]);
    const v1 = judge([message('m', due, unknown)], { m: [record(due + 1, due, 1)] });
    assert.deepEqual([v1.moved('baseline').acknowledged, v1.moved('baseline').oldVersion], [1, 0]);
    const both = judge([message('m', due, unknown)], {
      m: [record(due + 1, due, 1), record(later + 1, later, 2)],
    });
    assert.equal(both.moved('baseline').oldVersion, 1);
    assert.equal(both.moved('baseline').duplicates, 1);
    // Version 2 is judged against its own time: at the old one it is early.
    const early = judge([message('m', due, unknown)], { m: [record(due + 1, later, 2)] });
    assert.equal(early.moved('kill').early, 1);
  });

  it('leaves plain Kafka messages in their own row, without an old-version count', () => {
    const { rows } = judge([message('k', due)], { k: [record(due + 1, due)] });
    const plain = rows.find((r) => r.window === 'baseline');
    assert.deepEqual([plain?.acknowledged, plain?.oldVersion], [1, undefined]);
  });
});

describe('chaos rescheduling times', () => {
  it('moves at least 500 ms either way and never closer than the lead to now', () => {
    const now = T0;
    for (const r of [0, 0.01, 0.3, 0.49, 0.5, 0.51, 0.99]) {
      for (const due of [now + 1_000, now + 1_600, now + 2_500, now + 4_000]) {
        const moved = newDueTime(due, now, () => r);
        assert.ok(moved >= now + MIN_LEAD_MS, `${moved - now} ms ahead`);
        assert.ok(Math.abs(moved - due) >= 500, `moved by ${moved - due} ms`);
      }
    }
    assert.ok(newDueTime(now + 4_000, now, () => 0.1) < now + 4_000, 'earlier when it can');
    assert.ok(newDueTime(now + 4_000, now, () => 0.9) > now + 4_000, 'later on the other draw');
  });
});

describe('chaos recurring schedules', () => {
  function created(): RecurringSchedules {
    const schedules = new RecurringSchedules({} as RetryingClient, 'topic', 'run', 1);
    schedules.schedules.push({
      id: 'chaos-run-s1',
      createdAt: T0,
      startAt: T0 + 5_000,
      ackedAt: T0 + 200,
      revision: 1,
      attempts: 1,
      failures: [],
    });
    return schedules;
  }

  it('expects one occurrence per second from the start until the load stopped', () => {
    const expected = created().expected(T0 + 8_000);
    assert.deepEqual(
      expected.map((m) => [m.id, m.dueMs]),
      [5_000, 6_000, 7_000].map((ms) => [`chaos-run-s1:1:${T0 + ms}`, T0 + ms]),
    );
    const arrivals = { [`chaos-run-s1:1:${T0 + 5_000}`]: [record(T0 + 5_001, T0 + 5_000)] };
    const { findings } = judge(expected, arrivals);
    const row = findings.rows.find((r) => r.window === 'baseline (recurring)');
    assert.deepEqual([row?.acknowledged, row?.missing], [3, 2]);
  });

  it('calls any other id of the schedule a stray', () => {
    const received = new Map<string, unknown>([
      [`chaos-run-s1:1:${T0 + 6_000}`, []],
      [`chaos-run-s1:1:${T0 + 6_500}`, []],
      [`chaos-run-s1:2:${T0 + 7_000}`, []],
      [`chaos-run-s1:1:${T0 + 4_000}`, []],
      ['chaos-run-7', []],
    ]);
    assert.deepEqual(created().strays(received), [
      `chaos-run-s1:1:${T0 + 6_500}`,
      `chaos-run-s1:2:${T0 + 7_000}`,
      `chaos-run-s1:1:${T0 + 4_000}`,
    ]);
  });
});

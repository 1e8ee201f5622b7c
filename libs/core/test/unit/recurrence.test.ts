import assert from 'node:assert/strict';
import type { RecurrenceSpec } from '@hourglass/core';
import {
  HourglassError,
  Recurrence,
  jitterOf,
  occurrenceId,
  parseDuration,
  parseScheduleCreate,
  planOccurrences,
  previewOccurrences,
} from '@hourglass/core';

const LIMITS = { maxPayloadBytes: 1024, maxDelayMs: 86_400_000, maxBatchSize: 10 };
const at = (iso: string): number => Date.parse(iso);
const iso = (ms: number): string => new Date(ms).toISOString();

function cron(expression: string, timezone: string, extra: Partial<RecurrenceSpec> = {}) {
  return new Recurrence({
    cadence: { kind: 'cron', cron: expression, timezone },
    startAtMs: null,
    endAtMs: null,
    limit: null,
    misfire: 'skip',
    misfireLimit: 100,
    jitterMs: 0,
    ...extra,
  });
}

function every(everyMs: number, anchorMs: number, extra: Partial<RecurrenceSpec> = {}) {
  return new Recurrence({
    cadence: { kind: 'every', everyMs, anchorMs },
    startAtMs: null,
    endAtMs: null,
    limit: null,
    misfire: 'skip',
    misfireLimit: 100,
    jitterMs: 0,
    ...extra,
  });
}

/** `count` occurrences from `fromMs`, as ISO strings. */
function series(recurrence: Recurrence, fromMs: number, count: number): string[] {
  const out: string[] = [];
  let next = recurrence.nextAtOrAfter(fromMs);
  while (next !== null && out.length < count) {
    out.push(iso(next));
    next = recurrence.nextAtOrAfter(next + 1);
  }
  return out;
}

describe('recurrence: DST rules', () => {
  it('skips a fixed local time that does not exist (spring gap, Europe/Berlin 2026-03-29)', () => {
    // 02:30 does not exist on 2026-03-29 in Berlin (02:00 CET -> 03:00 CEST); croner alone would
    // give 03:00 local (01:00Z).
    assert.deepEqual(series(cron('30 2 * * *', 'Europe/Berlin'), at('2026-03-27T12:00:00Z'), 3), [
      '2026-03-28T01:30:00.000Z',
      '2026-03-30T00:30:00.000Z',
      '2026-03-31T00:30:00.000Z',
    ]);
  });

  it('skips the gap for interval expressions too, and for 6-field expressions', () => {
    const half = series(cron('*/30 * * * *', 'Europe/Berlin'), at('2026-03-29T00:15:00Z'), 3);
    // 01:30 CET, then 03:00 and 03:30 CEST: nothing at 02:00 or 02:30 local.
    assert.deepEqual(half, [
      '2026-03-29T00:30:00.000Z',
      '2026-03-29T01:00:00.000Z',
      '2026-03-29T01:30:00.000Z',
    ]);
    assert.deepEqual(
      series(cron('15 30 2 * * *', 'America/New_York'), at('2026-03-07T12:00:00Z'), 2),
      ['2026-03-09T06:30:15.000Z', '2026-03-10T06:30:15.000Z'],
      'New York: 02:30:15 does not exist on 2026-03-08',
    );
  });

  it('fires a local time that occurs twice once, at its first instant (autumn fold)', () => {
    // 2026-10-25 in Berlin: 02:30 CEST (00:30Z), then 02:30 CET (01:30Z) again.
    assert.deepEqual(series(cron('30 2 * * *', 'Europe/Berlin'), at('2026-10-24T12:00:00Z'), 2), [
      '2026-10-25T00:30:00.000Z',
      '2026-10-26T01:30:00.000Z',
    ]);
    // croner runs interval jobs on both instants of 02:00 and 02:30; we keep the first.
    assert.deepEqual(series(cron('*/30 * * * *', 'Europe/Berlin'), at('2026-10-25T00:00:00Z'), 4), [
      '2026-10-25T00:00:00.000Z',
      '2026-10-25T00:30:00.000Z',
      '2026-10-25T02:00:00.000Z',
      '2026-10-25T02:30:00.000Z',
    ]);
  });

  it('keeps every hour of an hourly expression through both transitions', () => {
    const spring = series(cron('0 * * * *', 'Europe/Berlin'), at('2026-03-29T00:00:00Z'), 3);
    assert.deepEqual(spring, [
      '2026-03-29T00:00:00.000Z', // 01:00 CET
      '2026-03-29T01:00:00.000Z', // 03:00 CEST (02:00 does not exist)
      '2026-03-29T02:00:00.000Z',
    ]);
    const autumn = series(cron('0 * * * *', 'Europe/Berlin'), at('2026-10-24T23:00:00Z'), 4);
    assert.deepEqual(autumn, [
      '2026-10-24T23:00:00.000Z', // 01:00 CEST
      '2026-10-25T00:00:00.000Z', // 02:00 CEST
      '2026-10-25T02:00:00.000Z', // 03:00 CET (02:00 CET is the second 02:00)
      '2026-10-25T03:00:00.000Z',
    ]);
  });

  it('applies the rules while catching up (latestBefore)', () => {
    const daily = cron('30 2 * * *', 'Europe/Berlin');
    assert.deepEqual(
      daily.latestBefore(at('2026-03-27T00:00:00Z'), at('2026-03-30T12:00:00Z'), 5).map(iso),
      ['2026-03-27T01:30:00.000Z', '2026-03-28T01:30:00.000Z', '2026-03-30T00:30:00.000Z'],
    );
  });

  it('needs no rules in UTC', () => {
    assert.deepEqual(series(cron('30 2 * * *', 'UTC'), at('2026-03-29T00:00:00Z'), 1), [
      '2026-03-29T02:30:00.000Z',
    ]);
  });
});

describe('recurrence: every, startAt, endAt, limit', () => {
  const anchor = at('2030-01-01T00:00:00Z');

  it('fires at anchor + k * every', () => {
    assert.deepEqual(series(every(30_000, anchor), anchor - 5000, 3), [
      '2030-01-01T00:00:00.000Z',
      '2030-01-01T00:00:30.000Z',
      '2030-01-01T00:01:00.000Z',
    ]);
    assert.equal(every(30_000, anchor).nextAtOrAfter(anchor + 1), anchor + 30_000);
  });

  it('starts at startAt (inclusive) and ends before endAt (exclusive)', () => {
    const bounded = cron('0 * * * *', 'UTC', {
      startAtMs: at('2030-01-01T10:00:00Z'),
      endAtMs: at('2030-01-01T12:00:00Z'),
    });
    assert.deepEqual(series(bounded, at('2030-01-01T00:00:00Z'), 5), [
      '2030-01-01T10:00:00.000Z',
      '2030-01-01T11:00:00.000Z',
    ]);
  });

  it('stops at the limit, counting what was materialised', () => {
    const limited = every(1000, anchor, { limit: 3 });
    const window = {
      nowMs: anchor,
      untilMs: anchor + 60_000,
      misfireGraceMs: 5000,
      maxOccurrences: 100,
    };
    const first = planOccurrences(limited, 's', 1, { nextAtMs: anchor, occurrences: 1 }, window);
    assert.deepEqual(
      first.occurrences.map((o) => o.atMs),
      [anchor, anchor + 1000],
    );
    assert.deepEqual(first.cursor, { nextAtMs: null, occurrences: 3 }, 'ended by the limit');
  });

  it('materialises up to untilMs and at most maxOccurrences per plan', () => {
    const plan = planOccurrences(
      every(1000, anchor),
      'tick',
      2,
      { nextAtMs: anchor, occurrences: 0 },
      { nowMs: anchor, untilMs: anchor + 10_000, misfireGraceMs: 5000, maxOccurrences: 4 },
    );
    assert.equal(plan.occurrences.length, 4);
    assert.equal(plan.occurrences[0]?.id, `tick:2:${anchor}`);
    assert.deepEqual(plan.cursor, { nextAtMs: anchor + 4000, occurrences: 4 });
    const rest = planOccurrences(every(1000, anchor), 'tick', 2, plan.cursor, {
      nowMs: anchor,
      untilMs: anchor + 10_000,
      misfireGraceMs: 5000,
      maxOccurrences: 100,
    });
    assert.deepEqual(
      rest.occurrences.map((o) => o.atMs - anchor),
      [4000, 5000, 6000, 7000, 8000, 9000],
    );
    assert.equal(rest.cursor.nextAtMs, anchor + 10_000);
  });

  it('previews materialised and coming occurrences within the limit', () => {
    const limited = every(1000, anchor, { limit: 5 });
    // Three materialised (the cursor is at +3000), the next two count against the limit.
    assert.deepEqual(
      previewOccurrences(
        limited,
        { nextAtMs: anchor + 3000, occurrences: 3 },
        anchor + 500,
        10,
      ).map((t) => t - anchor),
      [1000, 2000, 3000, 4000],
    );
  });
});

describe('recurrence: misfires', () => {
  const anchor = at('2030-01-01T00:00:00Z');
  const now = anchor + 3_600_000; // the cluster was down for an hour
  const window = {
    nowMs: now,
    untilMs: now + 120_000,
    misfireGraceMs: 60_000,
    maxOccurrences: 1000,
  };
  const minutely = (misfire: 'skip' | 'once' | 'all', misfireLimit = 100) =>
    every(60_000, anchor, { misfire, misfireLimit });

  it('skip: drops the missed occurrences and resumes within the grace', () => {
    const plan = planOccurrences(
      minutely('skip'),
      's',
      1,
      { nextAtMs: anchor, occurrences: 0 },
      window,
    );
    assert.equal(plan.late, true);
    assert.deepEqual(
      plan.occurrences.map((o) => [o.atMs - now, o.missed]),
      [
        [-60_000, false], // within the grace: fired as usual
        [0, false],
        [60_000, false],
      ],
    );
  });

  it('once: fires the latest missed occurrence, once', () => {
    const plan = planOccurrences(
      minutely('once'),
      's',
      1,
      { nextAtMs: anchor, occurrences: 0 },
      window,
    );
    const missed = plan.occurrences.filter((o) => o.missed);
    assert.deepEqual(
      missed.map((o) => o.atMs - now),
      [-120_000],
    );
    assert.equal(plan.cursor.occurrences, 4);
  });

  it('all: fires the missed occurrences, the latest misfireLimit of them', () => {
    const all = planOccurrences(
      minutely('all'),
      's',
      1,
      { nextAtMs: anchor, occurrences: 0 },
      window,
    );
    assert.equal(all.occurrences.filter((o) => o.missed).length, 59, 'the hour minus the grace');
    const capped = planOccurrences(
      minutely('all', 5),
      's',
      1,
      { nextAtMs: anchor, occurrences: 0 },
      window,
    );
    assert.deepEqual(
      capped.occurrences.filter((o) => o.missed).map((o) => (o.atMs - now) / 60_000),
      [-6, -5, -4, -3, -2],
    );
  });

  it('is not late within the grace', () => {
    const plan = planOccurrences(
      minutely('once'),
      's',
      1,
      { nextAtMs: now - 30_000, occurrences: 0 },
      { ...window, misfireGraceMs: 60_000 },
    );
    assert.equal(plan.late, false);
  });
});

describe('recurrence: jitter', () => {
  it('derives the jitter from the occurrence id: the same due time on every materialisation', () => {
    const anchor = at('2030-01-01T00:00:00Z');
    const spec = every(60_000, anchor, { jitterMs: 10_000 });
    const cursor = { nextAtMs: anchor, occurrences: 0 };
    const window = {
      nowMs: anchor,
      untilMs: anchor + 600_000,
      misfireGraceMs: 1000,
      maxOccurrences: 100,
    };
    const once = planOccurrences(spec, 'j', 1, cursor, window);
    const again = planOccurrences(spec, 'j', 1, cursor, window);
    assert.deepEqual(once.occurrences, again.occurrences);
    const offsets = once.occurrences.map((o) => o.dueMs - o.atMs);
    assert.ok(offsets.every((offset) => offset >= 0 && offset <= 10_000));
    assert.ok(new Set(offsets).size > 1, 'not the same offset for every occurrence');
    assert.equal(jitterOf(occurrenceId('j', 1, anchor), 0), 0);
  });
});

describe('schedule requests', () => {
  const now = at('2030-01-01T00:00:00Z');
  const message = { topic: 'orders', payload: { hello: 1 } };
  const refused = (body: unknown): string[] => {
    try {
      parseScheduleCreate(body, LIMITS, now);
    } catch (error) {
      assert.ok(error instanceof HourglassError);
      assert.equal(error.code, 'invalid_request');
      return (error.details ?? []).map((d) => d.path);
    }
    throw new Error('accepted');
  };

  it('reads durations', () => {
    assert.equal(parseDuration('30s'), 30_000);
    assert.equal(parseDuration('1h30m'), 5_400_000);
    assert.equal(parseDuration('250ms'), 250);
    assert.equal(parseDuration('1d'), 86_400_000);
    assert.equal(parseDuration('5 minutes'), null);
    assert.equal(parseDuration(''), null);
  });

  it('accepts every, everyMs and cron, and anchors every one interval after creation', () => {
    const parsed = parseScheduleCreate({ every: '5m', message }, LIMITS, now);
    assert.deepEqual(parsed.spec.cadence, {
      kind: 'every',
      everyMs: 300_000,
      anchorMs: now + 300_000,
    });
    assert.equal(parseScheduleCreate({ everyMs: 2000, message }, LIMITS, now).spec.misfire, 'skip');
    const daily = parseScheduleCreate(
      { cron: '0 9 * * 1', timezone: 'Asia/Shanghai', message, misfire: 'all', misfireLimit: 3 },
      LIMITS,
      now,
    );
    assert.deepEqual(daily.spec.cadence, {
      kind: 'cron',
      cron: '0 9 * * 1',
      timezone: 'Asia/Shanghai',
    });
    assert.equal(daily.spec.misfireLimit, 3);
  });

  it('refuses bad cadences, zones, bounds and templates with the field named', () => {
    assert.deepEqual(refused({ every: '500ms', message }), ['every']);
    assert.deepEqual(refused({ everyMs: 999, message }), ['everyMs']);
    assert.deepEqual(refused({ cron: '* * *', message }), ['cron']);
    assert.deepEqual(refused({ cron: '61 * * * *', message }), ['cron']);
    assert.deepEqual(refused({ cron: '0 0 0 * * * 2030', message }), ['cron']);
    assert.deepEqual(refused({ cron: '0 9 * * *', timezone: 'Mars/Olympus', message }), [
      'timezone',
    ]);
    assert.deepEqual(refused({ every: '1m', cron: '* * * * *', message }), ['cron']);
    assert.deepEqual(refused({ every: '1m', timezone: 'UTC', message }), ['timezone']);
    assert.deepEqual(
      refused({
        every: '1m',
        startAt: '2030-01-02T00:00:00Z',
        endAt: '2030-01-01T00:00:00Z',
        message,
      }),
      ['endAt'],
    );
    assert.deepEqual(refused({ every: '1m', misfire: 'sometimes', message }), ['misfire']);
    assert.deepEqual(refused({ every: '1m', misfireLimit: 5, message }), ['misfireLimit']);
    assert.deepEqual(refused({ every: '1m', message: { ...message, delayMs: 5 } }), [
      'message/delayMs',
    ]);
    assert.deepEqual(refused({ every: '1m', message: { payload: 1 } }), ['message/topic']);
    assert.deepEqual(refused({ every: '1m' }), ['message']);
    assert.deepEqual(refused({ id: 'a:b', every: '1m', message }), ['id']);
  });
});

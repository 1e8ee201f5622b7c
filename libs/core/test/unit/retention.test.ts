import assert from 'node:assert/strict';
import type { AppRetention } from '@hourglass/core';
import { DAY_MS, archiveWindow, dayOf, planRemoval, retentionOf } from '@hourglass/core';

const DEFAULTS = { delivered: 7 * DAY_MS, cancelled: 7 * DAY_MS, failed: 30 * DAY_MS };
const NOW = 1_900_000_000_000;

describe('retention planning', () => {
  it('cuts every (app, state) off at now minus its retention, the app override first', () => {
    const overrides = new Map<string, AppRetention>([
      ['short', { deliveredMs: DAY_MS, cancelledMs: null, failedMs: 90 * DAY_MS }],
    ]);
    const plan = planRemoval(
      [
        { app: 'short', state: 'failed' },
        { app: 'other', state: 'cancelled' },
        { app: 'short', state: 'delivered' },
        { app: 'short', state: 'cancelled' },
        { app: 'other', state: 'failed' },
      ],
      overrides,
      DEFAULTS,
      NOW,
    );
    assert.deepEqual(plan, [
      { app: 'other', state: 'cancelled', beforeMs: NOW - 7 * DAY_MS },
      { app: 'other', state: 'failed', beforeMs: NOW - 30 * DAY_MS },
      { app: 'short', state: 'delivered', beforeMs: NOW - DAY_MS },
      // No override for cancelled: the default.
      { app: 'short', state: 'cancelled', beforeMs: NOW - 7 * DAY_MS },
      { app: 'short', state: 'failed', beforeMs: NOW - 90 * DAY_MS },
    ]);
  });

  it('leaves out groups whose cutoff is before the epoch (nothing can be that old)', () => {
    assert.deepEqual(planRemoval([{ app: 'a', state: 'failed' }], new Map(), DEFAULTS, DAY_MS), []);
  });

  it('picks the override of the state asked for', () => {
    const retention: AppRetention = { deliveredMs: 1, cancelledMs: 2, failedMs: null };
    assert.equal(retentionOf('delivered', DEFAULTS, retention), 1);
    assert.equal(retentionOf('cancelled', DEFAULTS, retention), 2);
    assert.equal(retentionOf('failed', DEFAULTS, retention), 30 * DAY_MS);
    assert.equal(retentionOf('failed', DEFAULTS), 30 * DAY_MS);
  });

  it('keeps archive days from today minus the retention through tomorrow (UTC days)', () => {
    const noon = Date.UTC(2026, 11, 2, 12);
    const today = dayOf(noon);
    assert.equal(dayOf(Date.UTC(2026, 11, 2)), today);
    assert.equal(dayOf(Date.UTC(2026, 11, 2) - 1), today - 1);
    assert.deepEqual(archiveWindow(noon, 30), {
      dropBeforeDay: today - 30,
      keepFromMs: (today - 30) * DAY_MS,
      untilDay: today + 1,
    });
  });
});

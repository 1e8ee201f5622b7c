import assert from 'node:assert/strict';
import type { ErrorDetail } from '@hourglass/core';
import { DAY_MS } from '@hourglass/core';
import { Cron } from 'croner';
import { RETENTION_CRON_OPTIONS as CRON_OPTIONS, nextRunAt } from '../../src/retention';
import { parseRetentionPatch, retentionView } from '../../src/app-retention-input';

describe('retention job: schedule and app input', () => {
  it('runs a 5-field cron at the next whole minute, strictly after now', () => {
    const cron = new Cron('* * * * *', CRON_OPTIONS);
    assert.equal(nextRunAt(cron, Date.UTC(2026, 0, 1, 1, 0, 30)), Date.UTC(2026, 0, 1, 1, 1));
    assert.equal(nextRunAt(cron, Date.UTC(2026, 0, 1, 1, 1)), Date.UTC(2026, 0, 1, 1, 2));
  });

  it("accepts delay-server's archiveScheduler (Quartz: seconds, 0/3 and ?): every 3 hours", () => {
    const cron = new Cron('0 0 0/3 * * ?', CRON_OPTIONS);
    assert.equal(nextRunAt(cron, Date.UTC(2026, 0, 1, 1, 0)), Date.UTC(2026, 0, 1, 3, 0));
    assert.equal(nextRunAt(cron, Date.UTC(2026, 0, 1, 21, 0, 1)), Date.UTC(2026, 0, 2, 0, 0));
  });

  it('parses an app retention change in days, null restoring the default', () => {
    const problems: ErrorDetail[] = [];
    const patch = parseRetentionPatch(
      { deliveredDays: 1.5, failedDays: null },
      'retention/',
      problems,
    );
    assert.deepEqual(problems, []);
    assert.deepEqual(patch, { deliveredMs: 1.5 * DAY_MS, failedMs: null });
    assert.deepEqual(
      retentionView({ deliveredMs: DAY_MS / 2, cancelledMs: null, failedMs: null }),
      {
        deliveredDays: 0.5,
        cancelledDays: null,
        failedDays: null,
      },
    );
    assert.deepEqual(retentionView(undefined), {
      deliveredDays: null,
      cancelledDays: null,
      failedDays: null,
    });
  });

  it('refuses days out of range and unknown fields, naming each', () => {
    const problems: ErrorDetail[] = [];
    parseRetentionPatch(
      { deliveredDays: 0, cancelledDays: 40_000, failedDays: Number.NaN, keepDays: 3 } as never,
      'retention/',
      problems,
    );
    assert.deepEqual(problems.map((p) => p.path).sort(), [
      'retention/cancelledDays',
      'retention/deliveredDays',
      'retention/failedDays',
      'retention/keepDays',
    ]);
  });
});

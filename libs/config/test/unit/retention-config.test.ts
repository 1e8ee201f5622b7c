import assert from 'node:assert/strict';
import { ConfigError, cronProblem, loadConfig } from '@hourglass/config';

describe('config: retention and archive', () => {
  it('has the documented defaults', () => {
    const config = loadConfig({ env: {} });
    assert.deepEqual(config.retention, { deliveredDays: 7, cancelledDays: 7, failedDays: 30 });
    assert.equal(config.archive.scheduler, '* * * * *');
    assert.equal(config.archive.mode, 'delete');
    assert.equal(config.archive.batchSize, 5000);
  });

  it("accepts 5- and 6-field crons, delay-server's Quartz form included", () => {
    for (const expression of ['* * * * *', '*/5 * * * * *', '0 0 0/3 * * ?', '0 3 * * MON'])
      assert.equal(cronProblem(expression), null, expression);
  });

  it('refuses a bad cron, a bad mode and a non-positive retention at start, naming the key', () => {
    const refused = (overrides: Record<string, unknown>, key: RegExp): void =>
      assert.throws(
        () => loadConfig({ env: {}, overrides }),
        (error: unknown) => error instanceof ConfigError && key.test(error.message),
      );
    refused({ archive: { scheduler: 'every minute' } }, /archive\.scheduler: not a cron/);
    refused({ archive: { scheduler: '61 * * * *' } }, /archive\.scheduler/);
    refused({ archive: { mode: 'copy' } }, /archive\.mode/);
    refused({ retention: { failedDays: 0 } }, /retention\.failedDays/);
    const config = loadConfig({
      env: { HOURGLASS__ARCHIVE__SCHEDULER: "'0 0 0/3 * * ?'", HOURGLASS__ARCHIVE__MODE: 'move' },
    });
    assert.equal(config.archive.scheduler, '0 0 0/3 * * ?');
    assert.equal(config.archive.mode, 'move');
  });
});

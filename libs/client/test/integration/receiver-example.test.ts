/**
 * examples/webhook-receiver end to end against an in-process node that may call loopback
 * receivers: three callbacks handled by name through the SDK's CallbackReceiver, one of them
 * after a failed first attempt that Hourglass retried.
 */
import assert from 'node:assert/strict';
import { run } from '../../../../examples/webhook-receiver/main';
import type { TestCluster } from '../support/cluster';
import { startTestCluster } from '../support/cluster';

const ADMIN = 'receiver-example-admin-0001';

describe('examples/webhook-receiver', function () {
  let cluster: TestCluster;

  before(async () => {
    cluster = await startTestCluster('webhook-receiver', [], {
      auth: { adminToken: ADMIN },
      callbacks: { allowNetworks: ['127.0.0.0/8'] },
    });
  });

  after(async () => {
    await cluster?.stop();
  });

  it('handles the three callbacks by name, the failing one on its retry', async () => {
    const lines: string[] = [];
    const summary = await run({
      endpoint: { http: cluster.node.httpUrl },
      adminUrl: cluster.node.httpUrl,
      adminToken: ADMIN,
      token: undefined,
      secret: undefined,
      deadlineMs: 20_000,
      log: (line) => lines.push(line),
    });
    const output = lines.join('\n');
    assert.ok(summary.ok, output);
    assert.deepEqual(
      summary.handled.map((h) => [h.name, h.attempt]).sort(),
      [
        ['order.charge', 2],
        ['order.remind', 1],
        ['order.timeout', 1],
      ],
      output,
    );
    assert.equal(summary.failures, 1, output);
    assert.deepEqual(Object.values(summary.states), ['delivered', 'delivered', 'delivered']);
    // Never early: each callback came at or after its due time.
    for (const h of summary.handled) assert.ok(h.lateMs >= 0, `${h.name} ${h.lateMs} ms early`);
    assert.deepEqual(
      summary.chargeAttempts.map((a) => [a.attempt, a.status]),
      [
        [1, 500],
        [2, 200],
      ],
      output,
    );
    assert.match(summary.chargeAttempts[0]?.response ?? '', /payment provider unavailable/);
    assert.ok(!lines.some((line) => line.includes('refused a request')), output);
  });
});

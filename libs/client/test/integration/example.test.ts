/**
 * examples/order-timeout end to end against an in-process node: 5 orders, 3 paid, and exactly the
 * 2 unpaid ones time out, read from Kafka through the SDK's consumer helper. Run over both
 * transports, since the example works with either endpoint.
 */
import assert from 'node:assert/strict';
import { run } from '../../../../examples/order-timeout/main';
import type { TestCluster } from '../support/cluster';
import { TOKEN, startTestCluster } from '../support/cluster';

describe('examples/order-timeout', function () {
  let cluster: TestCluster;

  before(async () => {
    cluster = await startTestCluster('order-timeout');
  });

  after(async () => {
    await cluster?.stop();
  });

  for (const transport of ['http', 'grpc'] as const) {
    it(`times out exactly the unpaid orders (${transport})`, async () => {
      const lines: string[] = [];
      const summary = await run({
        endpoint:
          transport === 'http'
            ? { http: cluster.node.httpUrl }
            : { grpc: cluster.node.grpcAddress },
        token: TOKEN,
        topic: cluster.topic,
        brokers: cluster.brokers,
        log: (line) => lines.push(line),
      });
      assert.ok(summary.ok, lines.join('\n'));
      assert.equal(summary.orders.length, 5);
      assert.equal(summary.paid.length, 3);
      assert.deepEqual([...summary.timedOut].sort(), summary.orders.slice(3).sort());
      assert.deepEqual(summary.wronglyTimedOut, []);
      assert.equal(
        lines.filter((line) => /^\+\S+ timeout /.test(line)).length,
        2,
        lines.join('\n'),
      );
    });
  }
});

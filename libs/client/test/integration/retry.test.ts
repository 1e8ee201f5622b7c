/**
 * A retry after a lost answer never makes a second message. A proxy between the SDK and a real
 * node lets the request through and cuts the connection just before the answer
 * (test/support/dropping-proxy.ts); the SDK sees a network error, retries with the id it generated
 * before the first attempt, and the node answers with the message the first attempt created.
 * Checked in Postgres (one row) and in Kafka (one record).
 */
import assert from 'node:assert/strict';
import { HourglassClient } from '../../src';
import type { TestCluster } from '../support/cluster';
import { TOKEN, sleep, startTestCluster } from '../support/cluster';
import type { DroppingProxy } from '../support/dropping-proxy';
import { startDroppingProxy } from '../support/dropping-proxy';

describe('SDK retries after a dropped answer', function () {
  let cluster: TestCluster;

  before(async () => {
    cluster = await startTestCluster('sdk-retry');
  });

  after(async () => {
    await cluster?.stop();
  });

  for (const transport of ['http', 'grpc'] as const) {
    describe(`over ${transport}`, () => {
      let proxy: DroppingProxy;
      let client: HourglassClient;

      before(async () => {
        const target =
          transport === 'http'
            ? new URL(cluster.node.httpUrl)
            : new URL(`http://${cluster.node.grpcAddress}`);
        proxy = await startDroppingProxy(
          { host: target.hostname, port: Number(target.port) },
          transport === 'http' ? 'http1' : 'h2',
        );
        client = new HourglassClient(
          transport === 'http' ? { http: `http://${proxy.address}` } : { grpc: proxy.address },
          {
            token: TOKEN,
            retries: 5,
            initialBackoffMs: 50,
            timeoutMs: 5000,
          },
        );
        // Open the connection first, so the cut hits a call and not the connection set-up.
        await client.get('warm-up').catch(() => undefined);
      });

      after(async () => {
        client?.close();
        await proxy?.close();
      });

      it('schedule: one row in Postgres and one Kafka record', async () => {
        const rowsBefore = await cluster.countMessages(cluster.topic);
        proxy.dropNextResponse();
        const started = Date.now();
        const result = await client.schedule({
          topic: cluster.topic,
          payload: { transport },
          delayMs: 500,
        });
        const tookMs = Date.now() - started;
        assert.equal(proxy.dropped, 1, 'the proxy did not cut the answer');
        // The first attempt created it; the retry was answered with the existing message.
        assert.equal(result.created, false);
        assert.equal(await cluster.countMessages(cluster.topic), rowsBefore + 1);
        await cluster.collector.waitForRecord(
          (r) => r.headers['hourglass-id'] === result.message.id,
          20_000,
        );
        await sleep(1500); // room for a duplicate to show up
        assert.equal(cluster.recordsWithId(result.message.id).length, 1);
        console.log(`      (${transport}: schedule with one dropped answer took ${tookMs} ms)`);
      });

      it('scheduleBatch: every message once', async () => {
        const rowsBefore = await cluster.countMessages(cluster.topic);
        proxy.dropNextResponse();
        const results = await client.scheduleBatch(
          [1, 2, 3].map((n) => ({ topic: cluster.topic, payload: n, delayMs: 60_000 })),
        );
        assert.equal(proxy.dropped, 2);
        assert.deepEqual(
          results.map((r) => r.ok && r.created),
          [false, false, false],
        );
        assert.equal(await cluster.countMessages(cluster.topic), rowsBefore + 3);
      });

      it('cancel: a retry that finds the message already cancelled succeeds', async () => {
        const { message } = await client.schedule({
          topic: cluster.topic,
          payload: 'to cancel',
          delayMs: 60_000,
        });
        proxy.dropNextResponse();
        assert.deepEqual(await client.cancel(message.id), { id: message.id, state: 'cancelled' });
        assert.equal(proxy.dropped, 3);
        assert.equal((await client.get(message.id)).state, 'cancelled');
      });
    });
  }
});

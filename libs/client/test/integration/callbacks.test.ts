/**
 * HTTP callbacks through the SDK, over HTTP and over gRPC against the same in-process node (real
 * Postgres and Kafka) calling a real receiver on 127.0.0.1 (callbacks.allowNetworks opens
 * loopback): the callback is called, its target and the message become `delivered`, `attempts()`
 * lists the attempt, and `retry()` re-arms a failed message. Both transports must answer alike.
 */
import assert from 'node:assert/strict';
import type { Message } from '../../src';
import { HourglassClient, HourglassClientError } from '../../src';
import type { ReceivedCall } from '../support/callback-sink';
import { CallbackSink, pollUntil } from '../support/callback-sink';
import type { TestCluster } from '../support/cluster';
import { TOKEN, startTestCluster } from '../support/cluster';

type TransportName = 'http' | 'grpc';
const TRANSPORTS: readonly TransportName[] = ['http', 'grpc'];

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    assert.ok(
      error instanceof HourglassClientError,
      `expected a HourglassClientError: ${String(error)}`,
    );
    return error.code;
  }
  assert.fail('expected the call to fail');
}

describe('the SDK with HTTP callbacks (HTTP and gRPC transports, same node)', function () {
  const sink = new CallbackSink();
  let cluster: TestCluster;
  const clients = new Map<TransportName, HourglassClient>();
  const client = (transport: TransportName): HourglassClient => clients.get(transport)!;

  /** The message once it left `scheduled` (nothing signals the state written after the answer). */
  const settled = (transport: TransportName, id: string): Promise<Message> =>
    pollUntil(
      () => client(transport).get(id),
      (message) => message.state !== 'scheduled',
    );

  before(async () => {
    await sink.start();
    cluster = await startTestCluster('sdk-callbacks', [], {
      callbacks: { allowNetworks: ['127.0.0.0/8'] },
    });
    clients.set('http', new HourglassClient({ http: cluster.node.httpUrl }, { token: TOKEN }));
    clients.set('grpc', new HourglassClient({ grpc: cluster.node.grpcAddress }, { token: TOKEN }));
  });

  after(async () => {
    for (const each of clients.values()) each.close();
    await cluster?.stop();
    await sink.stop();
  });

  for (const transport of TRANSPORTS) {
    describe(`over ${transport}`, () => {
      it('calls the callback; the target and the message become delivered; attempts() lists it', async () => {
        const id = `cb-${transport}-${Date.now()}`;
        const { created, message } = await client(transport).schedule({
          id,
          payload: { order: 42 },
          delayMs: 0,
          callback: {
            url: sink.url(`/hook/${transport}`),
            name: 'order.timeout',
            expectBody: 'ok',
          },
          retry: { maxAttempts: 2, jitter: false },
        });
        assert.equal(created, true);
        assert.equal(message.topic, null);
        assert.equal(message.targets.length, 1);
        const [target] = message.targets;
        assert.ok(target?.type === 'http');
        assert.equal(target.url, sink.url(`/hook/${transport}`));
        assert.equal(target.method, 'POST');
        assert.equal(target.name, 'order.timeout');
        assert.equal(message.retry?.maxAttempts, 2);
        assert.equal(message.retry?.jitter, false);
        assert.equal(message.retry?.strategy, 'exponential');

        const received: ReceivedCall = await sink.waitForId(id);
        assert.equal(received.body, '{"order":42}');
        assert.equal(received.headers['hourglass-app'], 'sdk');
        assert.equal(received.headers['webhook-id'], id);

        const delivered = await settled(transport, id);
        assert.equal(delivered.state, 'delivered');
        assert.equal(delivered.targets[0]?.state, 'delivered');
        assert.equal(delivered.targets[0]?.lastStatus, 200);
        assert.ok(delivered.targets[0]?.finishedAt instanceof Date);
        assert.ok(delivered.finishedAt instanceof Date);

        const attempts = await client(transport).attempts(id);
        assert.equal(attempts.length, 1);
        assert.equal(attempts[0]?.target, 0);
        assert.equal(attempts[0]?.type, 'http');
        assert.equal(attempts[0]?.attempt, 1);
        assert.equal(attempts[0]?.status, 200);
        assert.ok(attempts[0]?.at instanceof Date);
        assert.ok(Number.isFinite(attempts[0]?.durationMs));

        // The other transport reads the same message and attempts.
        const other = transport === 'http' ? 'grpc' : 'http';
        assert.deepEqual(await client(other).get(id), delivered);
        assert.deepEqual(await client(other).attempts(id), attempts);
      });

      it('delivers a topic and a callback as two targets, Kafka first', async () => {
        const id = `cb-both-${transport}-${Date.now()}`;
        const { message } = await client(transport).schedule({
          id,
          topic: cluster.topic,
          key: 'k',
          payloadBytes: Buffer.from([7, 8]),
          delayMs: 0,
          callback: { url: sink.url(`/both/${transport}`) },
        });
        assert.equal(message.topic, cluster.topic);
        assert.deepEqual(
          message.targets.map((t) => t.type),
          ['kafka', 'http'],
        );
        const [record, received] = await Promise.all([
          cluster.collector.waitForRecord((r) => r.headers['hourglass-id'] === id, 20_000),
          sink.waitForId(id),
        ]);
        assert.deepEqual(record.value, Buffer.from([7, 8]));
        assert.equal(received.headers['content-type'], 'application/octet-stream');
        const delivered = await settled(transport, id);
        assert.equal(delivered.state, 'delivered');
        assert.deepEqual(
          delivered.targets.map((t) => t.state),
          ['delivered', 'delivered'],
        );
      });

      it('retry() re-arms a failed message; not_failed when it is not failed', async () => {
        const id = `cb-gone-${transport}-${Date.now()}`;
        const path = `/gone/${transport}`;
        sink.answer(path, 410, 'gone');
        await client(transport).schedule({
          id,
          payload: 'x',
          delayMs: 0,
          targets: [{ url: sink.url(path) }],
        });
        await sink.waitForId(id);
        const failed = await settled(transport, id);
        assert.equal(failed.state, 'failed');
        assert.equal(failed.targets[0]?.state, 'failed');
        assert.equal(failed.targets[0]?.lastStatus, 410);

        sink.answer(path, 200, 'ok');
        const retried = await client(transport).retry(id);
        // Re-armed due now: by the time the answer is read, the owner may have delivered it.
        assert.ok(['scheduled', 'delivered'].includes(retried.state), retried.state);
        assert.ok(
          ['pending', 'delivered'].includes(retried.targets[0]?.state ?? ''),
          retried.targets[0]?.state,
        );
        await sink.waitForId(id, 2);
        const delivered = await settled(transport, id);
        assert.equal(delivered.state, 'delivered');
        assert.deepEqual(
          (await client(transport).attempts(id)).map((a) => [a.status, a.response]),
          [
            [410, 'gone'],
            [200, 'ok'],
          ],
        );
        assert.equal(await codeOf(client(transport).retry(id)), 'not_failed');
        assert.equal(await codeOf(client(transport).attempts('no-such-id')), 'not_found');
      });

      it('refuses a callback to a private literal address at once', async () => {
        let error: unknown;
        try {
          await client(transport).schedule({
            payload: 1,
            delayMs: 0,
            callback: { url: 'http://10.0.0.1/hook' },
          });
        } catch (caught) {
          error = caught;
        }
        assert.ok(error instanceof HourglassClientError);
        assert.equal(error.code, 'invalid_request');
        assert.equal(error.retriable, false);
        assert.deepEqual(
          error.details.map((d) => d.path),
          ['callback/url'],
        );
      });
    });
  }
});

/**
 * `client.update` over HTTP and over gRPC against the same in-process node (real Postgres and
 * Kafka, its own schema and topic): rescheduling earlier and later, replacing the payload, the
 * version in every answer, conditional updates that lose (`version_mismatch`), and refusals once a
 * message is delivered. Then mixed: a message changed over one transport and read over the other.
 */
import assert from 'node:assert/strict';
import type { Message } from '../../src';
import { pollUntil } from '@hourglass/testkit';
import { HourglassClient, HourglassClientError, decodeDelivery } from '../../src';
import type { TestCluster } from '../support/cluster';
import { TOKEN, asKafkaRecord, startTestCluster } from '../support/cluster';

type TransportName = 'http' | 'grpc';

async function refusal(promise: Promise<unknown>): Promise<HourglassClientError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(
      error instanceof HourglassClientError,
      `expected a HourglassClientError: ${String(error)}`,
    );
    return error;
  }
  assert.fail('expected the call to fail');
}

describe('client.update over HTTP and gRPC (same suite, same node)', function () {
  let cluster: TestCluster;
  const clients = new Map<TransportName, HourglassClient>();
  const run = Date.now().toString(36);

  before(async () => {
    cluster = await startTestCluster('sdk-update');
    clients.set('http', new HourglassClient({ http: cluster.node.httpUrl }, { token: TOKEN }));
    clients.set('grpc', new HourglassClient({ grpc: cluster.node.grpcAddress }, { token: TOKEN }));
  });

  after(async () => {
    for (const client of clients.values()) client.close();
    await cluster?.stop();
  });

  const waitForDelivery = (id: string) =>
    cluster.collector.waitForRecord((record) => record.headers['hourglass-id'] === id, 30_000);

  for (const transport of ['http', 'grpc'] as const) {
    describe(`over ${transport}`, () => {
      const client = (): HourglassClient => clients.get(transport)!;

      it('reschedules earlier with a new payload, and refuses changes once delivered', async () => {
        const { message } = await client().schedule({
          id: `earlier-${transport}-${run}`,
          topic: cluster.topic,
          key: 'k-1',
          payload: { v: 1 },
          delayMs: 3_600_000,
        });
        assert.equal(message.version, 1);
        const deliverAt = new Date(Date.now() + 300);
        const updated = await client().update(message.id, { deliverAt, payload: { v: 2 } });
        assert.equal(updated.version, 2);
        assert.equal(updated.deliverAt.getTime(), deliverAt.getTime());
        assert.equal(updated.key, 'k-1', 'fields not named are kept');
        const delivery = decodeDelivery(asKafkaRecord(await waitForDelivery(message.id)));
        assert.deepEqual(delivery.json(), { v: 2 });
        assert.equal(delivery.key, 'k-1');
        // The record can be on Kafka a moment before the row says delivered.
        const delivered = await pollUntil(
          () => client().get(message.id),
          (read) => read.state === 'delivered',
        );
        assert.equal(delivered.state, 'delivered');
        const refused = await refusal(client().update(message.id, { delayMs: 60_000 }));
        assert.equal(refused.code, 'already_delivered');
        assert.equal(refused.retriable, false);
      });

      it('reschedules later: the old due time never fires', async () => {
        const { message } = await client().schedule({
          id: `later-${transport}-${run}`,
          topic: cluster.topic,
          payloadBytes: Buffer.from('old'),
          delayMs: 1500,
        });
        const updated = await client().update(message.id, {
          delayMs: 3_600_000,
          payloadBytes: Buffer.from([0, 1, 2]),
          headers: { 'x-changed': 'yes' },
        });
        assert.ok(updated.deliverAt.getTime() > Date.now() + 3_500_000);
        // Delivered after the old due time: by then the old version would have been too.
        const control = await client().schedule({
          topic: cluster.topic,
          payload: 'control',
          delayMs: 2000,
        });
        await waitForDelivery(control.message.id);
        assert.deepEqual(cluster.recordsWithId(message.id), []);
        const read = await client().get(message.id);
        assert.equal(read.state, 'scheduled');
        assert.equal(read.version, 2);
      });

      it('applies ifVersion only at that version; the loser gets version_mismatch', async () => {
        const { message } = await client().schedule({
          id: `conditional-${transport}-${run}`,
          topic: cluster.topic,
          key: 'k',
          payload: 0,
          delayMs: 3_600_000,
        });
        const first = await client().update(message.id, { payload: 1 }, { ifVersion: 1 });
        assert.equal(first.version, 2);
        const lost = await refusal(client().update(message.id, { payload: 2 }, { ifVersion: 1 }));
        assert.equal(lost.code, 'version_mismatch');
        assert.equal(lost.retriable, false);
        assert.deepEqual(lost.details, [{ path: 'If-Match', message: 'current ETag: "2"' }]);
        const removed = await client().update(message.id, { key: null }, { ifVersion: 2 });
        assert.equal(removed.key, null);
        assert.equal(removed.version, 3);
        const read: Message = await client().get(message.id);
        assert.deepEqual(read, removed);
      });

      it('passes the server refusals on: nothing named, unknown ids, bad merged messages', async () => {
        const { message } = await client().schedule({
          id: `refusals-${transport}-${run}`,
          topic: cluster.topic,
          payload: 0,
          delayMs: 3_600_000,
        });
        assert.equal((await refusal(client().update(message.id, {}))).code, 'invalid_request');
        assert.equal(
          (await refusal(client().update(`nothing-${run}`, { delayMs: 1 }))).code,
          'not_found',
        );
        assert.equal(
          (await refusal(client().update(message.id, { topic: 'not.granted' }))).code,
          'topic_not_allowed',
        );
        assert.equal((await client().get(message.id)).version, 1, 'refusals change nothing');
      });
    });
  }

  it('changes over one transport what the other reads, with the same version', async () => {
    const http = clients.get('http')!;
    const grpc = clients.get('grpc')!;
    const { message } = await http.schedule({
      id: `mixed-${run}`,
      topic: cluster.topic,
      payload: 'a',
      delayMs: 3_600_000,
    });
    const viaGrpc = await grpc.update(message.id, { delayMs: 7_200_000 }, { ifVersion: 1 });
    assert.deepEqual(await http.get(message.id), viaGrpc);
    const viaHttp = await http.update(message.id, { payload: 'b' }, { ifVersion: viaGrpc.version });
    assert.deepEqual(await grpc.get(message.id), viaHttp);
    assert.equal(viaHttp.version, 3);
  });
});

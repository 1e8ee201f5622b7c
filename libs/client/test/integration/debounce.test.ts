/**
 * `client.schedule({ debounce })` over HTTP and over gRPC against the same in-process node (real
 * Postgres and Kafka, its own schema and topic): ten sequential trailing sends give one delivery of
 * the last payload, ten leading ones one delivery of the first, `created` / `debounced` on every
 * result, the server's refusals passed on with their detail paths (also per item of a batch), and
 * one key debounced across both transports.
 */
import assert from 'node:assert/strict';
import type { ScheduleResult } from '../../src';
import { HourglassClient, HourglassClientError, decodeDelivery } from '../../src';
import type { TestCluster } from '../support/cluster';
import { TOKEN, asKafkaRecord, startTestCluster } from '../support/cluster';

type TransportName = 'http' | 'grpc';
const SENDS = 10;

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

describe('client.schedule with debounce over HTTP and gRPC (same suite, same node)', function () {
  let cluster: TestCluster;
  const clients = new Map<TransportName, HourglassClient>();
  const run = Date.now().toString(36);

  before(async () => {
    cluster = await startTestCluster('sdk-debounce');
    clients.set('http', new HourglassClient({ http: cluster.node.httpUrl }, { token: TOKEN }));
    clients.set('grpc', new HourglassClient({ grpc: cluster.node.grpcAddress }, { token: TOKEN }));
  });

  after(async () => {
    for (const client of clients.values()) client.close();
    await cluster?.stop();
  });

  const waitForDelivery = (id: string) =>
    cluster.collector.waitForRecord((record) => record.headers['hourglass-id'] === id, 30_000);

  /** A plain message due after `delayMs`: once it arrived, so did anything due before it. */
  async function sentinel(client: HourglassClient, delayMs: number): Promise<void> {
    const { message } = await client.schedule({
      topic: cluster.topic,
      payload: 'sentinel',
      delayMs,
    });
    await waitForDelivery(message.id);
  }

  for (const transport of ['http', 'grpc'] as const) {
    describe(`over ${transport}`, () => {
      const client = (): HourglassClient => clients.get(transport)!;

      it('trailing: ten sends, one delivery of the last payload; debounced on every result', async () => {
        const key = `cart-trailing-${transport}-${run}`;
        const results: ScheduleResult[] = [];
        for (let index = 0; index < SENDS; index++)
          results.push(
            await client().schedule({
              topic: cluster.topic,
              payload: { index },
              debounce: { key, windowMs: 1500 },
            }),
          );
        const [first, ...rest] = results;
        assert.equal(first!.created, true);
        assert.equal(first!.debounced, false);
        for (const result of rest) {
          assert.equal(result.created, false);
          assert.equal(result.debounced, true);
          assert.equal(result.message.id, first!.message.id);
        }
        const last = results[SENDS - 1]!.message;
        assert.equal(last.version, SENDS);
        const delivery = decodeDelivery(asKafkaRecord(await waitForDelivery(first!.message.id)));
        assert.deepEqual(delivery.json(), { index: SENDS - 1 });
        await sentinel(client(), 1000);
        assert.equal(cluster.recordsWithId(first!.message.id).length, 1);
      });

      it('leading: ten sends, one delivery of the first payload', async () => {
        const key = `cart-leading-${transport}-${run}`;
        const results: ScheduleResult[] = [];
        for (let index = 0; index < SENDS; index++)
          results.push(
            await client().schedule({
              topic: cluster.topic,
              payload: { index },
              delayMs: 800,
              debounce: { key, windowMs: 60_000, mode: 'leading' },
            }),
          );
        const [first, ...rest] = results;
        assert.equal(first!.created, true);
        assert.equal(first!.debounced, false);
        for (const result of rest) {
          assert.equal(result.debounced, true);
          assert.equal(result.message.id, first!.message.id);
          assert.equal(result.message.version, 1, 'nothing changed the first message');
        }
        const delivery = decodeDelivery(asKafkaRecord(await waitForDelivery(first!.message.id)));
        assert.deepEqual(delivery.json(), { index: 0 });
        await sentinel(client(), 1000);
        assert.equal(cluster.recordsWithId(first!.message.id).length, 1);
      });

      it('leaves debounced out of a plain schedule', async () => {
        const plain = await client().schedule({
          topic: cluster.topic,
          payload: 1,
          delayMs: 3_600_000,
        });
        assert.equal(plain.created, true);
        assert.equal('debounced' in plain, false);
      });

      it('passes the server refusals on with their detail paths, also per batch item', async () => {
        const withDue = await refusal(
          client().schedule({
            topic: cluster.topic,
            payload: 1,
            delayMs: 1000,
            debounce: { key: `refused-${run}`, windowMs: 1000 },
          }),
        );
        assert.equal(withDue.code, 'invalid_request');
        assert.equal(withDue.retriable, false);
        assert.deepEqual(
          withDue.details.map((d) => d.path),
          ['delayMs'],
        );
        const zero = await refusal(
          client().schedule({
            topic: cluster.topic,
            payload: 1,
            debounce: { key: `refused-${run}`, windowMs: 0, mode: 'leading' },
            delayMs: 1000,
          }),
        );
        assert.deepEqual(
          zero.details.map((d) => d.path),
          ['debounce/windowMs'],
        );
        const [plain, debounced] = await client().scheduleBatch([
          { topic: cluster.topic, payload: 1, delayMs: 3_600_000 },
          { topic: cluster.topic, payload: 2, debounce: { key: `batch-${run}`, windowMs: 1000 } },
        ]);
        assert.equal(plain!.ok, true);
        assert.equal(debounced!.ok, false);
        if (debounced!.ok) return;
        assert.equal(debounced!.error.code, 'invalid_request');
        assert.deepEqual(
          debounced!.error.details.map((d) => d.path),
          ['messages/1/debounce'],
        );
      });
    });
  }

  it('debounces one key across both transports into one message', async () => {
    const key = `cart-mixed-${run}`;
    const http = clients.get('http')!;
    const grpc = clients.get('grpc')!;
    const first = await http.schedule({
      topic: cluster.topic,
      payload: 'from http',
      debounce: { key, windowMs: 1500 },
    });
    const second = await grpc.schedule({
      topic: cluster.topic,
      payload: 'from grpc',
      debounce: { key, windowMs: 1500 },
    });
    assert.equal(first.debounced, false);
    assert.equal(second.debounced, true);
    assert.equal(second.message.id, first.message.id);
    assert.deepEqual(await http.get(first.message.id), second.message);
    const delivery = decodeDelivery(asKafkaRecord(await waitForDelivery(first.message.id)));
    assert.equal(delivery.json(), 'from grpc');
  });
});

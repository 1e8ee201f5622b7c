/**
 * hourglass.v1.Messages/Update against an in-process node on real Postgres and Kafka (its own
 * schema and topic): rescheduling later (the old due time never fires) and earlier, replacing the
 * payload of a message already in the wheel, conditional updates (if_version) that lose with
 * ABORTED / version_mismatch, and updates of a delivered message refused with FAILED_PRECONDITION.
 * The HTTP PATCH semantics behind it are the same MessageService.update; this checks the gRPC
 * contract: the mapping, the statuses, the trailers and `version` in every Message.
 */
import assert from 'node:assert/strict';
import type { Client, ServiceClientConstructor, ServiceError } from '@grpc/grpc-js';
import { Metadata, credentials, loadPackageDefinition, status as GrpcStatus } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { MESSAGES_PROTO, PROTO_LOADER_OPTIONS, protoDir } from '@hourglass/grpc-api';
import type { KafkaCollector } from '@hourglass/testkit';
import {
  collectKafka,
  createTestDatabase,
  createTopics,
  deleteTopics,
  pollUntil,
  randomTopicName,
  serviceUrls,
} from '@hourglass/testkit';
import type { RunningNode } from '../../../../apps/node/src/node';
import { startInProcess, testConfig } from '../../../../apps/node/test/support/harness';

const TOKEN = 'grpc-update-token-0001';

interface MessagePb {
  id: string;
  state: string;
  deliverAt: string;
  version?: number;
}
interface Outcome<T> {
  response?: T;
  error?: ServiceError;
  trailers: Record<string, string>;
}
type Unary = (
  request: unknown,
  metadata: Metadata,
  callback: (error: ServiceError | null, response?: unknown) => void,
) => void;

function call<T = MessagePb>(
  client: Client,
  method: string,
  request: unknown,
): Promise<Outcome<T>> {
  const metadata = new Metadata();
  metadata.set('authorization', `Bearer ${TOKEN}`);
  const fn: Unary = (client as unknown as Record<string, Unary>)[method]!.bind(client);
  return new Promise((resolve) => {
    fn(request, metadata, (error, response) => {
      if (error) {
        const trailers: Record<string, string> = {};
        for (const [key, value] of Object.entries(error.metadata.getMap()))
          trailers[key] = String(value);
        resolve({ error, trailers });
      } else resolve({ response: response as T, trailers: {} });
    });
  });
}

/** The call's answer; fails the test with the status text when it was refused. */
async function ok<T = MessagePb>(client: Client, method: string, request: unknown): Promise<T> {
  const outcome = await call<T>(client, method, request);
  assert.equal(outcome.error, undefined, `${method}: ${outcome.error?.details}`);
  return outcome.response as T;
}

describe('gRPC Update (hourglass.v1.Messages/Update)', function () {
  const urls = serviceUrls();
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let topic: string;
  let node: RunningNode;
  let messages: Client;
  let collector: KafkaCollector;
  const run = Date.now().toString(36);

  const schedule = async (id: string, delayMs: number, payload: unknown): Promise<MessagePb> =>
    (
      await ok<{ message: MessagePb }>(messages, 'Schedule', {
        id,
        topic,
        payloadJson: JSON.stringify(payload),
        delayMs,
      })
    ).message;
  const recordsOf = (id: string) =>
    collector.records.filter((r) => r.headers['hourglass-id'] === id);

  before(async () => {
    db = await createTestDatabase();
    topic = randomTopicName('grpc-update');
    await createTopics(urls.kafkaBrokers, [topic], 1);
    collector = await collectKafka(urls.kafkaBrokers, topic);
    node = await startInProcess(
      testConfig({
        postgres: { url: db.connectionString },
        kafka: { brokers: urls.kafkaBrokers, createTopics: false },
        grpc: { port: 0 },
        core: { loaderIntervalMs: 200 },
        apps: [{ name: 'rpc', token: TOKEN, topics: [topic] }],
      }),
    );
    const definition = loadSync(MESSAGES_PROTO, {
      ...PROTO_LOADER_OPTIONS,
      includeDirs: [protoDir()],
    });
    const root = loadPackageDefinition(definition) as unknown as {
      hourglass: { v1: { Messages: ServiceClientConstructor } };
    };
    messages = new root.hourglass.v1.Messages(node.grpcAddress, credentials.createInsecure());
  });

  after(async () => {
    messages?.close();
    await node?.stop();
    await collector?.stop();
    await deleteTopics(urls.kafkaBrokers, [topic]).catch(() => undefined);
    await db?.drop();
  });

  it('reschedules later: the old due time never fires, and version goes 1 → 2', async () => {
    const id = `later-${run}`;
    const scheduled = await schedule(id, 1500, { v: 1 });
    assert.equal(scheduled.version, 1);
    const updated = await ok(messages, 'Update', { id, delayMs: 3_600_000 });
    assert.equal(updated.version, 2);
    assert.equal(updated.state, 'scheduled');
    assert.ok(Date.parse(updated.deliverAt) > Date.now() + 3_500_000, updated.deliverAt);
    // A message due after the old due time is delivered: by then the old version would have been.
    const control = `later-control-${run}`;
    await schedule(control, 2000, { control: true });
    await collector.waitForRecord((r) => r.headers['hourglass-id'] === control, 30_000);
    assert.deepEqual(recordsOf(id), []);
    const read = await ok(messages, 'Get', { id });
    assert.equal(read.state, 'scheduled');
    assert.equal(read.version, 2);
    assert.equal(read.deliverAt, updated.deliverAt);
  });

  it('reschedules earlier with a new payload; a delivered message is then refused', async () => {
    const id = `earlier-${run}`;
    await schedule(id, 3_600_000, { v: 1 });
    const updated = await ok(messages, 'Update', {
      id,
      deliverAtMs: Date.now() + 300,
      payloadJson: '{"v": 2}',
    });
    assert.equal(updated.version, 2);
    const record = await collector.waitForRecord((r) => r.headers['hourglass-id'] === id, 30_000);
    assert.deepEqual(JSON.parse(record.value.toString('utf8')), { v: 2 });
    const delivered = await pollUntil(
      () => ok(messages, 'Get', { id }),
      (message) => message.state === 'delivered',
    );
    assert.equal(delivered.state, 'delivered');

    const refused = await call(messages, 'Update', { id, delayMs: 60_000 });
    assert.equal(refused.error?.code, GrpcStatus.FAILED_PRECONDITION);
    assert.equal(refused.trailers['hourglass-error-code'], 'already_delivered');
  });

  it('replaces the payload of a message already in the wheel: only the new one is delivered', async () => {
    const id = `payload-${run}`;
    await schedule(id, 1500, { v: 'old' });
    const updated = await ok(messages, 'Update', {
      id,
      payloadBytes: Buffer.from('new bytes'),
      headers: { entries: { 'x-changed': 'yes' } },
    });
    assert.equal(updated.version, 2);
    const control = `payload-control-${run}`;
    await schedule(control, 2500, { control: true });
    await collector.waitForRecord((r) => r.headers['hourglass-id'] === control, 30_000);
    const records = recordsOf(id);
    assert.equal(records.length, 1, 'delivered once, as the new version');
    assert.equal(records[0]!.value.toString('utf8'), 'new bytes');
    assert.equal(records[0]!.headers['x-changed'], 'yes');
  });

  it('applies a conditional update only at its version: a loser gets ABORTED / version_mismatch', async () => {
    const id = `conditional-${run}`;
    await schedule(id, 3_600_000, { v: 1 });
    // Two writers read version 1; the first one's change wins.
    const first = await ok(messages, 'Update', { id, ifVersion: 1, payloadJson: '"first"' });
    assert.equal(first.version, 2);
    const second = await call(messages, 'Update', { id, ifVersion: 1, payloadJson: '"second"' });
    assert.equal(second.error?.code, GrpcStatus.ABORTED);
    assert.equal(second.trailers['hourglass-error-code'], 'version_mismatch');
    assert.deepEqual(JSON.parse(second.trailers['hourglass-error-details']!), [
      { path: 'If-Match', message: 'current ETag: "2"' },
    ]);
    // Read again, decide, and send the current version: it applies.
    const third = await ok(messages, 'Update', { id, ifVersion: 2, delayMs: 7_200_000 });
    assert.equal(third.version, 3);
    // An unconditional update applies whatever the version.
    assert.equal((await ok(messages, 'Update', { id, clearKey: true })).version, 4);
  });

  it('refuses an update naming nothing, and an unknown id, with the HTTP codes', async () => {
    const id = `empty-${run}`;
    await schedule(id, 3_600_000, 1);
    const empty = await call(messages, 'Update', { id });
    assert.equal(empty.error?.code, GrpcStatus.INVALID_ARGUMENT);
    assert.equal(empty.trailers['hourglass-error-code'], 'invalid_request');
    const missing = await call(messages, 'Update', { id: `nothing-${run}`, delayMs: 1 });
    assert.equal(missing.error?.code, GrpcStatus.NOT_FOUND);
    assert.equal(missing.trailers['hourglass-error-code'], 'not_found');
  });
});

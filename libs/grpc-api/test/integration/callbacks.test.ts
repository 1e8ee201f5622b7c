/**
 * HTTP callbacks over the gRPC wire, as a raw grpc-js client sees them, against an in-process node
 * on real Postgres and Kafka calling a real receiver on 127.0.0.1 (opened with
 * callbacks.allowNetworks): Schedule with `callback` and `targets`, the message's TargetStatus
 * list, ListAttempts and RetryMessage, and their refusals (docs/callbacks.md).
 */
import assert from 'node:assert/strict';
import type { Client, ServiceClientConstructor, ServiceError } from '@grpc/grpc-js';
import { Metadata, credentials, loadPackageDefinition, status as GrpcStatus } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { MESSAGES_PROTO, PROTO_LOADER_OPTIONS, protoDir } from '@hourglass/grpc-api';
import {
  createTestDatabase,
  createTopics,
  deleteTopics,
  randomTopicName,
  serviceUrls,
} from '@hourglass/testkit';
import type { RunningNode } from '../../../../apps/node/src/node';
import { startInProcess, testConfig } from '../../../../apps/node/test/support/harness';
import { CallbackSink, pollUntil } from '../../../client/test/support/callback-sink';

const TOKEN = 'grpc-callback-token-0001';

type Unary = (
  request: unknown,
  metadata: Metadata,
  callback: (error: ServiceError | null, response?: unknown) => void,
) => void;

interface Outcome<T> {
  response?: T;
  error?: ServiceError;
  code?: string;
  details?: Array<{ path: string; message: string }>;
}

interface TargetPb {
  index?: number;
  type: string;
  url?: string;
  topic?: string;
  method?: string;
  name?: string;
  state: string;
  attempts?: number;
  lastStatus?: number;
  lastError?: string;
  finishedAt?: string;
}
interface MessagePb {
  id: string;
  topic?: string;
  state: string;
  attempts?: number;
  finishedAt?: string;
  deliveredAt?: string;
  targets?: TargetPb[];
  retry?: Record<string, unknown>;
}
interface AttemptPb {
  target?: number;
  type: string;
  attempt: number;
  at: string;
  durationMs?: number;
  status?: number;
  error?: string;
  response?: string;
}

function call<T>(client: Client, method: string, request: unknown): Promise<Outcome<T>> {
  const metadata = new Metadata();
  metadata.set('authorization', `Bearer ${TOKEN}`);
  const fn: Unary = (client as unknown as Record<string, Unary>)[method]!.bind(client);
  return new Promise((resolve) => {
    fn(request, metadata, (error, response) => {
      if (!error) {
        resolve({ response: response as T });
        return;
      }
      const [code] = error.metadata.get('hourglass-error-code');
      const [details] = error.metadata.get('hourglass-error-details');
      resolve({
        error,
        ...(typeof code === 'string' ? { code } : {}),
        ...(typeof details === 'string'
          ? { details: JSON.parse(details) as Array<{ path: string; message: string }> }
          : {}),
      });
    });
  });
}

async function ok<T>(outcome: Promise<Outcome<T>>): Promise<T> {
  const { response, error } = await outcome;
  assert.equal(error, undefined, error?.details);
  assert.ok(response);
  return response;
}

describe('gRPC exporter: HTTP callbacks, targets, attempts and retry', function () {
  const urls = serviceUrls();
  const sink = new CallbackSink();
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let topic: string;
  let node: RunningNode;
  let messages: Client;

  const get = async (id: string): Promise<MessagePb> =>
    ok(call<MessagePb>(messages, 'Get', { id }));
  const settled = (id: string): Promise<MessagePb> =>
    pollUntil(
      () => get(id),
      (message) => message.state !== 'scheduled',
    );

  before(async () => {
    await sink.start();
    db = await createTestDatabase();
    topic = randomTopicName('grpc-cb');
    await createTopics(urls.kafkaBrokers, [topic], 1);
    node = await startInProcess(
      testConfig({
        postgres: { url: db.connectionString },
        kafka: { brokers: urls.kafkaBrokers, createTopics: false },
        grpc: { port: 0 },
        core: { loaderIntervalMs: 200 },
        callbacks: { allowNetworks: ['127.0.0.0/8'] },
        apps: [{ name: 'rpc-cb', token: TOKEN, topics: [topic] }],
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
    await sink.stop();
    await deleteTopics(urls.kafkaBrokers, [topic]).catch(() => undefined);
    await db?.drop();
  });

  it('calls the callback, marks its target and the message delivered, and lists the attempt', async () => {
    const scheduled = await ok(
      call<{ created: boolean; message: MessagePb }>(messages, 'Schedule', {
        id: 'cb-1',
        payloadJson: '{"order": 42}',
        headers: { 'x-trace': 'abc' },
        delayMs: 0,
        callback: {
          url: sink.url('/hooks/one'),
          name: 'order.timeout',
          headers: { 'x-extra': 'yes' },
          expectBody: 'ok',
        },
        retry: { maxAttempts: 3, jitter: false },
      }),
    );
    assert.equal(scheduled.created, true);
    assert.equal(scheduled.message.topic, undefined, 'no Kafka target: topic absent');
    assert.deepEqual(
      scheduled.message.targets?.map((t) => [t.type, t.url, t.method, t.name, t.state]),
      [['http', sink.url('/hooks/one'), 'POST', 'order.timeout', 'pending']],
    );
    assert.equal(scheduled.message.retry?.maxAttempts, 3);
    assert.equal(scheduled.message.retry?.jitter, false);

    const received = await sink.waitForId('cb-1');
    assert.equal(received.method, 'POST');
    assert.equal(received.path, '/hooks/one');
    assert.equal(received.body, '{"order":42}');
    assert.equal(received.headers['content-type'], 'application/json');
    assert.equal(received.headers['x-trace'], 'abc');
    assert.equal(received.headers['x-extra'], 'yes');
    assert.equal(received.headers['hourglass-app'], 'rpc-cb');
    assert.equal(received.headers['hourglass-attempt'], '1');
    assert.equal(received.headers['hourglass-callback-name'], 'order.timeout');
    assert.equal(received.headers['webhook-id'], 'cb-1');
    assert.match(String(received.headers['webhook-signature']), /^v1,[A-Za-z0-9+/=]+/);

    const message = await settled('cb-1');
    assert.equal(message.state, 'delivered');
    assert.equal(message.targets?.[0]?.state, 'delivered');
    assert.equal(message.targets?.[0]?.lastStatus, 200);
    assert.ok(message.targets?.[0]?.finishedAt, 'finished target has finishedAt');
    assert.ok(message.finishedAt, 'finished message has finishedAt');

    const { attempts } = await ok(
      call<{ attempts?: AttemptPb[] }>(messages, 'ListAttempts', { id: 'cb-1' }),
    );
    assert.equal(attempts?.length, 1);
    const attempt = attempts[0];
    assert.ok(attempt);
    assert.equal(attempt.target ?? 0, 0);
    assert.equal(attempt.type, 'http');
    assert.equal(attempt.attempt, 1);
    assert.equal(attempt.status, 200);
    assert.equal(attempt.error, undefined);
    assert.match(attempt.at, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
  });

  it('delivers a Kafka and an HTTP target of one targets list', async () => {
    await ok(
      call(messages, 'Schedule', {
        id: 'cb-fan',
        payloadBytes: Buffer.from([1, 2, 3]),
        delayMs: 0,
        contentType: 'application/x-test',
        targets: [{ kafka: { topic, key: 'k' } }, { http: { url: sink.url('/hooks/fan') } }],
      }),
    );
    const received = await sink.waitForId('cb-fan');
    assert.deepEqual(Buffer.from(received.body, 'utf8'), Buffer.from([1, 2, 3]));
    assert.equal(received.headers['content-type'], 'application/x-test');
    const message = await pollUntil(
      () => get('cb-fan'),
      (m) => m.state !== 'scheduled',
    );
    assert.equal(message.state, 'delivered');
    assert.equal(message.topic, topic, 'the first Kafka target stands for the message');
    assert.deepEqual(
      message.targets?.map((t) => [t.index ?? 0, t.type, t.topic ?? t.url, t.state]),
      [
        [0, 'kafka', topic, 'delivered'],
        [1, 'http', sink.url('/hooks/fan'), 'delivered'],
      ],
    );
  });

  it('fails a target answered 410 at once, and RetryMessage re-arms it', async () => {
    sink.answer('/hooks/gone', 410, 'gone');
    await ok(
      call(messages, 'Schedule', {
        id: 'cb-gone',
        payloadJson: '1',
        delayMs: 0,
        callback: { url: sink.url('/hooks/gone') },
      }),
    );
    await sink.waitForId('cb-gone');
    const failed = await settled('cb-gone');
    assert.equal(failed.state, 'failed');
    assert.equal(failed.targets?.[0]?.state, 'failed');
    assert.equal(failed.targets?.[0]?.lastStatus, 410);

    const notFailed = await call(messages, 'RetryMessage', { id: 'cb-1' });
    assert.equal(notFailed.error?.code, GrpcStatus.FAILED_PRECONDITION);
    assert.equal(notFailed.code, 'not_failed');

    sink.answer('/hooks/gone', 200, 'ok');
    const retried = await ok(call<MessagePb>(messages, 'RetryMessage', { id: 'cb-gone' }));
    // Re-armed due now: by the time the answer is read, the node may have delivered it.
    assert.ok(['scheduled', 'delivered'].includes(retried.state ?? ''), retried.state);
    assert.ok(
      ['pending', 'delivered'].includes(retried.targets?.[0]?.state ?? ''),
      retried.targets?.[0]?.state,
    );
    const second = await sink.waitForId('cb-gone', 2);
    assert.equal(second.status, 200);
    const delivered = await settled('cb-gone');
    assert.equal(delivered.state, 'delivered');
    assert.equal(delivered.targets?.[0]?.state, 'delivered');

    const { attempts } = await ok(
      call<{ attempts?: AttemptPb[] }>(messages, 'ListAttempts', { id: 'cb-gone' }),
    );
    assert.deepEqual(
      attempts?.map((a) => a.status),
      [410, 200],
    );
    assert.equal(attempts?.[0]?.response, 'gone');
  });

  it('refuses with the codes of ERROR_TABLE and the HTTP detail paths', async () => {
    const ssrf = await call(messages, 'Schedule', {
      id: 'cb-bad',
      payloadJson: '1',
      delayMs: 0,
      callback: { url: 'http://10.0.0.1/hook' },
    });
    assert.equal(ssrf.error?.code, GrpcStatus.INVALID_ARGUMENT);
    assert.equal(ssrf.code, 'invalid_request');
    assert.deepEqual(
      ssrf.details?.map((d) => d.path),
      ['callback/url'],
    );

    const nowhere = await call(messages, 'Schedule', {
      id: 'cb-none',
      payloadJson: '1',
      delayMs: 0,
    });
    assert.equal(nowhere.code, 'invalid_request');
    assert.deepEqual(
      nowhere.details?.map((d) => d.path),
      ['topic'],
    );

    const missing = await call(messages, 'ListAttempts', { id: 'no-such-message' });
    assert.equal(missing.error?.code, GrpcStatus.NOT_FOUND);
    assert.equal(missing.code, 'not_found');
    const retryMissing = await call(messages, 'RetryMessage', { id: 'no-such-message' });
    assert.equal(retryMissing.code, 'not_found');
  });
});

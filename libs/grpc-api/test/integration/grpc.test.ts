/**
 * The gRPC exporter as a raw grpc-js client sees it, against an in-process node on real Postgres
 * and Kafka: the wire contract of messages.proto (status codes, trailing metadata, payload_json
 * handling, batch positions), the health service, and a graceful stop. Transport-neutral
 * behaviour is covered once for both transports in libs/client/test/integration.
 */
import assert from 'node:assert/strict';
import type {
  Client,
  ClientReadableStream,
  ServiceClientConstructor,
  ServiceError,
} from '@grpc/grpc-js';
import { Metadata, credentials, loadPackageDefinition, status as GrpcStatus } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { DependencyUnavailableError, ERROR_TABLE, HourglassError } from '@hourglass/core';
import type { ErrorCode } from '@hourglass/core';
import {
  HEALTH_PROTO,
  MESSAGES_PROTO,
  PROTO_LOADER_OPTIONS,
  protoDir,
  toGrpcStatus,
} from '@hourglass/grpc-api';
import {
  createTestDatabase,
  createTopics,
  deleteTopics,
  randomTopicName,
  serviceUrls,
} from '@hourglass/testkit';
import type { RunningNode } from '../../../../apps/node/src/node';
import { startInProcess, testConfig } from '../../../../apps/node/test/support/harness';

const TOKEN = 'grpc-test-token-0001';

type Unary = (
  request: unknown,
  metadata: Metadata,
  callback: (error: ServiceError | null, response?: unknown) => void,
) => void;
interface Outcome<T> {
  response?: T;
  error?: ServiceError;
  /** Trailing metadata of a refused call, as plain strings. */
  trailers: Record<string, string>;
}

function call<T = Record<string, unknown>>(
  client: Client,
  method: string,
  request: unknown,
  token: string | null = TOKEN,
): Promise<Outcome<T>> {
  const metadata = new Metadata();
  if (token !== null) metadata.set('authorization', `Bearer ${token}`);
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

describe('gRPC exporter (hourglass.v1.Messages, grpc.health.v1.Health)', function () {
  const urls = serviceUrls();
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let topic: string;
  let node: RunningNode;
  let messages: Client;
  let health: Client;

  before(async () => {
    db = await createTestDatabase();
    topic = randomTopicName('grpc');
    await createTopics(urls.kafkaBrokers, [topic], 1);
    node = await startInProcess(
      testConfig({
        postgres: { url: db.connectionString },
        kafka: { brokers: urls.kafkaBrokers, createTopics: false },
        grpc: { port: 0 },
        apps: [{ name: 'rpc', token: TOKEN, topics: [topic] }],
      }),
    );
    const definition = loadSync([MESSAGES_PROTO, HEALTH_PROTO], {
      ...PROTO_LOADER_OPTIONS,
      includeDirs: [protoDir()],
    });
    const root = loadPackageDefinition(definition) as unknown as {
      hourglass: { v1: { Messages: ServiceClientConstructor } };
      grpc: { health: { v1: { Health: ServiceClientConstructor } } };
    };
    messages = new root.hourglass.v1.Messages(node.grpcAddress, credentials.createInsecure());
    health = new root.grpc.health.v1.Health(node.grpcAddress, credentials.createInsecure());
  });

  after(async () => {
    messages?.close();
    health?.close();
    await node?.stop();
    await deleteTopics(urls.kafkaBrokers, [topic]).catch(() => undefined);
    await db?.drop();
  });

  it('answers health checks with SERVING for the server and for hourglass.v1.Messages, NOT_FOUND otherwise', async () => {
    for (const service of ['', 'hourglass.v1.Messages']) {
      const outcome = await call<{ status: string }>(health, 'Check', { service }, null);
      assert.equal(outcome.response?.status, 'SERVING', service);
    }
    const unknown = await call(health, 'Check', { service: 'no.such.Service' }, null);
    assert.equal(unknown.error?.code, GrpcStatus.NOT_FOUND);
  });

  it('schedules, reads and cancels with the JSON shapes of HTTP v1', async () => {
    const scheduled = await call<{ created: boolean; message: Record<string, unknown> }>(
      messages,
      'Schedule',
      {
        id: 'rpc-1',
        topic,
        key: 'k',
        payloadJson: '{"a": 1}',
        headers: { 'x-h': 'v' },
        delayMs: 60_000,
      },
    );
    assert.equal(scheduled.error, undefined, scheduled.error?.details);
    assert.equal(scheduled.response?.created, true);
    const message = scheduled.response.message;
    assert.equal(message.id, 'rpc-1');
    assert.equal(message.app, 'rpc');
    assert.equal(message.key, 'k');
    assert.equal(message.state, 'scheduled');
    assert.match(String(message.deliverAt), /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    const view = await fetch(`${node.httpUrl}/v1/messages/rpc-1`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    }).then((r) => r.json() as Promise<Record<string, unknown>>);
    for (const field of ['id', 'app', 'topic', 'key', 'deliverAt', 'state', 'createdAt'])
      assert.equal(message[field], view[field], field);
    // proto3 leaves zero scalars off the wire; decoded with defaults: false they are absent.
    assert.equal(message.slot ?? 0, view.slot);
    assert.equal(message.attempts ?? 0, view.attempts);
    // Compact and spaced JSON text are the same payload.
    const again = await call<{ created: boolean }>(messages, 'Schedule', {
      id: 'rpc-1',
      topic,
      key: 'k',
      payloadJson: '{"a":1}',
      headers: { 'x-h': 'v' },
      delayMs: 60_000,
    });
    assert.equal(again.error, undefined, again.error?.details);
    assert.equal(again.response?.created ?? false, false);
    const cancelled = await call(messages, 'Cancel', { id: 'rpc-1' });
    assert.deepEqual(cancelled.response, { id: 'rpc-1', state: 'cancelled' });
  });

  it('refuses with ERROR_TABLE statuses and the stable code in trailing metadata', async () => {
    await call(messages, 'Schedule', { id: 'rpc-taken', topic, payloadJson: '1', delayMs: 60_000 });
    await call(messages, 'Cancel', { id: 'rpc-taken' });
    const cases: Array<{
      code: ErrorCode;
      method: string;
      request: unknown;
      token?: string | null;
    }> = [
      {
        code: 'invalid_request',
        method: 'Schedule',
        request: { id: 'a b', topic, payloadJson: '1', delayMs: 1 },
      },
      { code: 'invalid_request', method: 'Get', request: { id: 'a/b' } },
      {
        code: 'topic_not_allowed',
        method: 'Schedule',
        request: { topic: 'other.topic', payloadJson: '1', delayMs: 1 },
      },
      {
        code: 'delay_too_long',
        method: 'Schedule',
        request: { topic, payloadJson: '1', deliverAt: '2999-01-01T00:00:00Z' },
      },
      {
        code: 'payload_too_large',
        method: 'Schedule',
        request: { topic, payloadBytes: Buffer.alloc(1024 * 1024 + 1), delayMs: 1 },
      },
      { code: 'not_found', method: 'Get', request: { id: 'nothing-here' } },
      {
        code: 'id_conflict',
        method: 'Schedule',
        request: { id: 'rpc-taken', topic, payloadJson: '2', delayMs: 60_000 },
      },
      { code: 'already_cancelled', method: 'Cancel', request: { id: 'rpc-taken' } },
      { code: 'batch_too_large', method: 'ScheduleBatch', request: { messages: [] } },
      { code: 'unauthenticated', method: 'Get', request: { id: 'x' }, token: null },
      { code: 'unauthenticated', method: 'Get', request: { id: 'x' }, token: 'wrong-token-123' },
    ];
    for (const testCase of cases) {
      const outcome = await call(
        messages,
        testCase.method,
        testCase.request,
        testCase.token === undefined ? TOKEN : testCase.token,
      );
      assert.ok(outcome.error, `${testCase.code}: expected a refusal`);
      assert.equal(outcome.trailers['hourglass-error-code'], testCase.code, outcome.error.details);
      assert.equal(outcome.error.code, ERROR_TABLE[testCase.code].grpc, testCase.code);
      assert.ok(outcome.error.details.length > 0);
    }
  });

  it('lists each problem in hourglass-error-details as ASCII JSON, naming fields as HTTP does', async () => {
    const outcome = await call(messages, 'Schedule', {
      topic: 'bad topic',
      payloadJson: '{oops',
      headers: { 'hourglass-ü': 'x' },
      delayMs: 5,
    });
    assert.equal(outcome.trailers['hourglass-error-code'], 'invalid_request');
    // payload_json is parsed before validation; its failure is reported alone.
    assert.deepEqual(
      (JSON.parse(outcome.trailers['hourglass-error-details']!) as Array<{ path: string }>).map(
        (d) => d.path,
      ),
      ['payload'],
    );
    const fields = await call(messages, 'Schedule', {
      topic: 'bad topic',
      payloadJson: '1',
      headers: { 'hourglass-ü': 'x' },
      delayMs: -5,
    });
    const raw = fields.trailers['hourglass-error-details']!;
    assert.match(raw, /^[\x20-\x7e]*$/);
    assert.deepEqual(
      (JSON.parse(raw) as Array<{ path: string }>).map((d) => d.path),
      ['topic', 'headers/hourglass-ü', 'delayMs'],
    );
    const none = await call(messages, 'Schedule', { topic, delayMs: 5 });
    assert.deepEqual(JSON.parse(none.trailers['hourglass-error-details']!), [
      {
        path: 'payload',
        message: 'exactly one of "payload" (any JSON value) or "payloadBase64" (bytes) is required',
      },
    ]);
    const unsafe = await call(messages, 'Schedule', {
      topic,
      payloadJson: '1',
      deliverAtMs: '9223372036854775807',
    });
    assert.equal(unsafe.trailers['hourglass-error-code'], 'invalid_request');
  });

  it('refuses NUL in the key and payload_json nested too deep with INVALID_ARGUMENT, never INTERNAL', async () => {
    const detailPaths = (outcome: Outcome<unknown>): string[] =>
      (JSON.parse(outcome.trailers['hourglass-error-details']!) as Array<{ path: string }>).map(
        (d) => d.path,
      );
    const nul = await call(messages, 'Schedule', {
      topic,
      key: 'a\u0000b',
      payloadJson: '1',
      delayMs: 5,
    });
    assert.equal(nul.error?.code, GrpcStatus.INVALID_ARGUMENT);
    assert.deepEqual(detailPaths(nul), ['key']);
    for (const depth of [65, 1_000_000]) {
      const deep = await call(messages, 'Schedule', {
        topic,
        payloadJson: `${'['.repeat(depth)}${']'.repeat(depth)}`,
        delayMs: 5,
      });
      assert.equal(deep.error?.code, GrpcStatus.INVALID_ARGUMENT, `depth ${depth}`);
      assert.deepEqual(detailPaths(deep), ['payload']);
    }
    const batch = await call<{ results: Array<{ error?: { details: Array<{ path: string }> } }> }>(
      messages,
      'ScheduleBatch',
      {
        messages: [
          { topic, payloadJson: '[[1]]', delayMs: 600_000 },
          { topic, payloadJson: '['.repeat(100) + ']'.repeat(100), delayMs: 600_000 },
        ],
      },
    );
    assert.equal(batch.response?.results[0]?.error, undefined);
    assert.deepEqual(
      batch.response?.results[1]?.error?.details.map((d) => d.path),
      ['messages/1/payload'],
    );
  });

  it('reports per-item refusals of a batch at the caller positions, including bad payload_json', async () => {
    const stamp = Date.now();
    const outcome = await call<{
      results: Array<{
        message?: { id: string };
        error?: { code: string; details: Array<{ path: string }> };
        created: boolean;
      }>;
    }>(messages, 'ScheduleBatch', {
      messages: [
        { id: `rb0-${stamp}`, topic, payloadJson: '0', delayMs: 60_000 },
        { id: `rb1-${stamp}`, topic, payloadJson: 'not json', delayMs: 60_000 },
        { id: `rb2-${stamp}`, topic: 'other.topic', payloadJson: '2', delayMs: 60_000 },
        { id: `rb3-${stamp}`, topic, payloadBytes: Buffer.from('3'), delayMs: 60_000 },
        { id: `rb4-${stamp}`, topic, payloadJson: '4' },
      ],
    });
    assert.equal(outcome.error, undefined, outcome.error?.details);
    assert.deepEqual(
      outcome.response!.results.map((r) =>
        r.message
          ? ['ok', r.message.id, r.created]
          : ['error', r.error!.code, r.error!.details.map((d) => d.path)],
      ),
      [
        ['ok', `rb0-${stamp}`, true],
        ['error', 'invalid_request', ['messages/1/payload']],
        ['error', 'topic_not_allowed', ['messages/2/topic']],
        ['ok', `rb3-${stamp}`, true],
        ['error', 'invalid_request', ['messages/4/deliverAt']],
      ],
    );
  });

  it('maps every error code through ERROR_TABLE, DependencyUnavailableError to UNAVAILABLE', () => {
    for (const code of Object.keys(ERROR_TABLE) as ErrorCode[]) {
      const status = toGrpcStatus(new HourglassError(code, `a ${code}`));
      assert.equal(status.code, ERROR_TABLE[code].grpc);
      assert.deepEqual(status.metadata?.get('hourglass-error-code'), [code]);
    }
    const down = toGrpcStatus(
      new DependencyUnavailableError('postgres', new Error('connection refused')),
    );
    assert.equal(down.code, GrpcStatus.UNAVAILABLE);
    const limited = toGrpcStatus(new HourglassError('rate_limited', 'slow down', undefined, 2.5));
    assert.deepEqual(limited.metadata?.get('hourglass-retry-after'), ['3']);
  });

  // Last: stops the node.
  it('reports NOT_SERVING to watchers, ends their streams and refuses calls once the node stops', async () => {
    const updates: string[] = [];
    const stream = (
      health as unknown as Record<
        string,
        (request: unknown) => ClientReadableStream<{ status: string }>
      >
    ).Watch!.call(health, { service: '' });
    const ended = new Promise<void>((resolve) => {
      stream.on('data', (update: { status: string }) => updates.push(update.status));
      stream.on('end', () => resolve());
      stream.on('error', () => resolve());
    });
    while (updates.length === 0) await new Promise((r) => setTimeout(r, 20));
    const started = Date.now();
    await node.stop();
    await ended;
    assert.deepEqual(updates, ['SERVING', 'NOT_SERVING']);
    assert.ok(Date.now() - started < 10_000, 'the open Watch stream held up the stop');
    const refused = await call(messages, 'Get', { id: 'x' });
    assert.equal(refused.error?.code, GrpcStatus.UNAVAILABLE);
  });
});

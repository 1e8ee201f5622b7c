/**
 * Callbacks, targets, retry strategies and attempts in the SDK's wire forms: what each transport
 * sends for them, and how both transports' answers decode to the same {@link Message} (dates,
 * targets, absent versus null), the gRPC one through the real protobuf encoding.
 */
import assert from 'node:assert/strict';
import type { MethodDefinition } from '@grpc/proto-loader';
import { loadSync } from '@grpc/proto-loader';
import { PROTO_LOADER_OPTIONS } from '@hourglass/grpc-api';
import { HourglassClientError } from '../../src';
import type { Message } from '../../src';
import { LOADER_OPTIONS, toScheduleRequestPb } from '../../src/grpc';
import { messageJson } from '../../src/http';
import { MESSAGES_PROTO, findProtoDir } from '../../src/proto';
import type { RawAttempt, RawMessage } from '../../src/wire';
import { prepareMessage, toAttempt, toMessage } from '../../src/wire';

type Methods = Record<string, MethodDefinition<unknown, unknown>>;
/** The SDK's decoding … */
const service = loadSync(MESSAGES_PROTO, { ...LOADER_OPTIONS, includeDirs: [findProtoDir()] })[
  'hourglass.v1.Messages'
] as unknown as Methods;
/** … and the server's (with presence: unset fields absent). */
const server = loadSync(MESSAGES_PROTO, {
  ...PROTO_LOADER_OPTIONS,
  includeDirs: [findProtoDir()],
})['hourglass.v1.Messages'] as unknown as Methods;

/** An answer as a server encodes it and this SDK decodes it. */
function grpcDecoded<T>(method: string, response: unknown): T {
  const rpc = service[method]!;
  return rpc.responseDeserialize(rpc.responseSerialize(response)) as T;
}

/** A request as this SDK encodes it and the server decodes it. */
function grpcRequest(request: Record<string, unknown>): Record<string, unknown> {
  const bytes = service.Schedule!.requestSerialize(request);
  return server.Schedule!.requestDeserialize(bytes) as Record<string, unknown>;
}

describe('scheduling with callbacks and targets', () => {
  it('sends a callback, retry and content type with the same fields on both transports', () => {
    const wire = prepareMessage(
      {
        id: 'cb',
        payload: { order: 42 },
        delayMs: 1000,
        callback: {
          url: 'https://shop.example.com/h',
          method: 'PUT',
          headers: { authorization: 'Bearer x' },
          timeoutMs: 5000,
          name: 'order.timeout',
          envelope: false,
          expectBody: 'ok',
        },
        retry: { strategy: 'linear', maxAttempts: 3, jitter: false },
        contentType: 'application/json',
      },
      'http',
    );
    const callback = {
      url: 'https://shop.example.com/h',
      method: 'PUT',
      headers: { authorization: 'Bearer x' },
      timeoutMs: 5000,
      name: 'order.timeout',
      envelope: false,
      expectBody: 'ok',
    };
    const retry = { strategy: 'linear', maxAttempts: 3, jitter: false };
    assert.deepEqual(JSON.parse(messageJson(wire)), {
      id: 'cb',
      delayMs: 1000,
      callback,
      retry,
      contentType: 'application/json',
      payload: { order: 42 },
    });
    assert.deepEqual(grpcRequest(toScheduleRequestPb(wire)), {
      id: 'cb',
      delayMs: 1000,
      payloadJson: '{"order":42}',
      callback,
      retry,
      contentType: 'application/json',
    });
  });

  it('gives each target its kind, picking the gRPC oneof member', () => {
    const wire = prepareMessage(
      {
        id: 'fan',
        payloadBytes: Buffer.from([1]),
        deliverAt: 1_900_000_000_000,
        targets: [
          { topic: 'orders', key: 'k', headers: { a: 'b' } },
          { type: 'http', url: 'https://a.example.com/' },
          { url: 'https://b.example.com/', name: 'n' },
          { type: 'kafka', topic: 'audit', key: null },
        ],
      },
      'grpc',
    );
    const targets = [
      { type: 'kafka', topic: 'orders', key: 'k', headers: { a: 'b' } },
      { type: 'http', url: 'https://a.example.com/' },
      { type: 'http', url: 'https://b.example.com/', name: 'n' },
      { type: 'kafka', topic: 'audit' },
    ];
    assert.deepEqual(JSON.parse(messageJson(wire)), {
      id: 'fan',
      targets,
      payloadBase64: 'AQ==',
      deliverAt: 1_900_000_000_000,
    });
    assert.deepEqual(grpcRequest(toScheduleRequestPb(wire)).targets, [
      { kafka: { topic: 'orders', key: 'k', headers: { a: 'b' } } },
      { http: { url: 'https://a.example.com/' } },
      { http: { url: 'https://b.example.com/', name: 'n' } },
      { kafka: { topic: 'audit' } },
    ]);
  });

  it('keeps an empty retry apart from none, and topic absent apart from given', () => {
    const empty = prepareMessage(
      { id: 'r', topic: 't', payload: 1, delayMs: 0, retry: {} },
      'grpc',
    );
    assert.deepEqual((JSON.parse(messageJson(empty)) as { retry: unknown }).retry, {});
    assert.deepEqual(grpcRequest(toScheduleRequestPb(empty)).retry, {});
    const none = prepareMessage(
      { id: 'r', payload: 1, delayMs: 0, callback: { url: 'https://x.example/' } },
      'grpc',
    );
    assert.equal('topic' in JSON.parse(messageJson(none)), false);
    const decoded = grpcRequest(toScheduleRequestPb(none));
    assert.equal('topic' in decoded, false);
    assert.equal('retry' in decoded, false);
  });

  it('refuses targets gRPC could not express, on both transports alike', () => {
    const cases: Array<[unknown, string]> = [
      [[], 'messages/1/targets'],
      [[{ key: 'k' }], 'messages/1/targets/0/type'],
      [[{ topic: 't' }, { type: 'sqs', url: 'x' }], 'messages/1/targets/1/type'],
    ];
    for (const transport of ['http', 'grpc'] as const)
      for (const [targets, path] of cases)
        assert.throws(
          () =>
            prepareMessage(
              { payload: 1, delayMs: 0, targets: targets as never },
              transport,
              'messages/1/',
            ),
          (error: unknown) =>
            error instanceof HourglassClientError &&
            error.code === 'invalid_request' &&
            error.transport === transport &&
            error.details[0]?.path === path,
          `${transport} ${JSON.stringify(targets)}`,
        );
  });
});

describe('decoding messages with targets', () => {
  /** The same message as HTTP v1 sends it (JSON, nulls) … */
  const http: RawMessage = {
    id: 'm1',
    app: 'shop',
    topic: null,
    key: null,
    slot: 0,
    deliverAt: '2030-01-01T00:00:00.000Z',
    state: 'scheduled',
    createdAt: '2029-12-31T00:00:00.000Z',
    attempts: 2,
    lastError: 'HTTP 503',
    nextAttemptAt: '2030-01-01T00:00:20.000Z',
    targets: [
      {
        index: 0,
        type: 'http',
        url: 'https://shop.example.com/h',
        method: 'PUT',
        name: 'order.timeout',
        state: 'pending',
        attempts: 2,
        lastError: 'HTTP 503',
        lastStatus: 503,
        nextAttemptAt: '2030-01-01T00:00:20.000Z',
      },
      {
        index: 1,
        type: 'kafka',
        topic: 'orders',
        key: null,
        state: 'delivered',
        attempts: 0,
        finishedAt: '2030-01-01T00:00:00.010Z',
      },
    ],
    retry: {
      strategy: 'exponential',
      initialDelayMs: 10_000,
      maxDelayMs: 86_400_000,
      maxAttempts: 10,
      jitter: true,
    },
  };
  /** … and as the gRPC server encodes it (absent instead of null, zeros left as they are). */
  const grpcServerPb = {
    id: 'm1',
    app: 'shop',
    slot: 0,
    deliverAt: '2030-01-01T00:00:00.000Z',
    state: 'scheduled',
    createdAt: '2029-12-31T00:00:00.000Z',
    attempts: 2,
    lastError: 'HTTP 503',
    nextAttemptAt: '2030-01-01T00:00:20.000Z',
    targets: [
      {
        index: 0,
        type: 'http',
        url: 'https://shop.example.com/h',
        method: 'PUT',
        name: 'order.timeout',
        state: 'pending',
        attempts: 2,
        lastError: 'HTTP 503',
        lastStatus: 503,
        nextAttemptAt: '2030-01-01T00:00:20.000Z',
      },
      {
        index: 1,
        type: 'kafka',
        topic: 'orders',
        state: 'delivered',
        attempts: 0,
        finishedAt: '2030-01-01T00:00:00.010Z',
      },
    ],
    retry: http.retry,
  };

  it('turns times into Dates and nulls into absent fields, the same on both transports', () => {
    const expected: Message = {
      id: 'm1',
      app: 'shop',
      topic: null,
      key: null,
      slot: 0,
      deliverAt: new Date('2030-01-01T00:00:00.000Z'),
      state: 'scheduled',
      // Not sent by the raw message above (a server older than updates): 1.
      version: 1,
      createdAt: new Date('2029-12-31T00:00:00.000Z'),
      attempts: 2,
      lastError: 'HTTP 503',
      nextAttemptAt: new Date('2030-01-01T00:00:20.000Z'),
      targets: [
        {
          index: 0,
          type: 'http',
          url: 'https://shop.example.com/h',
          method: 'PUT',
          name: 'order.timeout',
          state: 'pending',
          attempts: 2,
          lastError: 'HTTP 503',
          lastStatus: 503,
          nextAttemptAt: new Date('2030-01-01T00:00:20.000Z'),
        },
        {
          index: 1,
          type: 'kafka',
          topic: 'orders',
          key: null,
          state: 'delivered',
          attempts: 0,
          finishedAt: new Date('2030-01-01T00:00:00.010Z'),
        },
      ],
      retry: {
        strategy: 'exponential',
        initialDelayMs: 10_000,
        maxDelayMs: 86_400_000,
        maxAttempts: 10,
        jitter: true,
      },
    };
    assert.deepEqual(toMessage(http), expected);
    assert.deepEqual(toMessage(grpcDecoded<RawMessage>('Get', grpcServerPb)), expected);
  });

  it('decodes a Kafka-only message: its topic, one target, no retry (gRPC: retry null)', () => {
    const kafka = {
      id: 'k1',
      app: 'shop',
      topic: 'orders',
      key: 'key-1',
      slot: 3,
      deliverAt: '2030-01-01T00:00:00.000Z',
      state: 'delivered',
      createdAt: '2029-12-31T00:00:00.000Z',
      deliveredAt: '2030-01-01T00:00:00.005Z',
      finishedAt: '2030-01-01T00:00:00.005Z',
      attempts: 1,
      targets: [
        { index: 0, type: 'kafka', topic: 'orders', key: 'key-1', state: 'delivered', attempts: 1 },
      ],
    };
    const overGrpc = grpcDecoded<RawMessage>('Get', kafka);
    assert.equal(overGrpc.retry, null, 'an unset message field decodes as null');
    const message = toMessage(overGrpc);
    assert.deepEqual(message, toMessage(kafka));
    assert.equal(message.topic, 'orders');
    assert.equal(message.retry, undefined);
    assert.deepEqual(message.finishedAt, new Date('2030-01-01T00:00:00.005Z'));
    assert.deepEqual(message.targets, [
      { index: 0, type: 'kafka', topic: 'orders', key: 'key-1', state: 'delivered', attempts: 1 },
    ]);
    // A server older than callbacks sends no targets.
    const { targets: _dropped, ...old } = kafka;
    assert.deepEqual(toMessage(old).targets, []);
    // A decoder without proto3 presence would give "" for a missing topic.
    assert.equal(toMessage({ ...kafka, topic: '' }).topic, null);
  });

  it('decodes attempts with Dates, leaving out what has no value', () => {
    const attempts: RawAttempt[] = [
      {
        target: 0,
        type: 'http',
        attempt: 1,
        at: '2030-01-01T00:00:00.000Z',
        durationMs: 12,
        status: 503,
        error: 'HTTP 503',
        response: 'busy',
      },
      {
        target: 1,
        type: 'http',
        attempt: 1,
        at: '2030-01-01T00:00:01.000Z',
        durationMs: 10_000,
        error: 'timeout',
      },
    ];
    const expected = [
      {
        target: 0,
        type: 'http',
        attempt: 1,
        at: new Date('2030-01-01T00:00:00.000Z'),
        durationMs: 12,
        status: 503,
        error: 'HTTP 503',
        response: 'busy',
      },
      {
        target: 1,
        type: 'http',
        attempt: 1,
        at: new Date('2030-01-01T00:00:01.000Z'),
        durationMs: 10_000,
        error: 'timeout',
      },
    ];
    assert.deepEqual(attempts.map(toAttempt), expected);
    const overGrpc = grpcDecoded<{ attempts: RawAttempt[] }>('ListAttempts', { attempts });
    assert.deepEqual(overGrpc.attempts.map(toAttempt), expected);
  });
});

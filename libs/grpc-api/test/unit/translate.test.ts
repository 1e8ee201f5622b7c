/**
 * The gRPC ↔ service translation of targets, callbacks, retry strategies and attempts, through the
 * real protobuf encoding of messages.proto (so proto3 presence is what the wire carries), and
 * checked against the HTTP v1 body of the same request: both must reach `parseScheduleRequest` as
 * the same message (same fingerprint).
 */
import assert from 'node:assert/strict';
import type { MethodDefinition } from '@grpc/proto-loader';
import { loadSync } from '@grpc/proto-loader';
import type { MessageLimits } from '@hourglass/core';
import {
  AddressPolicy,
  DEFAULT_RETRY_STRATEGY,
  HourglassError,
  parseScheduleRequest,
} from '@hourglass/core';
import type { AttemptView, MessageView } from '@hourglass/engine';
import { MESSAGES_PROTO, PROTO_LOADER_OPTIONS, protoDir } from '../../src/proto';
import type { ScheduleRequestPb } from '../../src/translate';
import { toAttemptPb, toMessagePb, toScheduleBody } from '../../src/translate';

const definition = loadSync(MESSAGES_PROTO, { ...PROTO_LOADER_OPTIONS, includeDirs: [protoDir()] });
const service = definition['hourglass.v1.Messages'] as unknown as Record<
  string,
  MethodDefinition<unknown, unknown>
>;

/** A request as a client encodes it and the server decodes it (PROTO_LOADER_OPTIONS). */
function overTheWire(request: Record<string, unknown>): ScheduleRequestPb {
  const method = service.Schedule!;
  return method.requestDeserialize(method.requestSerialize(request)) as ScheduleRequestPb;
}

/** A response as the server encodes it and a client decodes it with the same options. */
function responseOverTheWire(method: string, response: unknown): Record<string, unknown> {
  const rpc = service[method]!;
  return rpc.responseDeserialize(rpc.responseSerialize(response)) as Record<string, unknown>;
}

const NOW = Date.parse('2030-01-01T00:00:00.000Z');
const LIMITS: MessageLimits = {
  maxPayloadBytes: 1024 * 1024,
  maxDelayMs: 365 * 86_400_000,
  maxBatchSize: 1000,
  targets: {
    maxTargets: 8,
    defaultTimeoutMs: 10_000,
    policy: new AddressPolicy(['127.0.0.0/8']),
  },
  retryBase: DEFAULT_RETRY_STRATEGY,
};

function fingerprint(body: unknown): string {
  return parseScheduleRequest(body, LIMITS, NOW).fingerprint;
}

describe('gRPC translation: callbacks, targets, retry', () => {
  it('translates a callback, retry and content type to the HTTP v1 body, field for field', () => {
    const decoded = overTheWire({
      id: 'order-42-timeout',
      delayMs: 1_800_000,
      payloadJson: '{"order": 42}',
      headers: { 'x-trace': 'abc' },
      callback: {
        url: 'https://shop.example.com/hooks/hourglass',
        method: 'PUT',
        headers: { authorization: 'Bearer x' },
        timeoutMs: 5000,
        name: 'order.timeout',
        envelope: false,
        expectBody: 'ok',
      },
      retry: {
        strategy: 'fixed',
        initialDelayMs: 1000,
        maxDelayMs: 60_000,
        maxAttempts: 3,
        jitter: false,
      },
      contentType: 'application/json',
    });
    const http = {
      id: 'order-42-timeout',
      delayMs: 1_800_000,
      payload: { order: 42 },
      headers: { 'x-trace': 'abc' },
      callback: {
        url: 'https://shop.example.com/hooks/hourglass',
        method: 'PUT',
        headers: { authorization: 'Bearer x' },
        timeoutMs: 5000,
        name: 'order.timeout',
        envelope: false,
        expectBody: 'ok',
      },
      retry: {
        strategy: 'fixed',
        initialDelayMs: 1000,
        maxDelayMs: 60_000,
        maxAttempts: 3,
        jitter: false,
      },
      contentType: 'application/json',
    };
    const body = toScheduleBody(decoded);
    assert.deepEqual(body, http);
    assert.equal(fingerprint(body), fingerprint(http));
  });

  it('keeps absent apart from zero and false: only the fields sent reach the validator', () => {
    // jitter false and maxAttempts... absent: proto3 `optional` carries false and 0 on the wire.
    const body = toScheduleBody(
      overTheWire({
        id: 'm',
        delayMs: 0,
        payloadJson: '1',
        callback: { url: 'http://127.0.0.1:9/x', envelope: false },
        retry: { jitter: false, initialDelayMs: 0 },
      }),
    );
    assert.deepEqual(body, {
      id: 'm',
      delayMs: 0,
      payload: 1,
      callback: { url: 'http://127.0.0.1:9/x', envelope: false },
      retry: { jitter: false, initialDelayMs: 0 },
    });
    // An empty RetryStrategy is present on the wire: `"retry": {}`, not "no retry".
    const empty = toScheduleBody(
      overTheWire({ id: 'e', delayMs: 0, payloadJson: '1', topic: 'a', retry: {} }),
    );
    assert.deepEqual(empty, { id: 'e', topic: 'a', delayMs: 0, payload: 1, retry: {} });
    const none = toScheduleBody(overTheWire({ id: 'e', delayMs: 0, payloadJson: '1', topic: 'a' }));
    assert.deepEqual(none, { id: 'e', topic: 'a', delayMs: 0, payload: 1 });
  });

  it('translates mixed targets with their type from the oneof member', () => {
    const decoded = overTheWire({
      id: 'fan',
      deliverAt: '2030-01-01T01:00:00Z',
      payloadBytes: Buffer.from([0, 1, 2]),
      targets: [
        { kafka: { topic: 'orders', key: 'k', headers: { 'x-k': '1' } } },
        { http: { url: 'https://a.example.com/h' } },
        { kafka: { topic: 'audit' } },
      ],
    });
    const body = toScheduleBody(decoded);
    const http = {
      id: 'fan',
      deliverAt: '2030-01-01T01:00:00Z',
      payloadBase64: 'AAEC',
      targets: [
        { type: 'kafka', topic: 'orders', key: 'k', headers: { 'x-k': '1' } },
        { type: 'http', url: 'https://a.example.com/h' },
        { type: 'kafka', topic: 'audit' },
      ],
    };
    assert.deepEqual(body, http);
    // `type` is optional over HTTP: the same message with or without it.
    const untyped = {
      ...http,
      targets: [
        { topic: 'orders', key: 'k', headers: { 'x-k': '1' } },
        { url: 'https://a.example.com/h' },
        { topic: 'audit' },
      ],
    };
    assert.equal(fingerprint(body), fingerprint(untyped));
  });

  it('leaves the rules to the validator, with the HTTP paths', () => {
    const refusal = (request: Record<string, unknown>): string[] => {
      try {
        parseScheduleRequest(toScheduleBody(overTheWire(request)), LIMITS, NOW);
      } catch (error) {
        assert.ok(error instanceof HourglassError);
        assert.equal(error.code, 'invalid_request');
        return (error.details ?? []).map((detail) => detail.path);
      }
      assert.fail('expected a refusal');
    };
    // No topic, callback or targets: the validator names `topic`.
    assert.deepEqual(refusal({ id: 'a', delayMs: 1, payloadJson: '1' }), ['topic']);
    // A Target with no member is `{}` over HTTP.
    assert.deepEqual(refusal({ id: 'a', delayMs: 1, payloadJson: '1', targets: [{}] }), [
      'targets/0/type',
    ]);
    // An HttpTarget without a url.
    assert.deepEqual(refusal({ id: 'a', delayMs: 1, payloadJson: '1', callback: { name: 'n' } }), [
      'callback/url',
    ]);
    assert.deepEqual(
      refusal({
        id: 'a',
        delayMs: 1,
        payloadJson: '1',
        topic: 't',
        targets: [{ kafka: { topic: 'u' } }],
      }),
      ['topic'],
    );
    assert.deepEqual(
      refusal({
        id: 'a',
        delayMs: 1,
        payloadJson: '1',
        callback: { url: 'http://127.0.0.1/' },
        retry: { maxAttempts: 0, strategy: 'random' },
      }),
      ['retry/strategy', 'retry/maxAttempts'],
    );
    // The SSRF guard refuses a literal address outside allowNetworks at once.
    assert.deepEqual(
      refusal({ id: 'a', delayMs: 1, payloadJson: '1', callback: { url: 'http://10.0.0.1/' } }),
      ['callback/url'],
    );
  });
});

describe('gRPC translation: message views and attempts', () => {
  const base: MessageView = {
    id: 'm1',
    version: 1,
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
        method: 'POST',
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
        attempts: 1,
        finishedAt: '2030-01-01T00:00:00.010Z',
      },
    ],
    retry: DEFAULT_RETRY_STRATEGY,
  };

  it('encodes targets, next attempt and retry; a null topic or key is absent', () => {
    const decoded = responseOverTheWire('Get', toMessagePb(base));
    assert.equal(decoded.version, 1);
    assert.equal('topic' in decoded, false);
    assert.equal('key' in decoded, false);
    assert.equal(decoded.nextAttemptAt, '2030-01-01T00:00:20.000Z');
    assert.deepEqual(decoded.retry, { ...DEFAULT_RETRY_STRATEGY });
    assert.deepEqual(decoded.targets, [
      {
        index: 0,
        type: 'http',
        url: 'https://shop.example.com/h',
        method: 'POST',
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
        attempts: 1,
        finishedAt: '2030-01-01T00:00:00.010Z',
      },
    ]);
  });

  it('encodes a Kafka-only message with its topic and one target, without retry', () => {
    const view: MessageView = {
      ...base,
      topic: 'orders',
      key: 'k',
      state: 'delivered',
      deliveredAt: '2030-01-01T00:00:01.000Z',
      finishedAt: '2030-01-01T00:00:01.000Z',
      targets: [
        { index: 0, type: 'kafka', topic: 'orders', key: 'k', state: 'delivered', attempts: 1 },
      ],
    };
    delete view.retry;
    delete view.nextAttemptAt;
    delete view.lastError;
    const decoded = responseOverTheWire('Get', toMessagePb(view));
    assert.equal(decoded.topic, 'orders');
    assert.equal(decoded.key, 'k');
    assert.equal(decoded.finishedAt, '2030-01-01T00:00:01.000Z');
    assert.equal('retry' in decoded, false);
    assert.deepEqual(decoded.targets, [
      { index: 0, type: 'kafka', topic: 'orders', key: 'k', state: 'delivered', attempts: 1 },
    ]);
  });

  it('encodes attempts, leaving out what has no value', () => {
    const attempts: AttemptView[] = [
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
        target: 0,
        type: 'http',
        attempt: 2,
        at: '2030-01-01T00:00:20.000Z',
        durationMs: 10_000,
        error: 'timeout',
      },
    ];
    const decoded = responseOverTheWire('ListAttempts', { attempts: attempts.map(toAttemptPb) });
    assert.deepEqual(decoded.attempts, [
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
        target: 0,
        type: 'http',
        attempt: 2,
        at: '2030-01-01T00:00:20.000Z',
        durationMs: 10_000,
        error: 'timeout',
      },
    ]);
  });
});

/**
 * The gRPC ↔ service translation of debounce (`ScheduleRequest.debounce` → the HTTP body's
 * `debounce`, and the answer's `debounced`), through the real protobuf encoding of messages.proto.
 * Each request is checked against the HTTP body of the same request: both must reach the core's
 * `parseDebounce` / `parseScheduleRequest` as the same message, and bad ones must be refused with
 * the same details.
 */
import assert from 'node:assert/strict';
import type { MethodDefinition } from '@grpc/proto-loader';
import { loadSync } from '@grpc/proto-loader';
import type { ErrorDetail, MessageLimits } from '@hourglass/core';
import {
  DEFAULT_RETRY_STRATEGY,
  HourglassError,
  parseDebounce,
  parseScheduleRequest,
} from '@hourglass/core';
import type { MessageView } from '@hourglass/engine';
import { debouncedField } from '../../src/debounce';
import { MESSAGES_PROTO, PROTO_LOADER_OPTIONS, protoDir } from '../../src/proto';
import type { ScheduleRequestPb } from '../../src/translate';
import { toMessagePb, toScheduleBody } from '../../src/translate';

const definition = loadSync(MESSAGES_PROTO, { ...PROTO_LOADER_OPTIONS, includeDirs: [protoDir()] });
const schedule = (
  definition['hourglass.v1.Messages'] as unknown as Record<
    string,
    MethodDefinition<unknown, unknown>
  >
).Schedule!;

/** A request as a client encodes it and the server decodes it (PROTO_LOADER_OPTIONS). */
function overTheWire(request: Record<string, unknown>): Record<string, unknown> {
  return toScheduleBody(
    schedule.requestDeserialize(schedule.requestSerialize(request)) as ScheduleRequestPb,
  );
}

const NOW = Date.parse('2030-01-01T00:00:00.000Z');
const MAX_DELAY_MS = 365 * 86_400_000;
const LIMITS: MessageLimits = {
  maxPayloadBytes: 1024 * 1024,
  maxDelayMs: MAX_DELAY_MS,
  maxBatchSize: 1000,
  retryBase: DEFAULT_RETRY_STRATEGY,
};

/** What the service validates and stores for a debounced body (scheduleDebounced's first steps). */
function accepted(body: Record<string, unknown>) {
  const { debounce, message } = parseDebounce(body, MAX_DELAY_MS);
  const request = parseScheduleRequest(message, LIMITS, NOW);
  return { debounce, deliverAtMs: request.deliverAtMs, fingerprint: request.fingerprint };
}

function refusalDetails(body: Record<string, unknown>): ErrorDetail[] {
  try {
    parseDebounce(body, MAX_DELAY_MS);
  } catch (error) {
    assert.ok(error instanceof HourglassError, String(error));
    assert.equal(error.code, 'invalid_request');
    return [...(error.details ?? [])];
  }
  assert.fail(`expected a refusal of ${JSON.stringify(body)}`);
}

const VIEW: MessageView = {
  id: 'cart-1',
  version: 3,
  app: 'shop',
  topic: 'carts',
  key: null,
  slot: 2,
  deliverAt: '2030-01-01T00:00:08.000Z',
  state: 'scheduled',
  createdAt: '2030-01-01T00:00:00.000Z',
  attempts: 0,
  targets: [{ index: 0, type: 'kafka', topic: 'carts', key: null, state: 'pending', attempts: 0 }],
};

describe('gRPC translation: debounce', () => {
  it('passes a trailing debounce without a due time on as the HTTP body, due windowMs from now', () => {
    const grpc = overTheWire({
      id: 'cart-1',
      topic: 'carts',
      payloadJson: '{"items": 3}',
      debounce: { key: 'cart:42', windowMs: 8000 },
    });
    const http = {
      id: 'cart-1',
      topic: 'carts',
      payload: { items: 3 },
      debounce: { key: 'cart:42', windowMs: 8000 },
    };
    assert.deepEqual(grpc, http);
    const fromGrpc = accepted(grpc);
    assert.deepEqual(fromGrpc, accepted(http));
    assert.deepEqual(fromGrpc.debounce, {
      key: 'cart:42',
      windowMs: 8000,
      maxWaitMs: MAX_DELAY_MS,
      mode: 'trailing',
    });
    assert.equal(fromGrpc.deliverAtMs, NOW + 8000);
  });

  it('passes a leading debounce on with its due time, max wait and mode', () => {
    const grpc = overTheWire({
      topic: 'carts',
      payloadBytes: Buffer.from([1, 2]),
      deliverAtMs: NOW + 60_000,
      debounce: { key: 'k', windowMs: 30_000, maxWaitMs: 90_000, mode: 'leading' },
    });
    const http = {
      topic: 'carts',
      payloadBase64: 'AQI=',
      deliverAt: NOW + 60_000,
      debounce: { key: 'k', windowMs: 30_000, maxWaitMs: 90_000, mode: 'leading' },
    };
    assert.deepEqual(grpc, http);
    const fromGrpc = accepted(grpc);
    assert.deepEqual(fromGrpc, accepted(http));
    assert.equal(fromGrpc.deliverAtMs, NOW + 60_000, 'leading keeps the body’s due time');
    assert.equal(fromGrpc.debounce.mode, 'leading');
  });

  it('sends no debounce when none is set, and an empty Debounce as {} (refused as over HTTP)', () => {
    const plain = overTheWire({ topic: 't', payloadJson: '1', delayMs: 5 });
    assert.equal('debounce' in plain, false);
    const empty = overTheWire({ topic: 't', payloadJson: '1', debounce: {} });
    assert.deepEqual(empty.debounce, {});
    assert.deepEqual(
      refusalDetails(empty).map((d) => d.path),
      ['debounce/key', 'debounce/windowMs'],
    );
  });

  it('refuses a bad debounce with the HTTP details: "" and 0 as HTTP says them', () => {
    // key and window_ms are plain scalars: "" and 0 are not on the wire, and HTTP's "" and 0 get
    // the same words as absent ones.
    const grpc = overTheWire({
      topic: 't',
      payloadJson: '1',
      debounce: { key: '', windowMs: 0, maxWaitMs: 0, mode: '' },
    });
    const http = {
      topic: 't',
      payload: 1,
      debounce: { key: '', windowMs: 0, maxWaitMs: 0, mode: '' },
    };
    const details = refusalDetails(grpc);
    assert.deepEqual(details, refusalDetails(http));
    assert.deepEqual(
      details.map((d) => d.path),
      ['debounce/key', 'debounce/windowMs', 'debounce/maxWaitMs', 'debounce/mode'],
    );
    const negative = overTheWire({
      topic: 't',
      payloadJson: '1',
      debounce: { key: 'k', windowMs: -5, mode: 'middle' },
    });
    assert.deepEqual(
      refusalDetails(negative),
      refusalDetails({
        topic: 't',
        payload: 1,
        debounce: { key: 'k', windowMs: -5, mode: 'middle' },
      }),
    );
  });

  it('refuses a trailing debounce with a due time, naming the oneof member as HTTP names it', () => {
    for (const [due, path] of [
      [{ delayMs: 1000 }, 'delayMs'],
      [{ deliverAtMs: NOW + 1000 }, 'deliverAt'],
      [{ deliverAt: '2030-01-01T00:00:01Z' }, 'deliverAt'],
    ] as const) {
      const grpc = overTheWire({
        topic: 't',
        payloadJson: '1',
        ...due,
        debounce: { key: 'k', windowMs: 1000 },
      });
      const details = refusalDetails(grpc);
      assert.deepEqual(
        details.map((d) => d.path),
        [path],
      );
      assert.match(details[0]!.message, /not with a trailing debounce/);
    }
  });

  it('keeps the batch path: a debounce inside a batch item reaches the service, which refuses it', () => {
    const batch = (
      definition['hourglass.v1.Messages'] as unknown as Record<
        string,
        MethodDefinition<unknown, unknown>
      >
    ).ScheduleBatch!;
    const decoded = batch.requestDeserialize(
      batch.requestSerialize({
        messages: [{ topic: 't', payloadJson: '1', debounce: { key: 'k', windowMs: 5 } }],
      }),
    ) as { messages: ScheduleRequestPb[] };
    assert.deepEqual(toScheduleBody(decoded.messages[0]!, 'messages/0/').debounce, {
      key: 'k',
      windowMs: 5,
    });
  });

  it('answers debounced only for a debounced request, true and false both on the wire', () => {
    const encode = (view: MessageView) => {
      const response = { created: false, message: toMessagePb(view), ...debouncedField(view) };
      return schedule.responseDeserialize(schedule.responseSerialize(response)) as {
        created?: boolean;
        debounced?: boolean;
        message: { id: string };
      };
    };
    const merged = encode({ ...VIEW, debounced: true });
    assert.equal(merged.debounced, true);
    assert.equal(merged.message.id, 'cart-1');
    assert.equal(encode({ ...VIEW, debounced: false }).debounced, false, 'false has presence');
    assert.equal('debounced' in encode(VIEW), false, 'absent for a plain schedule');
    assert.equal('debounced' in toMessagePb({ ...VIEW, debounced: true }), false);
  });
});

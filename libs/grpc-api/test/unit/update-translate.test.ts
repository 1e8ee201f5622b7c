/**
 * The gRPC ↔ service translation of Update (hourglass.v1.UpdateRequest → the PATCH
 * /v1/messages/{id} body and If-Match versions), through the real protobuf encoding of
 * messages.proto, so what is checked is what proto3 presence carries on the wire. The bodies are
 * compared with the HTTP PATCH body of the same change.
 */
import assert from 'node:assert/strict';
import type { MethodDefinition } from '@grpc/proto-loader';
import { loadSync } from '@grpc/proto-loader';
import { HourglassError } from '@hourglass/core';
import type { MessageView } from '@hourglass/engine';
import { MESSAGES_PROTO, PROTO_LOADER_OPTIONS, protoDir } from '../../src/proto';
import { toMessagePb } from '../../src/translate';
import type { UpdateRequestPb } from '../../src/update';
import { toUpdate } from '../../src/update';

const definition = loadSync(MESSAGES_PROTO, { ...PROTO_LOADER_OPTIONS, includeDirs: [protoDir()] });
const update = (
  definition['hourglass.v1.Messages'] as unknown as Record<
    string,
    MethodDefinition<unknown, unknown>
  >
).Update!;

/** A request as a client encodes it and the server decodes it (PROTO_LOADER_OPTIONS). */
function overTheWire(request: Record<string, unknown>): UpdateRequestPb {
  return update.requestDeserialize(update.requestSerialize(request)) as UpdateRequestPb;
}

function refusal(run: () => unknown): HourglassError {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof HourglassError, String(error));
    return error;
  }
  assert.fail('expected a refusal');
}

describe('gRPC translation: Update', () => {
  it('reschedules and replaces the payload, conditionally: the HTTP PATCH body and If-Match', () => {
    const call = toUpdate(
      overTheWire({
        id: 'order-42',
        ifVersion: 3,
        deliverAtMs: 1_900_000_000_000,
        payloadJson: '{"n": 2}',
      }),
    );
    assert.deepEqual(call, {
      id: 'order-42',
      patch: { deliverAt: 1_900_000_000_000, payload: { n: 2 } },
      ifMatch: [3],
    });
    const later = toUpdate(overTheWire({ id: 'a', deliverAt: '2030-01-01T10:00:00Z' }));
    assert.deepEqual(later.patch, { deliverAt: '2030-01-01T10:00:00Z' });
    assert.equal(later.ifMatch, null, 'no if_version: unconditional');
    const soon = toUpdate(
      overTheWire({ id: 'a', delayMs: 0, payloadBytes: Buffer.from([0, 255]) }),
    );
    // delay_ms 0 is present (oneof member), not "unset".
    assert.deepEqual(soon.patch, { delayMs: 0, payloadBase64: 'AP8=' });
  });

  it('sends only what is present: headers, key and topic keep absent apart from empty', () => {
    assert.deepEqual(toUpdate(overTheWire({ id: 'a' })).patch, {}, 'nothing: the service refuses');
    assert.deepEqual(toUpdate(overTheWire({ id: 'a', headers: {} })).patch, { headers: {} });
    assert.deepEqual(
      toUpdate(overTheWire({ id: 'a', headers: { entries: { 'x-trace': 't1' } } })).patch,
      { headers: { 'x-trace': 't1' } },
    );
    assert.deepEqual(toUpdate(overTheWire({ id: 'a', clearKey: true })).patch, { key: null });
    assert.deepEqual(toUpdate(overTheWire({ id: 'a', clearKey: false })).patch, {});
    assert.deepEqual(toUpdate(overTheWire({ id: 'a', key: '' })).patch, { key: '' });
    assert.deepEqual(toUpdate(overTheWire({ id: 'a', topic: 'orders', key: 'k' })).patch, {
      topic: 'orders',
      key: 'k',
    });
  });

  it('replaces the destination and retry strategy with the Schedule field mapping', () => {
    const call = toUpdate(
      overTheWire({
        id: 'a',
        callback: { url: 'https://shop.example.com/h', method: 'PUT', timeoutMs: 5000 },
        retry: { strategy: 'fixed', maxAttempts: 3 },
        contentType: 'text/plain',
      }),
    );
    assert.deepEqual(call.patch, {
      callback: { url: 'https://shop.example.com/h', method: 'PUT', timeoutMs: 5000 },
      retry: { strategy: 'fixed', maxAttempts: 3 },
      contentType: 'text/plain',
    });
    const listed = toUpdate(
      overTheWire({
        id: 'a',
        targets: [
          { kafka: { topic: 'orders', key: 'k' } },
          { http: { url: 'http://127.0.0.1/h' } },
        ],
      }),
    );
    assert.deepEqual(listed.patch, {
      targets: [
        { type: 'kafka', topic: 'orders', key: 'k' },
        { type: 'http', url: 'http://127.0.0.1/h' },
      ],
    });
  });

  it('refuses if_version 0 and payload_json that is not JSON, with HTTP paths', () => {
    const zero = refusal(() => toUpdate(overTheWire({ id: 'a', ifVersion: 0, delayMs: 1 })));
    assert.equal(zero.code, 'invalid_request');
    assert.deepEqual(
      zero.details?.map((d) => d.path),
      ['If-Match'],
    );
    const notJson = refusal(() => toUpdate(overTheWire({ id: 'a', payloadJson: '{nope' })));
    assert.equal(notJson.code, 'invalid_request');
    assert.deepEqual(
      notJson.details?.map((d) => d.path),
      ['payload'],
    );
  });

  it('encodes the message version in the answer', () => {
    const view: MessageView = {
      id: 'a',
      app: 'shop',
      topic: 'orders',
      key: null,
      slot: 0,
      deliverAt: '2030-01-01T00:00:00.000Z',
      state: 'scheduled',
      createdAt: '2029-12-31T00:00:00.000Z',
      attempts: 0,
      targets: [
        { index: 0, type: 'kafka', topic: 'orders', key: null, state: 'pending', attempts: 0 },
      ],
      version: 4,
    };
    const decoded = update.responseDeserialize(update.responseSerialize(toMessagePb(view))) as {
      version?: number;
    };
    assert.equal(decoded.version, 4);
  });
});

/**
 * The wire mapping of `client.update`: the patch is prepared once (Dates, payload vs payloadBytes,
 * a null key), then sent as the HTTP PATCH body or as a gRPC UpdateRequest. The gRPC request goes
 * through the real protobuf encoding and the server's translation, which must reach the same
 * PATCH body as HTTP sends: both transports change a message alike.
 */
import assert from 'node:assert/strict';
import type { MethodDefinition } from '@grpc/proto-loader';
import { loadSync } from '@grpc/proto-loader';
import type { UpdateRequestPb } from '@hourglass/grpc-api';
import { PROTO_LOADER_OPTIONS, toUpdate } from '@hourglass/grpc-api';
import type { MessagePatch } from '../../src';
import { HourglassClientError } from '../../src';
import { LOADER_OPTIONS, toUpdateRequestPb } from '../../src/grpc';
import { patchJson } from '../../src/http';
import { prepareIfVersion, preparePatch } from '../../src/patch';
import { MESSAGES_PROTO, findProtoDir } from '../../src/proto';
import { toMessage } from '../../src/wire';

const load = (options: object) =>
  (
    loadSync(MESSAGES_PROTO, { ...options, includeDirs: [findProtoDir()] })[
      'hourglass.v1.Messages'
    ] as unknown as Record<string, MethodDefinition<unknown, unknown>>
  ).Update!;
/** Encoded as the SDK does, decoded as the server does. */
const clientSide = load(LOADER_OPTIONS);
const serverSide = load(PROTO_LOADER_OPTIONS);

/** The PATCH body each transport makes the server see, and the If-Match versions of gRPC. */
function bothWays(patch: MessagePatch, ifVersion?: number) {
  const wire = preparePatch(patch, 'http');
  const http = JSON.parse(patchJson(wire)) as Record<string, unknown>;
  const bytes = clientSide.requestSerialize(toUpdateRequestPb('m-1', wire, ifVersion));
  const grpc = toUpdate(serverSide.requestDeserialize(bytes) as UpdateRequestPb);
  return { http, grpc };
}

function refusal(run: () => unknown): HourglassClientError {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof HourglassClientError, String(error));
    return error;
  }
  assert.fail('expected a refusal');
}

describe('client.update: the wire mapping', () => {
  it('sends a Date as ISO text, epoch ms as a number, and JSON payloads as they serialise', () => {
    const at = new Date('2030-01-01T10:00:00.000Z');
    const { http, grpc } = bothWays({ deliverAt: at, payload: { n: 2, s: 'ü' } }, 3);
    assert.deepEqual(http, { deliverAt: '2030-01-01T10:00:00.000Z', payload: { n: 2, s: 'ü' } });
    assert.deepEqual(grpc, { id: 'm-1', patch: http, ifMatch: [3] });
    const ms = bothWays({ deliverAt: 1_900_000_000_000 });
    assert.deepEqual(ms.http, { deliverAt: 1_900_000_000_000 });
    assert.deepEqual(ms.grpc.patch, ms.http);
    assert.equal(ms.grpc.ifMatch, null, 'no ifVersion: unconditional');
    const soon = bothWays({ delayMs: 0, payload: null });
    assert.deepEqual(soon.http, { delayMs: 0, payload: null });
    assert.deepEqual(soon.grpc.patch, soon.http);
  });

  it('sends bytes as payloadBase64 / payload_bytes, and only the fields given', () => {
    const { http, grpc } = bothWays({ payloadBytes: new Uint8Array([0, 255, 7]) });
    assert.deepEqual(http, { payloadBase64: 'AP8H' });
    assert.deepEqual(grpc.patch, http);
  });

  it('keeps "remove" apart from "keep": key null and headers {} reach the server as sent', () => {
    const patches: MessagePatch[] = [
      { key: null },
      { key: '' },
      { key: 'k2' },
      { headers: {} },
      { headers: { 'x-trace': 't' } },
    ];
    for (const patch of patches) {
      const { http, grpc } = bothWays(patch);
      assert.deepEqual(http, patch);
      assert.deepEqual(grpc.patch, patch, JSON.stringify(patch));
    }
  });

  it('replaces the destination, retry strategy and content type with the schedule mapping', () => {
    const patch: MessagePatch = {
      topic: 'orders',
      key: 'k',
      callback: { url: 'https://shop.example.com/h', method: 'PUT', envelope: false },
      retry: { strategy: 'fixed', maxAttempts: 3, jitter: false },
      contentType: 'text/plain',
    };
    const { http, grpc } = bothWays(patch);
    assert.deepEqual(http, patch);
    assert.deepEqual(grpc.patch, http);
    const listed = bothWays({ targets: [{ topic: 'orders', key: 'k' }, { url: 'http://h/x' }] });
    assert.deepEqual(listed.http, {
      targets: [
        { type: 'kafka', topic: 'orders', key: 'k' },
        { type: 'http', url: 'http://h/x' },
      ],
    });
    assert.deepEqual(listed.grpc.patch, listed.http);
  });

  it('refuses what a transport cannot express, the same on both', () => {
    for (const transport of ['http', 'grpc'] as const) {
      const both = refusal(() =>
        preparePatch({ payload: 1, payloadBytes: Buffer.from('x') }, transport),
      );
      assert.equal(both.code, 'invalid_request');
      assert.equal(both.transport, transport);
      assert.match(both.message, /^invalid patch: payload: /);
      const times = refusal(() => preparePatch({ deliverAt: 1, delayMs: 1 }, transport));
      assert.deepEqual(
        times.details.map((d) => d.path),
        ['deliverAt'],
      );
      const invalidDate = refusal(() => preparePatch({ deliverAt: new Date('nope') }, transport));
      assert.deepEqual(
        invalidDate.details.map((d) => d.path),
        ['deliverAt'],
      );
      const notObject = refusal(() => preparePatch(null as unknown as MessagePatch, transport));
      assert.deepEqual(
        notObject.details.map((d) => d.path),
        ['/'],
      );
      for (const ifVersion of [0, -1, 1.5, 2 ** 32])
        assert.equal(
          refusal(() => prepareIfVersion({ ifVersion }, transport)).code,
          'invalid_request',
        );
    }
    assert.equal(prepareIfVersion({}, 'http'), undefined);
    assert.equal(prepareIfVersion({ ifVersion: 7 }, 'grpc'), 7);
  });

  it('reads version from both transports; a server older than updates means 1', () => {
    const raw = {
      id: 'm',
      app: 'a',
      slot: 1,
      deliverAt: '2030-01-01T00:00:00.000Z',
      state: 'scheduled',
      createdAt: '2030-01-01T00:00:00.000Z',
      attempts: 0,
    };
    assert.equal(toMessage({ ...raw, version: 5 }).version, 5);
    assert.equal(toMessage(raw).version, 1);
    // gRPC with defaults decodes an unsent uint32 as 0.
    assert.equal(toMessage({ ...raw, version: 0 }).version, 1);
    const decoded = clientSide.responseDeserialize(
      serverSide.responseSerialize({ ...raw, version: 9 }),
    ) as typeof raw & { version: number };
    assert.equal(toMessage(decoded).version, 9);
  });
});

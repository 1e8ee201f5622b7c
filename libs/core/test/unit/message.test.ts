import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import type { MessageLimits } from '@hourglass/core';
import {
  HourglassError,
  parseBatch,
  parseScheduleRequest,
  requestFingerprint,
} from '@hourglass/core';

const limits: MessageLimits = {
  maxPayloadBytes: 1024,
  maxDelayMs: 10 * 86_400_000,
  maxBatchSize: 3,
};
const NOW = Date.parse('2030-01-01T00:00:00Z');

function rejects(body: unknown, code: string, path?: string): void {
  assert.throws(
    () => parseScheduleRequest(body, limits, NOW),
    (error: unknown) => {
      assert.ok(error instanceof HourglassError);
      assert.equal(error.code, code);
      if (path)
        assert.ok(
          error.details?.some((d) => d.path === path),
          JSON.stringify(error.details),
        );
      return true;
    },
  );
}

describe('parseScheduleRequest', () => {
  it('accepts a JSON payload with delayMs and computes the due time from the clock', () => {
    const request = parseScheduleRequest(
      { topic: 'orders', payload: { a: 1 }, delayMs: 1500, key: 'k', headers: { h: 'v' } },
      limits,
      NOW,
    );
    assert.equal(request.deliverAtMs, NOW + 1500);
    assert.equal(request.payload.toString(), '{"a":1}');
    assert.equal(request.payloadEncoding, 'json');
    assert.equal(request.key, 'k');
    assert.deepEqual(request.headers, { h: 'v' });
    assert.equal(request.id, undefined);
  });

  it('accepts base64 bytes and both forms of deliverAt', () => {
    const bytes = Buffer.from([0, 1, 254, 255]);
    const iso = parseScheduleRequest(
      {
        topic: 't',
        payloadBase64: bytes.toString('base64'),
        deliverAt: '2030-01-01T00:00:05.123+00:00',
      },
      limits,
      NOW,
    );
    assert.deepEqual(iso.payload, bytes);
    assert.equal(iso.payloadEncoding, 'binary');
    assert.equal(iso.deliverAtMs, NOW + 5123);
    const epoch = parseScheduleRequest(
      { topic: 't', payload: null, deliverAt: NOW + 7 },
      limits,
      NOW,
    );
    assert.equal(epoch.deliverAtMs, NOW + 7);
    assert.equal(epoch.payload.toString(), 'null');
  });

  it('keeps a past due time (delivered at once)', () => {
    assert.equal(
      parseScheduleRequest({ topic: 't', payload: 1, deliverAt: NOW - 60_000 }, limits, NOW)
        .deliverAtMs,
      NOW - 60_000,
    );
  });

  it('rejects each bad field with a detail naming it', () => {
    rejects('text', 'invalid_request');
    rejects({ topic: 't', payload: 1 }, 'invalid_request', 'deliverAt');
    rejects({ topic: 't', payload: 1, delayMs: 1, deliverAt: NOW }, 'invalid_request', 'deliverAt');
    rejects({ topic: 't', delayMs: 1 }, 'invalid_request', 'payload');
    rejects(
      { topic: 't', payload: 1, payloadBase64: 'AA==', delayMs: 1 },
      'invalid_request',
      'payload',
    );
    rejects(
      { topic: 't', payloadBase64: 'not base64!', delayMs: 1 },
      'invalid_request',
      'payloadBase64',
    );
    rejects({ topic: 'bad topic', payload: 1, delayMs: 1 }, 'invalid_request', 'topic');
    rejects({ payload: 1, delayMs: 1 }, 'invalid_request', 'topic');
    rejects({ id: 'has space', topic: 't', payload: 1, delayMs: 1 }, 'invalid_request', 'id');
    rejects({ id: 'x'.repeat(129), topic: 't', payload: 1, delayMs: 1 }, 'invalid_request', 'id');
    rejects({ topic: 't', payload: 1, delayMs: -1 }, 'invalid_request', 'delayMs');
    rejects({ topic: 't', payload: 1, delayMs: 1.5 }, 'invalid_request', 'delayMs');
    rejects(
      { topic: 't', payload: 1, deliverAt: '2030-01-01 10:00' },
      'invalid_request',
      'deliverAt',
    );
    rejects(
      { topic: 't', payload: 1, deliverAt: '2030-01-01T10:00:00' },
      'invalid_request',
      'deliverAt',
    );
    rejects(
      { topic: 't', payload: 1, delayMs: 1, headers: { a: 1 } },
      'invalid_request',
      'headers/a',
    );
    rejects(
      { topic: 't', payload: 1, delayMs: 1, headers: { 'hourglass-id': 'x' } },
      'invalid_request',
      'headers/hourglass-id',
    );
    rejects({ topic: 't', payload: 1, delayMs: 1, key: 5 }, 'invalid_request', 'key');
    rejects({ topic: 't', payload: 1, delayMs: 1, extra: true }, 'invalid_request', 'extra');
  });

  it('reports every problem of a request at once', () => {
    try {
      parseScheduleRequest({ id: '!', topic: 3, delayMs: 'x' }, limits, NOW, 'messages/2/');
      assert.fail('should throw');
    } catch (error) {
      assert.ok(error instanceof HourglassError);
      assert.deepEqual(error.details?.map((d) => d.path).sort(), [
        'messages/2/delayMs',
        'messages/2/id',
        'messages/2/payload',
        'messages/2/topic',
      ]);
    }
  });

  it('maps the size and delay limits to their own codes', () => {
    rejects(
      { topic: 't', payloadBase64: Buffer.alloc(1025).toString('base64'), delayMs: 1 },
      'payload_too_large',
    );
    rejects({ topic: 't', payload: 'x'.repeat(1030), delayMs: 1 }, 'payload_too_large');
    rejects({ topic: 't', payload: 1, delayMs: 10 * 86_400_000 + 1 }, 'delay_too_long');
    assert.equal(
      parseScheduleRequest({ topic: 't', payload: 1, delayMs: 10 * 86_400_000 }, limits, NOW)
        .deliverAtMs,
      NOW + 10 * 86_400_000,
    );
  });

  it('fingerprints the request as sent: a retried delayMs is identical, other content is not', () => {
    const body = { topic: 't', payload: { a: [1, 2] }, delayMs: 5000, headers: { b: '2', a: '1' } };
    const first = parseScheduleRequest(body, limits, NOW);
    const retried = parseScheduleRequest(
      { ...body, headers: { a: '1', b: '2' } },
      limits,
      NOW + 1000,
    );
    assert.equal(first.fingerprint, retried.fingerprint);
    assert.notEqual(first.deliverAtMs, retried.deliverAtMs);
    for (const changed of [
      { payload: { a: [1, 3] } },
      { delayMs: 5001 },
      { key: 'k' },
      { topic: 'u' },
      { headers: { a: '1' } },
    ]) {
      assert.notEqual(
        parseScheduleRequest({ ...body, ...changed }, limits, NOW).fingerprint,
        first.fingerprint,
        JSON.stringify(changed),
      );
    }
  });

  it('keeps the stored fingerprint formula: sha256(JSON of the rest ‖ NUL ‖ payload bytes)', () => {
    // The formula stored rows were fingerprinted with; a re-send after an upgrade must match.
    const reference = (
      topic: string,
      key: string | null,
      encoding: string,
      headers: Record<string, string>,
      due: unknown,
      payload: Buffer,
    ): string =>
      createHash('sha256')
        .update(
          JSON.stringify([
            topic,
            key,
            encoding,
            Object.keys(headers)
              .sort()
              .map((name) => [name, headers[name]]),
            due,
          ]),
        )
        .update('\u0000')
        .update(payload)
        .digest('base64url');
    assert.equal(
      parseScheduleRequest({ topic: 't', payload: { n: 1 }, deliverAt: NOW }, limits, NOW)
        .fingerprint,
      'OQULKiB_R40-P80vLr9g2x4Rc7v6O9KDdoBN3Uj5IX8',
    );
    const text = fc.string({ unit: 'grapheme', maxLength: 8 });
    fc.assert(
      fc.property(
        fc.jsonValue({ maxDepth: 2 }),
        fc.uint8Array({ maxLength: 16 }),
        fc.option(text, { nil: undefined }),
        fc.dictionary(fc.stringMatching(/^[a-z]{1,4}$/), text, { maxKeys: 3 }),
        fc.boolean(),
        fc.oneof(
          fc.record({ delayMs: fc.nat(86_400_000) }),
          fc.record({ deliverAt: fc.integer({ min: 0, max: NOW + 86_400_000 }) }),
          fc
            .integer({ min: 0, max: NOW + 86_400_000 })
            .map((ms) => ({ deliverAt: new Date(ms).toISOString().replace('Z', '+00:00') })),
        ),
        fc.stringMatching(/^[A-Za-z0-9._-]{1,20}$/).filter((t) => t !== '.' && t !== '..'),
        (json, bytes, key, headers, binary, due, topic) => {
          const body = binary
            ? { payloadBase64: Buffer.from(bytes).toString('base64') }
            : { payload: json };
          const request = parseScheduleRequest(
            { topic, key, headers, ...due, ...body },
            { ...limits, maxPayloadBytes: 1 << 20 },
            NOW,
          );
          const encoding = binary ? 'binary' : 'json';
          assert.equal(
            request.fingerprint,
            reference(topic, key ?? null, encoding, headers, due, request.payload),
          );
          assert.equal(
            requestFingerprint(topic, key ?? null, request.payload, encoding, headers, due),
            request.fingerprint,
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it('never throws anything but a HourglassError, whatever the input', () => {
    fc.assert(
      fc.property(fc.anything(), (body) => {
        try {
          parseScheduleRequest(body, limits, NOW);
        } catch (error) {
          assert.ok(error instanceof HourglassError, String(error));
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe('parseBatch', () => {
  it('requires 1 to maxBatchSize messages', () => {
    assert.equal(parseBatch({ messages: [{}, {}] }, limits).length, 2);
    assert.throws(() => parseBatch({ messages: [] }, limits), { code: 'batch_too_large' });
    assert.throws(() => parseBatch({ messages: [1, 2, 3, 4] }, limits), {
      code: 'batch_too_large',
    });
    assert.throws(() => parseBatch({ msgs: [] }, limits), { code: 'invalid_request' });
  });
});

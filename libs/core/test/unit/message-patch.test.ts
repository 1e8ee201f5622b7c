import assert from 'node:assert/strict';
import type { MessageLimits, StoredMessage } from '@hourglass/core';
import {
  AddressPolicy,
  HourglassError,
  ifMatchAllows,
  mergeMessagePatch,
  messageEtag,
  parseIfMatch,
  parseScheduleRequest,
} from '@hourglass/core';

const NOW = Date.parse('2030-01-01T00:00:00Z');
const LIMITS: MessageLimits = {
  maxPayloadBytes: 1 << 20,
  maxDelayMs: 3650 * 86_400_000,
  maxBatchSize: 1000,
  targets: { maxTargets: 8, defaultTimeoutMs: 10_000, policy: new AddressPolicy(['127.0.0.0/8']) },
};

function stored(overrides: Partial<StoredMessage> = {}): StoredMessage {
  return {
    app: 'shop',
    id: 'm-1',
    slot: 3,
    topic: 'orders',
    key: 'customer-1',
    payload: Buffer.from(JSON.stringify({ order: 1 })),
    payloadEncoding: 'json',
    headers: { 'x-trace': 't-1' },
    deliverAtMs: NOW + 60_000,
    state: 'scheduled',
    createdAtMs: NOW - 1000,
    finishedAtMs: null,
    attempts: 0,
    lastError: null,
    fingerprint: 'f',
    targets: null,
    version: 1,
    ...overrides,
  };
}

/** The stored message as parseScheduleRequest makes it from a full request body. */
function fromRequest(body: Record<string, unknown>): StoredMessage {
  const request = parseScheduleRequest(body, LIMITS, NOW);
  return stored({
    topic: request.topic,
    key: request.key,
    payload: request.payload,
    payloadEncoding: request.payloadEncoding,
    headers: request.headers,
    deliverAtMs: request.deliverAtMs,
    targets: request.targets,
    retry: request.retry,
    contentType: request.contentType,
  });
}

function invalidAt(path: string) {
  return (error: unknown) =>
    error instanceof HourglassError &&
    error.code === 'invalid_request' &&
    (error.details ?? []).some((detail) => detail.path === path);
}

describe('mergeMessagePatch', () => {
  it('keeps everything a patch does not name, so an unchanged merge validates to the same message', () => {
    for (const message of [
      stored(),
      stored({ payload: Buffer.from([0, 255, 7]), payloadEncoding: 'binary', key: null }),
      fromRequest({
        targets: [
          { topic: 'orders', key: 'k', headers: { a: 'b' } },
          { url: 'http://127.0.0.1:9/hook', method: 'PUT', name: 'h', expectBody: 'ok' },
        ],
        payload: [1, 'two'],
        deliverAt: NOW + 5000,
        retry: { strategy: 'linear', initialDelayMs: 1000, maxAttempts: 4 },
        contentType: 'text/plain',
      }),
    ]) {
      const { body, timeChanged, targetsChanged } = mergeMessagePatch(message, {
        headers: message.headers,
      });
      assert.equal(timeChanged, false);
      assert.equal(targetsChanged, false);
      const request = parseScheduleRequest(body, LIMITS, NOW);
      assert.deepEqual(request.payload, message.payload);
      assert.equal(request.payloadEncoding, message.payloadEncoding);
      assert.equal(request.topic, message.topic);
      assert.equal(request.key, message.key);
      assert.deepEqual(request.targets, message.targets);
      assert.deepEqual(request.retry, message.retry ?? null);
      assert.equal(request.contentType, message.contentType ?? null);
      assert.equal(request.deliverAtMs, message.deliverAtMs);
    }
  });

  it('replaces the due time, in either form, and says so', () => {
    const later = mergeMessagePatch(stored(), { delayMs: 10 });
    assert.equal(later.timeChanged, true);
    assert.equal(parseScheduleRequest(later.body, LIMITS, NOW).deliverAtMs, NOW + 10);
    const at = mergeMessagePatch(stored(), { deliverAt: '2030-01-02T00:00:00Z' });
    assert.equal(
      parseScheduleRequest(at.body, LIMITS, NOW).deliverAtMs,
      Date.parse('2030-01-02T00:00:00Z'),
    );
  });

  it('keeps the due time asked for when a retry moved the next attempt', () => {
    const retried = stored({ deliverAtMs: NOW + 90_000, firstDeliverAtMs: NOW + 1000 });
    const { body } = mergeMessagePatch(retried, { payload: 2 });
    assert.equal(body.deliverAt, NOW + 1000);
  });

  it('switches between payload and payloadBase64', () => {
    const binary = mergeMessagePatch(stored(), { payloadBase64: 'AAE=' });
    const request = parseScheduleRequest(binary.body, LIMITS, NOW);
    assert.equal(request.payloadEncoding, 'binary');
    assert.deepEqual(request.payload, Buffer.from([0, 1]));
  });

  it('replaces the whole destination when topic, callback or targets is named', () => {
    const toCallback = mergeMessagePatch(stored(), { callback: { url: 'http://127.0.0.1:9/' } });
    assert.equal(toCallback.targetsChanged, true);
    const request = parseScheduleRequest(toCallback.body, LIMITS, NOW);
    assert.equal(request.targets?.length, 1);
    assert.equal(request.targets?.[0]?.type, 'http');
    assert.equal(request.key, null, 'the old Kafka key goes with the old destination');
    const toTopic = mergeMessagePatch(stored(), { topic: 'other', key: 'k-9' });
    const kafka = parseScheduleRequest(toTopic.body, LIMITS, NOW);
    assert.equal(kafka.topic, 'other');
    assert.equal(kafka.key, 'k-9');
  });

  it('changes the key of a topic message, and refuses a key beside a target list', () => {
    const keyed = mergeMessagePatch(stored(), { key: null });
    assert.equal(parseScheduleRequest(keyed.body, LIMITS, NOW).key, null);
    const listed = fromRequest({
      targets: [{ topic: 'orders' }, { url: 'http://127.0.0.1:9/' }],
      payload: 1,
      delayMs: 1,
    });
    assert.throws(() => mergeMessagePatch(listed, { key: 'k' }), invalidAt('key'));
  });

  it('refuses a patch that is not an object, is empty, names the id or an unknown field', () => {
    assert.throws(() => mergeMessagePatch(stored(), []), invalidAt('/'));
    assert.throws(() => mergeMessagePatch(stored(), {}), invalidAt('/'));
    assert.throws(() => mergeMessagePatch(stored(), { id: 'x' }), invalidAt('id'));
    assert.throws(() => mergeMessagePatch(stored(), { colour: 1 }), invalidAt('colour'));
  });

  it('leaves validation of the merged values to parseScheduleRequest', () => {
    const { body } = mergeMessagePatch(stored(), { payload: 1, payloadBase64: 'AA==' });
    assert.throws(() => parseScheduleRequest(body, LIMITS, NOW), invalidAt('payload'));
    const late = mergeMessagePatch(stored(), { delayMs: 3651 * 86_400_000 });
    assert.throws(
      () => parseScheduleRequest(late.body, LIMITS, NOW),
      (error: unknown) => error instanceof HourglassError && error.code === 'delay_too_long',
    );
  });
});

describe('If-Match and ETags', () => {
  it('reads *, strong and weak ETags and lists of them', () => {
    assert.equal(parseIfMatch(undefined), null);
    assert.equal(parseIfMatch(' * '), 'any');
    assert.deepEqual(parseIfMatch('"3"'), [3]);
    assert.deepEqual(parseIfMatch('W/"2", "5"'), [2, 5]);
    assert.equal(messageEtag(7), '"7"');
    assert.deepEqual(parseIfMatch(messageEtag(7)), [7]);
  });

  it('refuses anything else with the header named', () => {
    for (const header of ['3', '"0"', '"x"', '', '"1",', '"99999999999"'])
      assert.throws(() => parseIfMatch(header), invalidAt('If-Match'), header);
  });

  it('allows a version only when it is named, or anything for * and no header', () => {
    assert.equal(ifMatchAllows(null, 4), true);
    assert.equal(ifMatchAllows('any', 4), true);
    assert.equal(ifMatchAllows([3, 4], 4), true);
    assert.equal(ifMatchAllows([3], 4), false);
  });
});

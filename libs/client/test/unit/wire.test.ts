import assert from 'node:assert/strict';
import { ERROR_TABLE } from '@hourglass/core';
import {
  HourglassClientError,
  RETRIABLE_SERVER_CODES,
  SERVER_ERROR_CODES,
  uuidv7,
} from '../../src';
import { messageJson } from '../../src/http';
import { toScheduleRequestPb } from '../../src/grpc';
import { prepareMessage } from '../../src/wire';

describe('request preparation', () => {
  it('generates a UUIDv7 id once, before the first attempt, when none is given', () => {
    const wire = prepareMessage({ topic: 't', payload: 1, delayMs: 5 }, 'http');
    assert.match(wire.id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(
      prepareMessage({ id: 'mine', topic: 't', payload: 1, delayMs: 5 }, 'http').id,
      'mine',
    );
  });

  it('UUIDv7 ids carry their millisecond and sort by it', () => {
    const early = uuidv7(1_700_000_000_000);
    const late = uuidv7(1_700_000_000_001);
    assert.equal(
      early.slice(0, 13).replace('-', ''),
      (1_700_000_000_000).toString(16).padStart(12, '0'),
    );
    assert.ok(early < late);
    assert.notEqual(uuidv7(5), uuidv7(5));
  });

  it('sends the same payload and due time on both transports', () => {
    const deliverAt = new Date('2030-01-01T10:00:00.000Z');
    const wire = prepareMessage(
      {
        id: 'a',
        topic: 't',
        key: 'k',
        payload: { b: [1, null], a: 'é' },
        headers: { h: 'v' },
        deliverAt,
      },
      'http',
    );
    assert.deepEqual(JSON.parse(messageJson(wire)), {
      id: 'a',
      topic: 't',
      key: 'k',
      headers: { h: 'v' },
      deliverAt: '2030-01-01T10:00:00.000Z',
      payload: { b: [1, null], a: 'é' },
    });
    assert.deepEqual(toScheduleRequestPb(wire), {
      id: 'a',
      topic: 't',
      key: 'k',
      headers: { h: 'v' },
      deliverAt: '2030-01-01T10:00:00.000Z',
      payloadJson: '{"b":[1,null],"a":"é"}',
    });
    const epoch = prepareMessage(
      { id: 'b', topic: 't', payloadBytes: Buffer.from([1, 2]), deliverAt: 1_900_000_000_000 },
      'grpc',
    );
    assert.deepEqual(JSON.parse(messageJson(epoch)), {
      id: 'b',
      topic: 't',
      payloadBase64: 'AQI=',
      deliverAt: 1_900_000_000_000,
    });
    assert.deepEqual(toScheduleRequestPb(epoch), {
      id: 'b',
      topic: 't',
      payloadBytes: Buffer.from([1, 2]),
      deliverAtMs: 1_900_000_000_000,
    });
    const nullPayload = prepareMessage({ id: 'c', topic: 't', payload: null, delayMs: 0 }, 'http');
    assert.deepEqual(JSON.parse(messageJson(nullPayload)), {
      id: 'c',
      topic: 't',
      delayMs: 0,
      payload: null,
    });
  });

  it('refuses what one transport could not express, with the server code', () => {
    for (const message of [
      { topic: 't', payload: 1, payloadBytes: Buffer.from('x'), delayMs: 1 },
      { topic: 't', payload: 1, delayMs: 1, deliverAt: 5 },
      { topic: 't', payload: 1n, delayMs: 1 },
      { topic: 't', payload: 1, deliverAt: new Date(Number.NaN) },
    ]) {
      assert.throws(
        () => prepareMessage(message, 'grpc', 'messages/2/'),
        (error: unknown) =>
          error instanceof HourglassClientError &&
          error.code === 'invalid_request' &&
          error.details[0]!.path.startsWith('messages/2/'),
      );
    }
  });
});

describe('error codes', () => {
  it('lists exactly the server ERROR_TABLE codes, with the same retriable ones', () => {
    assert.deepEqual([...SERVER_ERROR_CODES].sort(), Object.keys(ERROR_TABLE).sort());
    const retriable = Object.entries(ERROR_TABLE)
      .filter(([, spec]) => spec.retriable)
      .map(([code]) => code);
    assert.deepEqual([...RETRIABLE_SERVER_CODES].sort(), retriable.sort());
  });
});

import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { MessageLimits } from '@hourglass/core';
import {
  HourglassError,
  isTopicName,
  jsonDepthExceeds,
  jsonTextDepthExceeds,
  parseScheduleRequest,
  textProblem,
  topicCollisionKey,
  topicNameProblem,
} from '@hourglass/core';

const limits: MessageLimits = { maxPayloadBytes: 1 << 20, maxDelayMs: 86_400_000, maxBatchSize: 3 };
const NOW = Date.parse('2030-01-01T00:00:00Z');

/** `[[[…]]]` nested `depth` levels, built without recursion. */
function nestedArrays(depth: number): unknown {
  let value: unknown = 1;
  for (let i = 0; i < depth; i++) value = [value];
  return value;
}

function nestedObjects(depth: number): unknown {
  let value: unknown = 'leaf';
  for (let i = 0; i < depth; i++) value = { a: value };
  return value;
}

function refusal(body: unknown, options: Partial<MessageLimits> = {}): HourglassError {
  try {
    parseScheduleRequest(body, { ...limits, ...options }, NOW);
  } catch (error) {
    assert.ok(error instanceof HourglassError, String(error));
    return error;
  }
  assert.fail(`accepted ${JSON.stringify(body)?.slice(0, 200)}`);
}

describe('topic names (Kafka rules)', () => {
  it('accepts 1-249 characters of A-Z a-z 0-9 . _ -', () => {
    for (const name of ['a', 'A.b_c-D9', '...a', '_', '-', 'x'.repeat(249), '.a', 'a..']) {
      assert.equal(topicNameProblem(name), null, name);
      assert.ok(isTopicName(name));
    }
  });

  it('refuses "." and "..", empty, too long, other characters and non-strings', () => {
    for (const name of ['.', '..', '', 'x'.repeat(250), 'a b', 'a/b', 'ä', 'a\u0000', 5, null]) {
      assert.notEqual(topicNameProblem(name), null, JSON.stringify(name));
      assert.equal(isTopicName(name), false);
    }
  });

  it('gives names that differ only by . and _ the same collision key', () => {
    assert.equal(topicCollisionKey('a.b_c'), topicCollisionKey('a_b.c'));
    assert.notEqual(topicCollisionKey('a.b'), topicCollisionKey('a-b'));
  });
});

describe('JSON depth', () => {
  it('counts containers: scalars 0, [] 1, {"a": [1]} 2', () => {
    assert.equal(jsonDepthExceeds(1, 0), false);
    assert.equal(jsonDepthExceeds('x', 0), false);
    assert.equal(jsonDepthExceeds(null, 0), false);
    assert.equal(jsonDepthExceeds([], 0), true);
    assert.equal(jsonDepthExceeds([], 1), false);
    assert.equal(jsonDepthExceeds({ a: [1] }, 1), true);
    assert.equal(jsonDepthExceeds({ a: [1] }, 2), false);
    assert.equal(jsonDepthExceeds([1, [2, [3]], { b: {} }], 3), false);
    assert.equal(jsonDepthExceeds([1, [2, [3]], { b: { c: [] } }], 3), true);
  });

  it('measures values nested 1,000,000 levels deep without overflowing the stack', () => {
    assert.equal(jsonDepthExceeds(nestedArrays(1_000_000), 64), true);
    assert.equal(jsonDepthExceeds(nestedObjects(1_000_000), 64), true);
    assert.equal(jsonDepthExceeds(nestedArrays(64), 64), false);
  });

  it('measures text the same way as the parsed value, ignoring brackets inside strings', () => {
    const samples = ['1', '[]', '{"a":[1]}', '["[[[", {"}": "{"}]', '"\\"[["', '[[],[[]],{}]'];
    for (const text of samples) {
      for (let max = 0; max < 4; max++) {
        const expected = jsonDepthExceeds(JSON.parse(text), max);
        assert.equal(jsonTextDepthExceeds(text, max), expected, `${text} at ${max}`);
        assert.equal(jsonTextDepthExceeds(Buffer.from(text), max), expected, `${text} at ${max}`);
      }
    }
    const deep = `${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}`;
    assert.equal(jsonTextDepthExceeds(deep, 80), true);
    assert.equal(jsonTextDepthExceeds(Buffer.from(deep), 80), true);
  });

  it('agrees with the parsed value on any JSON', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), fc.integer({ min: 0, max: 8 }), (value, max) => {
        const text = JSON.stringify(value);
        const expected = jsonDepthExceeds(JSON.parse(text), max);
        return (
          jsonTextDepthExceeds(text, max) === expected &&
          jsonTextDepthExceeds(Buffer.from(text), max) === expected
        );
      }),
    );
  });
});

describe('parseScheduleRequest: input Postgres or the stack cannot take', () => {
  const base = { topic: 't', payload: 1, delayMs: 0 };

  it('refuses NUL in the key and in header names and values, naming the field', () => {
    assert.notEqual(textProblem('a\u0000b'), null);
    const key = refusal({ ...base, key: 'a\u0000b' });
    assert.equal(key.code, 'invalid_request');
    assert.deepEqual(
      key.details?.map((d) => d.path),
      ['key'],
    );
    const value = refusal({ ...base, headers: { 'x-foo': 'v\u0000' } });
    assert.deepEqual(
      value.details?.map((d) => d.path),
      ['headers/x-foo'],
    );
    const name = refusal({ ...base, headers: { 'x\u0000': 'v' } });
    assert.deepEqual(
      name.details?.map((d) => d.path),
      ['headers/x\u0000'],
    );
    // In a batch the path carries the position.
    assert.throws(
      () => parseScheduleRequest({ ...base, key: '\u0000' }, limits, NOW, 'messages/3/'),
      (error: HourglassError) => error.details?.[0]?.path === 'messages/3/key',
    );
  });

  it('refuses lone surrogates in the key and headers (stored as U+FFFD otherwise), not pairs', () => {
    assert.equal(textProblem('emoji \ud83d\ude00'), null);
    assert.match(String(textProblem('a\ud800')), /lone surrogate/);
    assert.match(String(textProblem('\udc00')), /lone surrogate/);
    assert.match(String(textProblem('\u0000')), /NUL/);
    for (const [extra, field] of [
      [{ key: 'a\ud800' }, 'key'],
      [{ headers: { 'x-foo': '\udfff' } }, 'headers/x-foo'],
      [{ headers: { '\ud800': 'v' } }, 'headers/\ud800'],
    ] as const) {
      const error = refusal({ ...base, ...extra });
      assert.deepEqual(
        error.details?.map((d) => d.path),
        [field],
      );
    }
    parseScheduleRequest(
      { ...base, key: '\ud83d\ude00', headers: { h: '\ud83d\ude00' } },
      limits,
      NOW,
    );
  });

  it('accepts NUL escaped inside a JSON payload (stored as bytes, not text)', () => {
    const request = parseScheduleRequest({ ...base, payload: 'a\u0000b' }, limits, NOW);
    assert.equal(request.payload.toString(), '"a\\u0000b"');
  });

  it('refuses a payload nested deeper than maxPayloadDepth (default 64), even 100,000 levels', () => {
    parseScheduleRequest({ ...base, payload: nestedArrays(64) }, limits, NOW);
    for (const payload of [nestedArrays(65), nestedArrays(100_000), nestedObjects(100_000)]) {
      const error = refusal({ ...base, payload });
      assert.equal(error.code, 'invalid_request');
      assert.deepEqual(
        error.details?.map((d) => d.path),
        ['payload'],
      );
      assert.match(error.message, /64 levels/);
    }
    const lower = refusal({ ...base, payload: nestedArrays(3) }, { maxPayloadDepth: 2 });
    assert.match(lower.message, /2 levels/);
  });

  it('refuses the topics "." and ".."', () => {
    for (const topic of ['.', '..']) {
      const error = refusal({ ...base, topic });
      assert.deepEqual(
        error.details?.map((d) => d.path),
        ['topic'],
      );
    }
    parseScheduleRequest({ ...base, topic: '...' }, limits, NOW);
  });
});

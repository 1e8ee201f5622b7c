import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isoTime } from '@hourglass/core';

describe('isoTime', () => {
  it('is toISOString, at day, second and year edges', () => {
    for (const ms of [
      0,
      1,
      999,
      1000,
      59_999,
      86_399_999,
      86_400_000,
      951_782_400_000, // 2000-02-29
      951_868_799_999,
      253_402_300_799_999, // 9999-12-31T23:59:59.999Z
    ])
      assert.equal(isoTime(ms), new Date(ms).toISOString(), String(ms));
  });

  it('is toISOString for any instant, in any order (the day cache never leaks)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.integer({ min: 0, max: 253_402_300_799_999 }),
            // Today ± a few days: the cache's common case, with collisions between entries.
            fc.integer({ min: Date.now() - 8 * 86_400_000, max: Date.now() + 8 * 86_400_000 }),
            fc.integer({ min: -62_167_219_200_000, max: 8_640_000_000_000_000 }),
          ),
          {
            minLength: 1,
            maxLength: 20,
          },
        ),
        (instants) => {
          for (const ms of instants) assert.equal(isoTime(ms), new Date(ms).toISOString());
        },
      ),
      { numRuns: 2000 },
    );
    for (const ms of [-1, 1.5, 253_402_300_800_000])
      assert.equal(isoTime(ms), new Date(ms).toISOString());
    assert.throws(() => isoTime(Number.NaN), RangeError);
  });
});

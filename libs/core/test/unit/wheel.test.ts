import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { WheelItem } from '../../src/wheel';
import { TimingWheel } from '../../src/wheel';

const T0 = 1_700_000_000_000;

// Tests name items; the wheel holds numbers. Each name gets a seq of its own, for the whole file.
const seqOfName = new Map<string, number>();
const nameOfSeq = new Map<number, string>();

function seqOf(name: string): number {
  let seq = seqOfName.get(name);
  if (seq === undefined) {
    seq = 1_000 + seqOfName.size;
    seqOfName.set(name, seq);
    nameOfSeq.set(seq, name);
  }
  return seq;
}

function item(name: string, dueMs: number, slot = 0): WheelItem {
  return { seq: seqOf(name), slot, dueMs };
}

function keysOf(items: readonly WheelItem[]): string[] {
  return items.map((i) => nameOfSeq.get(i.seq) ?? `seq ${i.seq}`);
}

describe('TimingWheel', () => {
  describe('constructor', () => {
    it('starts empty at startMs', () => {
      const wheel = new TimingWheel({ spanMs: 1000, startMs: T0 });
      assert.equal(wheel.size, 0);
      assert.equal(wheel.position, T0);
      assert.equal(wheel.nextDueMs(), undefined);
      assert.deepEqual(wheel.advance(T0 + 10_000), []);
    });

    it('rejects a span that is not a positive integer or is too large, and a fractional start', () => {
      assert.throws(() => new TimingWheel({ spanMs: 0, startMs: T0 }), RangeError);
      assert.throws(() => new TimingWheel({ spanMs: 1.5, startMs: T0 }), RangeError);
      assert.throws(() => new TimingWheel({ spanMs: 2 ** 25, startMs: T0 }), RangeError);
      assert.throws(() => new TimingWheel({ spanMs: 10, startMs: T0 + 0.5 }), RangeError);
    });
  });

  describe('insert', () => {
    it('fires exactly at the due millisecond, never before', () => {
      const wheel = new TimingWheel({ spanMs: 1000, startMs: T0 });
      wheel.insert(item('a', T0 + 250));
      assert.deepEqual(wheel.advance(T0 + 249), []);
      assert.equal(wheel.size, 1);
      assert.deepEqual(wheel.advance(T0 + 250), [item('a', T0 + 250)]);
      assert.equal(wheel.size, 0);
    });

    it('does not deduplicate: an item inserted twice is held and fired twice', () => {
      const wheel = new TimingWheel({ spanMs: 1000, startMs: T0 });
      wheel.insert(item('a', T0 + 10, 3));
      wheel.insert(item('a', T0 + 5, 4));
      wheel.insert(item('a', T0 + 10, 3));
      assert.equal(wheel.size, 3);
      assert.deepEqual(wheel.advance(T0 + 9), [item('a', T0 + 5, 4)]);
      assert.deepEqual(wheel.advance(T0 + 10), [item('a', T0 + 10, 3), item('a', T0 + 10, 3)]);
      assert.equal(wheel.size, 0);
    });

    it('keeps seqs exact up to 2^53 - 1', () => {
      const wheel = new TimingWheel({ spanMs: 1000, startMs: T0 });
      const seqs = [
        0,
        1,
        2 ** 32,
        2 ** 32 + 1,
        Number.MAX_SAFE_INTEGER - 1,
        Number.MAX_SAFE_INTEGER,
      ];
      seqs.forEach((seq, n) => wheel.insert({ seq, slot: n, dueMs: T0 + n }));
      assert.deepEqual(
        wheel.advance(T0 + 10).map((i) => i.seq),
        seqs,
      );
    });

    it('fires an item due in the past on the next advance, even at the same position', () => {
      const wheel = new TimingWheel({ spanMs: 1000, startMs: T0 });
      wheel.advance(T0 + 500);
      wheel.insert(item('late', T0 + 100));
      wheel.insert(item('now', T0 + 500));
      wheel.insert(item('later', T0 + 300));
      assert.equal(wheel.nextDueMs(), T0 + 100);
      assert.deepEqual(keysOf(wheel.advance(T0 + 500)), ['late', 'later', 'now']);
    });

    it('fires the initial position on the first advance', () => {
      const wheel = new TimingWheel({ spanMs: 8, startMs: T0 });
      wheel.insert(item('a', T0));
      assert.deepEqual(keysOf(wheel.advance(T0)), ['a']);
    });

    it('rejects fractional or unsafe due times, out-of-range slots and seqs', () => {
      const wheel = new TimingWheel({ spanMs: 1000, startMs: T0 });
      for (const seq of [-1, 1.5, 2 ** 53, Number.NaN, Number.POSITIVE_INFINITY]) {
        assert.throws(() => wheel.insert({ seq, slot: 0, dueMs: T0 }), RangeError, String(seq));
      }
      assert.throws(() => wheel.insert(item('a', T0 + 0.5)), RangeError);
      assert.throws(() => wheel.insert(item('a', Number.NaN)), RangeError);
      assert.throws(() => wheel.insert(item('a', 2 ** 53)), RangeError);
      assert.throws(() => wheel.insert(item('a', T0, -1)), RangeError);
      assert.throws(() => wheel.insert(item('a', T0, 65_536)), RangeError);
      assert.throws(() => wheel.insert(item('a', T0, 1.5)), RangeError);
      assert.equal(wheel.size, 0);
    });

    it('grows past its initial capacity and reuses freed handles', () => {
      const wheel = new TimingWheel({ spanMs: 1024, startMs: T0 });
      for (let round = 0; round < 3; round++) {
        for (let i = 0; i < 5000; i++)
          wheel.insert(item(`k${round}-${i}`, T0 + 1 + (i % 1000), i % 7));
        assert.equal(wheel.size, 5000);
        const fired = wheel.advance(wheel.position + 1000);
        assert.equal(fired.length, 5000);
        for (let i = 1; i < fired.length; i++) assert.ok(fired[i - 1]!.dueMs <= fired[i]!.dueMs);
        assert.equal(wheel.size, 0);
        wheel.advance(T0);
      }
    });
  });

  describe('ordering', () => {
    it('fires ties in insertion order, also across overflow and late items', () => {
      const wheel = new TimingWheel({ spanMs: 16, startMs: T0 });
      const due = T0 + 100;
      wheel.insert(item('overflow-1', due));
      wheel.insert(item('overflow-2', due));
      wheel.advance(due - 10); // due is now within the span: the overflow items moved to a bucket
      wheel.insert(item('bucket-3', due));
      wheel.advance(due + 5, 0); // position passes due, nothing fires
      wheel.insert(item('bucket-4', due));
      wheel.insert(item('early', due - 1));
      assert.deepEqual(keysOf(wheel.advance(due + 5)), [
        'early',
        'overflow-1',
        'overflow-2',
        'bucket-3',
        'bucket-4',
      ]);
    });

    it('returns items in due order whatever the insertion order', () => {
      const wheel = new TimingWheel({ spanMs: 64, startMs: T0 });
      const dues = [50, 3, 700, 3, 64, 65, 1, 63, 10_000, 2];
      dues.forEach((d, n) => wheel.insert(item(`k${n}`, T0 + d)));
      const fired = wheel.advance(T0 + 20_000);
      assert.deepEqual(
        fired.map((i) => i.dueMs - T0),
        [...dues].sort((a, b) => a - b),
      );
      assert.deepEqual(keysOf(fired.slice(2, 4)), ['k1', 'k3']);
    });
  });

  describe('dropSlot', () => {
    it('unlinks from the middle, head and tail of a bucket', () => {
      const wheel = new TimingWheel({ spanMs: 100, startMs: T0 });
      for (const [k, slot] of [
        ['a', 1],
        ['b', 0],
        ['c', 1],
        ['d', 0],
        ['e', 1],
      ] as const)
        wheel.insert(item(k, T0 + 7, slot));
      assert.equal(wheel.dropSlot(1), 3);
      wheel.insert(item('f', T0 + 7));
      assert.deepEqual(keysOf(wheel.advance(T0 + 7)), ['b', 'd', 'f']);
    });

    it('reuses dropped handles', () => {
      const wheel = new TimingWheel({ spanMs: 100, startMs: T0 });
      wheel.insert(item('a', T0 + 10, 1));
      wheel.dropSlot(1);
      wheel.insert(item('a', T0 + 20, 2));
      assert.equal(wheel.size, 1);
      assert.deepEqual(wheel.advance(T0 + 15), []);
      assert.deepEqual(wheel.advance(T0 + 20), [item('a', T0 + 20, 2)]);
    });

    it('removes only that slot and returns how many it removed', () => {
      const wheel = new TimingWheel({ spanMs: 16, startMs: T0 });
      wheel.advance(T0 + 100);
      wheel.insert(item('a1', T0 + 50, 1));
      wheel.insert(item('a2', T0 + 105, 1));
      wheel.insert(item('a3', T0 + 9_000, 1));
      wheel.insert(item('b1', T0 + 105, 2));
      wheel.insert(item('b2', T0 + 9_000, 2));
      assert.equal(wheel.dropSlot(1), 3);
      assert.equal(wheel.dropSlot(1), 0);
      assert.equal(wheel.dropSlot(3), 0);
      assert.equal(wheel.size, 2);
      assert.deepEqual(keysOf(wheel.advance(T0 + 10_000)), ['b1', 'b2']);
    });

    it('drops several slots in one call, wherever their items are held', () => {
      const wheel = new TimingWheel({ spanMs: 16, startMs: T0 });
      wheel.advance(T0 + 100);
      wheel.insert(item('a1', T0 + 50, 1)); // late
      wheel.insert(item('b1', T0 + 105, 2)); // bucket
      wheel.insert(item('c1', T0 + 9_000, 3)); // overflow
      wheel.insert(item('d1', T0 + 105, 4));
      wheel.insert(item('d2', T0 + 9_000, 4));
      assert.equal(wheel.dropSlots(new Set([1, 2, 3, 9])), 3);
      assert.equal(wheel.dropSlots(new Set()), 0);
      assert.equal(wheel.size, 2);
      assert.deepEqual(keysOf(wheel.advance(T0 + 10_000)), ['d1', 'd2']);
    });
  });

  describe('cancel', () => {
    it('removes every copy of the seq from its bucket, at the head, middle and tail', () => {
      const wheel = new TimingWheel({ spanMs: 100, startMs: T0 });
      for (const k of ['a', 'x', 'b', 'x', 'c', 'x']) wheel.insert(item(k, T0 + 7));
      wheel.insert(item('x', T0 + 8)); // another due time: stays
      assert.equal(wheel.cancel(seqOf('x'), T0 + 7), 3);
      assert.equal(wheel.size, 4);
      assert.equal(wheel.cancel(seqOf('a'), T0 + 7), 1); // the head
      assert.equal(wheel.cancel(seqOf('c'), T0 + 7), 1); // the tail
      wheel.insert(item('d', T0 + 7));
      assert.deepEqual(keysOf(wheel.advance(T0 + 8)), ['b', 'd', 'x']);
      assert.equal(wheel.size, 0);
    });

    it('returns 0 and keeps the item when the due time or the seq does not match', () => {
      const wheel = new TimingWheel({ spanMs: 16, startMs: T0 });
      wheel.advance(T0 + 100);
      wheel.insert(item('late', T0 + 50));
      wheel.insert(item('bucket', T0 + 105));
      wheel.insert(item('overflow', T0 + 900));
      for (const [name, due] of [
        ['late', T0 + 51],
        ['bucket', T0 + 104],
        ['overflow', T0 + 899],
        ['late', T0 + 900],
        ['nobody', T0 + 50],
        ['nobody', T0 + 105],
        ['nobody', T0 + 900],
      ] as const) {
        assert.equal(wheel.cancel(seqOf(name), due), 0, `${name} at ${due - T0}`);
      }
      assert.equal(wheel.cancel(seqOf('bucket'), T0 + 105.5), 0);
      assert.equal(wheel.cancel(seqOf('bucket'), Number.NaN), 0);
      assert.equal(wheel.cancel(seqOf('bucket'), Number.POSITIVE_INFINITY), 0);
      assert.equal(wheel.size, 3);
      assert.deepEqual(keysOf(wheel.advance(T0 + 1000)), ['late', 'bucket', 'overflow']);
    });

    it('removes overdue and beyond-span items from the heaps, keeping their order', () => {
      const wheel = new TimingWheel({ spanMs: 16, startMs: T0 });
      wheel.advance(T0 + 1000);
      const late: WheelItem[] = [];
      const overflow: WheelItem[] = [];
      for (let n = 0; n < 200; n++) {
        late.push(item(`late${n % 50}`, T0 + 500 + (n % 7)));
        overflow.push(item(`over${n % 50}`, T0 + 5000 + (n % 7)));
      }
      for (const i of [...late, ...overflow]) wheel.insert(i);
      // late3: n = 3, 53, 103, 153, due 500 + n % 7 = 503, 504, 505, 506: one copy due at 505.
      assert.equal(wheel.cancel(seqOf('late3'), T0 + 505), 1);
      // over7: n = 7, 57, 107, 157: due 5000, 5001, 5002, 5003.
      assert.equal(wheel.cancel(seqOf('over7'), T0 + 5001), 1);
      // late0: n = 0, 50, 100, 150: due 500, 501, 502, 503.
      assert.equal(wheel.cancel(seqOf('late0'), T0 + 500), 1);
      assert.equal(wheel.cancel(seqOf('late0'), T0 + 500), 0);
      assert.equal(wheel.nextDueMs(), T0 + 500);
      const gone = (i: WheelItem, name: string, due: number) =>
        i.seq === seqOf(name) && i.dueMs === T0 + due;
      const expected = (items: WheelItem[]) =>
        items
          .map((i, n) => ({ i, n }))
          .filter(
            ({ i }) => !gone(i, 'late3', 505) && !gone(i, 'over7', 5001) && !gone(i, 'late0', 500),
          )
          .sort((a, b) => a.i.dueMs - b.i.dueMs || a.n - b.n)
          .map(({ i }) => i);
      assert.equal(wheel.size, 397);
      assert.deepEqual(wheel.advance(T0 + 1000), expected(late));
      assert.deepEqual(wheel.advance(T0 + 10_000), expected(overflow));
      assert.equal(wheel.size, 0);
    });

    it('removes every copy held in a heap', () => {
      const wheel = new TimingWheel({ spanMs: 8, startMs: T0 });
      for (let n = 0; n < 5; n++) wheel.insert(item('dup', T0 + 100));
      wheel.insert(item('other', T0 + 100));
      wheel.insert(item('dup', T0 + 99));
      assert.equal(wheel.cancel(seqOf('dup'), T0 + 100), 5);
      assert.deepEqual(keysOf(wheel.advance(T0 + 200)), ['dup', 'other']);
    });

    it('works on a partly drained bucket and frees handles for reuse', () => {
      const wheel = new TimingWheel({ spanMs: 16, startMs: T0 });
      for (const k of ['a', 'b', 'c', 'd']) wheel.insert(item(k, T0 + 5));
      assert.deepEqual(keysOf(wheel.advance(T0 + 5, 1)), ['a']);
      // The stuck bucket is at the cursor; b is its new head.
      assert.equal(wheel.cancel(seqOf('b'), T0 + 5), 1);
      assert.equal(wheel.cancel(seqOf('d'), T0 + 5), 1);
      wheel.insert(item('e', T0 + 5));
      assert.equal(wheel.size, 2);
      assert.deepEqual(keysOf(wheel.advance(T0 + 5)), ['c', 'e']);
      for (let n = 0; n < 3000; n++) {
        wheel.insert(item(`r${n}`, T0 + 10));
        assert.equal(wheel.cancel(seqOf(`r${n}`), T0 + 10), 1);
      }
      assert.equal(wheel.size, 0);
      assert.equal(wheel.nextDueMs(), undefined);
    });

    it('keeps nextDueMs right', () => {
      const wheel = new TimingWheel({ spanMs: 16, startMs: T0 });
      wheel.insert(item('b1', T0 + 4));
      wheel.insert(item('b2', T0 + 9));
      wheel.insert(item('o', T0 + 1000));
      assert.equal(wheel.nextDueMs(), T0 + 4);
      wheel.cancel(seqOf('b1'), T0 + 4);
      assert.equal(wheel.nextDueMs(), T0 + 9);
      wheel.cancel(seqOf('b2'), T0 + 9);
      assert.equal(wheel.nextDueMs(), T0 + 1000);
      wheel.cancel(seqOf('o'), T0 + 1000);
      assert.equal(wheel.nextDueMs(), undefined);
      assert.deepEqual(wheel.advance(T0 + 2000), []);
    });
  });

  describe('overflow beyond the span', () => {
    it('fires exactly on time when the wheel turns one millisecond at a time', () => {
      const wheel = new TimingWheel({ spanMs: 16, startMs: T0 });
      wheel.insert(item('far', T0 + 1000));
      wheel.insert(item('farther', T0 + 1017));
      const firedAt: Array<[string, number]> = [];
      for (let now = T0 + 1; now <= T0 + 1100; now++) {
        for (const fired of wheel.advance(now)) firedAt.push([keysOf([fired])[0]!, now]);
      }
      assert.deepEqual(firedAt, [
        ['far', T0 + 1000],
        ['farther', T0 + 1017],
      ]);
    });

    it('fires exactly on time when the wheel turns in uneven steps', () => {
      const wheel = new TimingWheel({ spanMs: 10, startMs: T0 });
      const dues = [5, 15, 16, 31, 47, 100, 101, 250];
      dues.forEach((d) => wheel.insert(item(`d${d}`, T0 + d)));
      const firedAt: Array<[number, number]> = [];
      for (let now = T0; now <= T0 + 300; now += 7) {
        for (const fired of wheel.advance(now)) firedAt.push([fired.dueMs - T0, now - T0]);
      }
      for (const [due, at] of firedAt) {
        assert.ok(at >= due && at - due < 7, `due ${due} fired at ${at}`);
      }
      assert.equal(firedAt.length, dues.length);
    });
  });

  describe('advance', () => {
    it('is a no-op returning [] when time goes backwards', () => {
      const wheel = new TimingWheel({ spanMs: 100, startMs: T0 });
      wheel.insert(item('a', T0 + 40));
      wheel.advance(T0 + 30);
      assert.deepEqual(wheel.advance(T0 + 10), []);
      assert.equal(wheel.position, T0 + 30);
      assert.deepEqual(keysOf(wheel.advance(T0 + 40)), ['a']);
    });

    it('rounds a fractional now down and never fires early', () => {
      const wheel = new TimingWheel({ spanMs: 100, startMs: T0 });
      wheel.insert(item('a', T0 + 40));
      assert.deepEqual(wheel.advance(T0 + 39.9), []);
      assert.equal(wheel.position, T0 + 39);
      assert.deepEqual(keysOf(wheel.advance(T0 + 40.2)), ['a']);
    });

    it('rejects a non-finite now and a negative limit', () => {
      const wheel = new TimingWheel({ spanMs: 100, startMs: T0 });
      assert.throws(() => wheel.advance(Number.NaN), RangeError);
      assert.throws(() => wheel.advance(Number.POSITIVE_INFINITY), RangeError);
      assert.throws(() => wheel.advance(T0 + 1, -1), RangeError);
      assert.equal(wheel.position, T0);
    });

    it('returns everything due after a jump of many spans, in order', () => {
      const span = 1000;
      const wheel = new TimingWheel({ spanMs: span, startMs: T0 });
      const dues: number[] = [];
      // Dense enough that every span-sized window holds items: ten hours of them.
      for (let d = 1; d <= 10 * 3_600_000; d += 997) dues.push(d);
      dues.forEach((d, n) => wheel.insert(item(`k${n}`, T0 + d)));
      const fired = wheel.advance(T0 + 5 * 3_600_000);
      const expected = dues.filter((d) => d <= 5 * 3_600_000);
      assert.deepEqual(
        fired.map((i) => i.dueMs - T0),
        expected,
      );
      assert.equal(wheel.size, dues.length - expected.length);
      assert.equal(wheel.nextDueMs(), T0 + dues[expected.length]!);
      const rest = wheel.advance(T0 + 10 * 3_600_000);
      assert.equal(rest.length, dues.length - expected.length);
      assert.equal(wheel.size, 0);
    });

    it('returns at most limit items and the rest, in order, on the next calls', () => {
      const wheel = new TimingWheel({ spanMs: 100, startMs: T0 });
      for (let n = 0; n < 10; n++) wheel.insert(item(`k${n}`, T0 + 5 + (n % 3)));
      wheel.advance(T0 + 50); // also passes everything; keep the ones below for the limit checks
      for (let n = 0; n < 10; n++) wheel.insert(item(`m${n}`, T0 + 60 + (n % 3)));
      const first = wheel.advance(T0 + 70, 4);
      const second = wheel.advance(T0 + 70, 4);
      const third = wheel.advance(T0 + 70, 4);
      assert.deepEqual([first.length, second.length, third.length], [4, 4, 2]);
      assert.deepEqual(keysOf([...first, ...second, ...third]), [
        'm0',
        'm3',
        'm6',
        'm9',
        'm1',
        'm4',
        'm7',
        'm2',
        'm5',
        'm8',
      ]);
    });

    it('keeps items held back by limit due, across late items, buckets and overflow in a jump', () => {
      const wheel = new TimingWheel({ spanMs: 16, startMs: T0 });
      wheel.advance(T0 + 100);
      wheel.insert(item('late', T0 + 90));
      wheel.insert(item('bucket', T0 + 110));
      wheel.insert(item('overflow-a', T0 + 500));
      wheel.insert(item('overflow-b', T0 + 600));
      wheel.insert(item('future', T0 + 2000));
      const batches: string[][] = [];
      for (let n = 0; n < 6; n++) batches.push(keysOf(wheel.advance(T0 + 1000, 1)));
      assert.deepEqual(batches, [['late'], ['bucket'], ['overflow-a'], ['overflow-b'], [], []]);
      assert.equal(wheel.nextDueMs(), T0 + 2000);
      assert.deepEqual(wheel.advance(T0 + 1999), []);
      assert.deepEqual(keysOf(wheel.advance(T0 + 2000)), ['future']);
    });

    it('accepts inserts between limited advances without reordering', () => {
      const wheel = new TimingWheel({ spanMs: 16, startMs: T0 });
      wheel.insert(item('a', T0 + 10));
      wheel.insert(item('b', T0 + 10));
      assert.deepEqual(keysOf(wheel.advance(T0 + 20, 1)), ['a']);
      wheel.insert(item('c', T0 + 5)); // before the stuck bucket: fires first
      wheel.insert(item('d', T0 + 10)); // same due as the stuck bucket: after b
      wheel.insert(item('e', T0 + 15)); // due, after the stuck bucket
      assert.deepEqual(keysOf(wheel.advance(T0 + 20)), ['c', 'b', 'd', 'e']);
    });

    it('keeps a partly drained bucket consistent for dropSlot and later inserts', () => {
      const wheel = new TimingWheel({ spanMs: 16, startMs: T0 });
      for (const k of ['a', 'b', 'c', 'd']) wheel.insert(item(k, T0 + 5, k === 'b' ? 1 : 0));
      assert.deepEqual(keysOf(wheel.advance(T0 + 5, 1)), ['a']);
      assert.equal(wheel.dropSlot(1), 1); // b, the new head of the bucket
      wheel.insert(item('e', T0 + 5));
      wheel.insert(item('f', T0 + 6));
      assert.deepEqual(keysOf(wheel.advance(T0 + 6)), ['c', 'd', 'e', 'f']);
      assert.equal(wheel.size, 0);
    });

    it('with limit 0 moves the position but fires nothing', () => {
      const wheel = new TimingWheel({ spanMs: 16, startMs: T0 });
      wheel.insert(item('a', T0 + 3));
      assert.deepEqual(wheel.advance(T0 + 5, 0), []);
      assert.equal(wheel.position, T0 + 5);
      assert.deepEqual(keysOf(wheel.advance(T0 + 5)), ['a']);
    });
  });

  describe('nextDueMs', () => {
    it('reports the earliest item wherever it is held, and follows dropSlot', () => {
      const wheel = new TimingWheel({ spanMs: 16, startMs: T0 });
      wheel.insert(item('overflow', T0 + 1000, 4));
      assert.equal(wheel.nextDueMs(), T0 + 1000);
      wheel.insert(item('bucket', T0 + 12, 3));
      assert.equal(wheel.nextDueMs(), T0 + 12);
      wheel.insert(item('bucket-earlier', T0 + 4, 2));
      assert.equal(wheel.nextDueMs(), T0 + 4);
      wheel.advance(T0 + 2);
      wheel.insert(item('late', T0 + 1, 1));
      assert.equal(wheel.nextDueMs(), T0 + 1);
      wheel.dropSlot(1);
      assert.equal(wheel.nextDueMs(), T0 + 4);
      wheel.dropSlot(2);
      assert.equal(wheel.nextDueMs(), T0 + 12);
      wheel.dropSlot(3);
      assert.equal(wheel.nextDueMs(), T0 + 1000);
      wheel.dropSlot(4);
      assert.equal(wheel.nextDueMs(), undefined);
    });

    it('does not change what fires', () => {
      const wheel = new TimingWheel({ spanMs: 16, startMs: T0 });
      wheel.insert(item('a', T0 + 9));
      assert.equal(wheel.nextDueMs(), T0 + 9);
      assert.equal(wheel.nextDueMs(), T0 + 9);
      assert.deepEqual(wheel.advance(T0 + 8), []);
      assert.deepEqual(keysOf(wheel.advance(T0 + 9)), ['a']);
    });
  });

  describe('against a sorted-array reference model (property)', () => {
    type Op =
      | { kind: 'insert'; seq: number; offset: number; slot: number }
      | { kind: 'advance'; delta: number; limit: number | undefined }
      | { kind: 'dropSlot'; slot: number }
      | { kind: 'cancel'; pick: number; seq: number; offset: number }
      | { kind: 'nextDue' };

    const opArb: fc.Arbitrary<Op> = fc.oneof(
      {
        weight: 5,
        arbitrary: fc.record({
          kind: fc.constant('insert' as const),
          // Few distinct seqs, so the same one is often held several times.
          seq: fc.nat(40),
          // Relative to the position: in the past, within a small span and far beyond it.
          offset: fc.oneof(fc.integer({ min: -40, max: 40 }), fc.integer({ min: -500, max: 3000 })),
          slot: fc.nat(3),
        }),
      },
      {
        weight: 4,
        arbitrary: fc.record({
          kind: fc.constant('advance' as const),
          delta: fc.oneof(fc.integer({ min: -20, max: 40 }), fc.integer({ min: 0, max: 2000 })),
          limit: fc.option(fc.nat(5), { nil: undefined }),
        }),
      },
      {
        weight: 1,
        arbitrary: fc.record({ kind: fc.constant('dropSlot' as const), slot: fc.nat(3) }),
      },
      {
        weight: 2,
        arbitrary: fc.record({
          kind: fc.constant('cancel' as const),
          // A held item's seq and due time (pick modulo the held count), or when pick is 0 or
          // nothing is held, `seq` at position + offset: mostly a miss, sometimes a hit.
          pick: fc.nat(60),
          seq: fc.nat(40),
          offset: fc.integer({ min: -500, max: 3000 }),
        }),
      },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('nextDue' as const) }) },
    );

    interface RefEntry extends WheelItem {
      order: number;
    }

    /** The obvious model: an unsorted array, sorted by (due, insertion) when advancing. */
    class ReferenceWheel {
      private entries: RefEntry[] = [];
      private order = 0;
      constructor(public position: number) {}
      get size(): number {
        return this.entries.length;
      }
      insert(i: WheelItem): void {
        this.entries.push({ ...i, order: this.order++ });
      }
      dropSlot(slot: number): number {
        const before = this.entries.length;
        this.entries = this.entries.filter((e) => e.slot !== slot);
        return before - this.entries.length;
      }
      cancel(seq: number, dueMs: number): number {
        const before = this.entries.length;
        this.entries = this.entries.filter((e) => e.seq !== seq || e.dueMs !== dueMs);
        return before - this.entries.length;
      }
      /** The pick-th held entry (in insertion order, modulo the count), if any. */
      entry(pick: number): WheelItem | undefined {
        return this.entries.length === 0 ? undefined : this.entries[pick % this.entries.length];
      }
      advance(now: number, limit = Infinity): WheelItem[] {
        if (now < this.position) return [];
        this.position = now;
        const due = this.entries
          .filter((e) => e.dueMs <= now)
          .sort((a, b) => a.dueMs - b.dueMs || a.order - b.order)
          .slice(0, limit);
        const fired = new Set(due);
        this.entries = this.entries.filter((e) => !fired.has(e));
        return due.map(({ seq, slot, dueMs }) => ({ seq, slot, dueMs }));
      }
      nextDueMs(): number | undefined {
        return this.entries.length === 0
          ? undefined
          : Math.min(...this.entries.map((e) => e.dueMs));
      }
    }

    it('fires the same items in the same order, never early, with equal sizes', () => {
      fc.assert(
        fc.property(
          fc.constantFrom(1, 7, 16, 100),
          fc.array(opArb, { maxLength: 150, size: 'max' }),
          (spanMs, ops) => {
            const wheel = new TimingWheel({ spanMs, startMs: T0 });
            const ref = new ReferenceWheel(T0);
            for (const op of ops) {
              switch (op.kind) {
                case 'insert': {
                  const i = { seq: op.seq, slot: op.slot, dueMs: wheel.position + op.offset };
                  wheel.insert(i);
                  ref.insert(i);
                  break;
                }
                case 'advance': {
                  const now = wheel.position + op.delta;
                  const fired = wheel.advance(now, op.limit);
                  assert.deepEqual(fired, ref.advance(now, op.limit));
                  for (const f of fired) assert.ok(f.dueMs <= now, 'fired before due');
                  break;
                }
                case 'dropSlot':
                  assert.equal(wheel.dropSlot(op.slot), ref.dropSlot(op.slot));
                  break;
                case 'cancel': {
                  const held = op.pick === 0 ? undefined : ref.entry(op.pick);
                  const seq = held?.seq ?? op.seq;
                  const dueMs = held?.dueMs ?? wheel.position + op.offset;
                  const removed = wheel.cancel(seq, dueMs);
                  assert.equal(removed, ref.cancel(seq, dueMs));
                  if (held) assert.ok(removed >= 1, 'a held item was not found');
                  break;
                }
                case 'nextDue':
                  assert.equal(wheel.nextDueMs(), ref.nextDueMs());
                  break;
              }
              assert.equal(wheel.size, ref.size);
              assert.equal(wheel.position, ref.position);
            }
            assert.equal(wheel.nextDueMs(), ref.nextDueMs());
            const end = wheel.position + 10_000;
            assert.deepEqual(wheel.advance(end), ref.advance(end));
            assert.equal(wheel.size, 0);
          },
        ),
        { numRuns: 500, seed: 0x5eed },
      );
    });
  });
});

import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { AssignmentInput } from '../../src/assignment';
import { assignSlots, diffAssignment } from '../../src/assignment';

const RUNS = { numRuns: 300, seed: 0xa551 };

function loads(assignment: ReadonlyMap<number, string>): Map<string, number> {
  const counts = new Map<string, number>();
  for (const node of assignment.values()) counts.set(node, (counts.get(node) ?? 0) + 1);
  return counts;
}

function spread(assignment: ReadonlyMap<number, string>, nodes: readonly string[]): number {
  const counts = loads(assignment);
  const values = nodes.map((n) => counts.get(n) ?? 0);
  return Math.max(...values) - Math.min(...values);
}

function nodeNames(count: number, prefix = 'node-'): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}${i}`);
}

function assertComplete(assignment: ReadonlyMap<number, string>, slotCount: number): void {
  assert.equal(assignment.size, slotCount);
  for (let slot = 0; slot < slotCount; slot++) assert.ok(assignment.has(slot), `slot ${slot}`);
}

/** Distinct node ids, including unicode and ids that are prefixes of each other. */
const nodeSetArb = fc.uniqueArray(fc.string({ minLength: 1, maxLength: 12, unit: 'grapheme' }), {
  minLength: 1,
  maxLength: 24,
  size: 'max',
});

/**
 * A balanced assignment to start from: either what assignSlots itself produced, or an arbitrary
 * deal (slots shuffled, dealt round-robin to the nodes in shuffled order), as left by an earlier
 * sequence of membership changes.
 */
function balancedStart(
  slotCount: number,
  nodes: readonly string[],
  deal: readonly number[] | undefined,
): Map<number, string> {
  if (deal === undefined) return assignSlots({ slotCount, nodes });
  const shuffle = <T>(items: readonly T[], salt: number): T[] => {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = (deal[(i + salt) % deal.length] ?? 0) % (i + 1);
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  };
  const order = shuffle(nodes, 7);
  const start = new Map<number, string>();
  shuffle(
    Array.from({ length: slotCount }, (_, slot) => slot),
    0,
  ).forEach((slot, i) => start.set(slot, order[i % order.length]!));
  return start;
}

const dealArb = fc.option(fc.array(fc.nat(), { minLength: 1, maxLength: 64, size: 'max' }), {
  nil: undefined,
});

describe('assignSlots', () => {
  it('returns an empty map when no node is eligible or there are no slots', () => {
    assert.equal(assignSlots({ slotCount: 16, nodes: [] }).size, 0);
    assert.equal(
      assignSlots({ slotCount: 16, nodes: ['a', 'b'], drained: new Set(['a', 'b']) }).size,
      0,
    );
    assert.equal(assignSlots({ slotCount: 0, nodes: ['a'] }).size, 0);
  });

  it('rejects a slot count that is not a non-negative integer', () => {
    assert.throws(() => assignSlots({ slotCount: -1, nodes: ['a'] }), RangeError);
    assert.throws(() => assignSlots({ slotCount: 2.5, nodes: ['a'] }), RangeError);
    assert.throws(() => assignSlots({ slotCount: Number.NaN, nodes: ['a'] }), RangeError);
  });

  it('gives one node every slot, and ignores duplicate node ids', () => {
    const assignment = assignSlots({ slotCount: 256, nodes: ['solo', 'solo'] });
    assertComplete(assignment, 256);
    assert.deepEqual([...loads(assignment)], [['solo', 256]]);
  });

  it('assigns every slot and balances within one, for many node sets (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 600 }), nodeSetArb, (slotCount, nodes) => {
        const assignment = assignSlots({ slotCount, nodes });
        assertComplete(assignment, slotCount);
        assert.ok(spread(assignment, nodes) <= 1);
        for (const node of assignment.values()) assert.ok(nodes.includes(node));
      }),
      RUNS,
    );
  });

  it('is deterministic under any order of nodes, pins and previous owners (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 300 }),
        nodeSetArb,
        fc.array(fc.tuple(fc.nat(299), fc.nat(30)), { maxLength: 40, size: 'max' }),
        fc.array(fc.tuple(fc.nat(299), fc.nat(30)), { maxLength: 400, size: 'max' }),
        fc.infiniteStream(fc.nat()),
        (slotCount, nodes, rawPins, rawPrevious, randoms) => {
          const at = (n: number): string => nodes[n % nodes.length]!;
          const pinEntries = [...new Map(rawPins.map(([s, n]) => [s, at(n)]))];
          const previousEntries = [...new Map(rawPrevious.map(([s, n]) => [s, at(n)]))];
          const shuffle = <T>(items: readonly T[]): T[] => {
            const out = [...items];
            const it = randoms[Symbol.iterator]();
            for (let i = out.length - 1; i > 0; i--) {
              const j = it.next().value % (i + 1);
              [out[i], out[j]] = [out[j]!, out[i]!];
            }
            return out;
          };
          const drained = nodes.filter((_, i) => i % 5 === 4);
          const input: AssignmentInput = {
            slotCount,
            nodes,
            drained: new Set(drained),
            pins: new Map(pinEntries),
            previous: new Map(previousEntries),
          };
          const permuted: AssignmentInput = {
            slotCount,
            nodes: shuffle(nodes),
            drained: new Set(shuffle(drained)),
            pins: new Map(shuffle(pinEntries)),
            previous: new Map(shuffle(previousEntries)),
          };
          assert.deepEqual([...assignSlots(permuted)], [...assignSlots(input)]);
        },
      ),
      RUNS,
    );
  });

  it('is a fixpoint: feeding the result back as previous moves nothing (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 400 }), nodeSetArb, (slotCount, nodes) => {
        const first = assignSlots({ slotCount, nodes });
        const again = assignSlots({ slotCount, nodes, previous: first });
        assert.equal(diffAssignment(first, again).moved, 0);
      }),
      RUNS,
    );
  });

  describe('minimal movement', () => {
    it('adding a node moves only its share, all to it, none between old nodes (property)', () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 600 }),
          nodeSetArb,
          fc.string({ minLength: 1, maxLength: 12 }),
          dealArb,
          (slotCount, nodes, added, deal) => {
            fc.pre(!nodes.includes(added));
            const before = balancedStart(slotCount, nodes, deal);
            assert.ok(spread(before, nodes) <= 1);
            const grown = [...nodes, added];
            const after = assignSlots({ slotCount, nodes: grown, previous: before });
            const { moved, changes } = diffAssignment(before, after);
            for (const change of changes) assert.equal(change.to, added);
            const share = slotCount / grown.length;
            assert.ok(moved === Math.floor(share) || moved === Math.ceil(share), `moved ${moved}`);
            assert.ok(spread(after, grown) <= 1);
          },
        ),
        RUNS,
      );
    });

    it('moves about slotCount / (N + 1) slots when a node joins N = 4', () => {
      const before = assignSlots({ slotCount: 256, nodes: nodeNames(4) });
      const after = assignSlots({ slotCount: 256, nodes: nodeNames(5), previous: before });
      const { moved } = diffAssignment(before, after);
      assert.ok(moved === 51 || moved === 52, `moved ${moved}`);
    });

    it('removing or draining a node moves only its slots (property)', () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 600 }),
          nodeSetArb.filter((n) => n.length >= 2),
          fc.nat(),
          fc.boolean(),
          dealArb,
          (slotCount, nodes, pick, drain, deal) => {
            const gone = nodes[pick % nodes.length]!;
            const before = balancedStart(slotCount, nodes, deal);
            const remaining = nodes.filter((n) => n !== gone);
            const after = drain
              ? assignSlots({ slotCount, nodes, drained: new Set([gone]), previous: before })
              : assignSlots({ slotCount, nodes: remaining, previous: before });
            const { moved, changes } = diffAssignment(before, after);
            for (const change of changes) {
              assert.equal(change.from, gone);
              assert.notEqual(change.to, gone);
            }
            assert.equal(moved, loads(before).get(gone) ?? 0);
            assert.ok(spread(after, remaining) <= 1);
            assert.ok(![...after.values()].includes(gone));
          },
        ),
        RUNS,
      );
    });

    it('keeps a previous owner that is still eligible and under quota, even from a skewed start', () => {
      const previous = new Map<number, string>();
      for (let slot = 0; slot < 12; slot++) previous.set(slot, slot < 10 ? 'a' : 'b');
      const after = assignSlots({ slotCount: 12, nodes: ['a', 'b', 'c'], previous });
      assert.deepEqual([...loads(after)].sort(), [
        ['a', 4],
        ['b', 4],
        ['c', 4],
      ]);
      // b keeps both its slots; a keeps 4 of its 10.
      assert.equal(after.get(10), 'b');
      assert.equal(after.get(11), 'b');
      assert.equal(diffAssignment(previous, after).moved, 6);
    });
  });

  describe('pins', () => {
    it('are honoured when their node is live and not drained, ignored otherwise', () => {
      const pins = new Map<number, string>([
        [0, 'c'],
        [1, 'c'],
        [2, 'drained'],
        [3, 'dead'],
        [99, 'a'],
      ]);
      const assignment = assignSlots({
        slotCount: 8,
        nodes: ['a', 'b', 'c', 'drained'],
        drained: new Set(['drained']),
        pins,
      });
      assertComplete(assignment, 8);
      assert.equal(assignment.get(0), 'c');
      assert.equal(assignment.get(1), 'c');
      assert.ok(!['drained', 'dead'].includes(assignment.get(2)!));
      assert.ok(!['drained', 'dead'].includes(assignment.get(3)!));
      assert.ok(spread(assignment, ['a', 'b', 'c']) <= 1);
    });

    it('count toward their node: a node with many pins gets nothing more', () => {
      const pins = new Map<number, string>(Array.from({ length: 6 }, (_, s) => [s, 'heavy']));
      const assignment = assignSlots({ slotCount: 12, nodes: ['heavy', 'x', 'y', 'z'], pins });
      assert.deepEqual([...loads(assignment)].sort(), [
        ['heavy', 6],
        ['x', 2],
        ['y', 2],
        ['z', 2],
      ]);
    });

    it('keep the others balanced: a node is more than one above another only by its pins (property)', () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 300 }),
          nodeSetArb,
          fc.array(fc.tuple(fc.nat(299), fc.nat(30)), { maxLength: 200, size: 'max' }),
          fc.array(fc.tuple(fc.nat(299), fc.nat(30)), { maxLength: 300, size: 'max' }),
          (slotCount, nodes, rawPins, rawPrevious) => {
            const at = (n: number): string => nodes[n % nodes.length]!;
            const pins = new Map(rawPins.map(([s, n]) => [s, at(n)]));
            const previous = new Map(rawPrevious.map(([s, n]) => [s, at(n)]));
            const assignment = assignSlots({ slotCount, nodes, pins, previous });
            assertComplete(assignment, slotCount);
            const pinned = new Map<string, number>();
            for (const [slot, node] of pins) {
              if (slot >= slotCount) continue;
              assert.equal(assignment.get(slot), node);
              pinned.set(node, (pinned.get(node) ?? 0) + 1);
            }
            const counts = loads(assignment);
            for (const a of nodes) {
              for (const b of nodes) {
                const la = counts.get(a) ?? 0;
                const lb = counts.get(b) ?? 0;
                if (la > lb + 1) assert.equal(la, pinned.get(a) ?? 0, `${a}=${la} vs ${b}=${lb}`);
              }
            }
          },
        ),
        RUNS,
      );
    });
  });

  it('gives drained nodes nothing', () => {
    const assignment = assignSlots({
      slotCount: 64,
      nodes: ['a', 'b', 'c'],
      drained: new Set(['b']),
    });
    assertComplete(assignment, 64);
    assert.deepEqual([...loads(assignment)].sort(), [
      ['a', 32],
      ['c', 32],
    ]);
  });

  it('ignores previous owners that are gone, drained or out of range', () => {
    const previous = new Map<number, string>([
      [0, 'gone'],
      [1, 'drained'],
      [500, 'a'],
    ]);
    const assignment = assignSlots({
      slotCount: 4,
      nodes: ['a', 'b', 'drained'],
      drained: new Set(['drained']),
      previous,
    });
    assertComplete(assignment, 4);
    assert.deepEqual([...loads(assignment)].sort(), [
      ['a', 2],
      ['b', 2],
    ]);
  });
});

describe('diffAssignment', () => {
  it('lists slots that moved, appeared or disappeared, in slot order', () => {
    const before = new Map<number, string>([
      [0, 'a'],
      [1, 'a'],
      [2, 'b'],
      [5, 'b'],
    ]);
    const after = new Map<number, string>([
      [4, 'c'],
      [1, 'b'],
      [2, 'b'],
      [0, 'a'],
    ]);
    assert.deepEqual(diffAssignment(before, after), {
      moved: 3,
      changes: [
        { slot: 1, from: 'a', to: 'b' },
        { slot: 4, to: 'c' },
        { slot: 5, from: 'b' },
      ],
    });
  });

  it('reports nothing for equal assignments', () => {
    const assignment = assignSlots({ slotCount: 32, nodes: ['a', 'b'] });
    assert.deepEqual(diffAssignment(assignment, new Map(assignment)), { moved: 0, changes: [] });
  });
});

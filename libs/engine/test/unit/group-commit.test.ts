/**
 * Group commit (src/group-commit.ts): concurrent small submissions share one statement, each gets
 * its own outcomes only after that statement, bulk submissions skip grouping, and a refused group
 * is retried member by member.
 */
import assert from 'node:assert/strict';
import { DependencyUnavailableError, HourglassError } from '@hourglass/core';
import type { GroupFlush } from '../../src/group-commit';
import { GroupCommit } from '../../src/group-commit';

/** A store stand-in whose statements finish when the test says so. */
class ControlledWriter {
  readonly statements: string[][] = [];
  private readonly pending: Array<{ items: string[]; finish: (error?: Error) => void }> = [];
  private readonly waiters: Array<() => void> = [];
  /** Items whose statement fails as Postgres would fail a bad row. */
  poisoned = new Set<string>();

  readonly write = (items: readonly string[]): Promise<string[]> => {
    this.statements.push([...items]);
    return new Promise<string[]>((resolve, reject) => {
      this.pending.push({
        items: [...items],
        finish: (error) => (error ? reject(error) : resolve(items.map((item) => `ok:${item}`))),
      });
      this.waiters.splice(0).forEach((wake) => wake());
    });
  };

  /** Resolves once `count` statements have been sent in all. */
  async sent(count: number): Promise<void> {
    while (this.statements.length < count)
      await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  /** Finishes the oldest open statement (failing it if it holds a poisoned item). */
  finishOldest(error?: Error): void {
    const next = this.pending.shift();
    assert.ok(next, 'no statement in flight');
    const poisoned = next.items.some((item) => this.poisoned.has(item));
    next.finish(error ?? (poisoned ? new Error('invalid byte sequence') : undefined));
  }

  get inFlight(): number {
    return this.pending.length;
  }
}

describe('GroupCommit', () => {
  it('sends concurrent submissions as one statement and answers each after it', async () => {
    const writer = new ControlledWriter();
    const flushes: GroupFlush[] = [];
    const group = new GroupCommit(writer.write, { windowMs: 0 }, (flush) => flushes.push(flush));
    let answered = 0;
    const answers = [['a'], ['b', 'c'], ['d']].map((items) =>
      group.submit(items).then((outcomes) => {
        answered++;
        return outcomes;
      }),
    );
    await writer.sent(1);
    assert.deepEqual(writer.statements, [['a', 'b', 'c', 'd']]);
    // Nobody is answered before the statement (the commit) finished.
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(answered, 0);
    writer.finishOldest();
    assert.deepEqual(await Promise.all(answers), [['ok:a'], ['ok:b', 'ok:c'], ['ok:d']]);
    assert.deepEqual(
      flushes.map(({ submissions, messages }) => ({ submissions, messages })),
      [{ submissions: 3, messages: 4 }],
    );
  });

  it('sends a bulk submission straight away, on its own', async () => {
    const writer = new ControlledWriter();
    const group = new GroupCommit(writer.write, { windowMs: 50, directMessages: 3 });
    const small = group.submit(['a']);
    const bulk = group.submit(['x', 'y', 'z']);
    await writer.sent(1);
    assert.deepEqual(writer.statements, [['x', 'y', 'z']]);
    writer.finishOldest();
    assert.deepEqual(await bulk, ['ok:x', 'ok:y', 'ok:z']);
    await writer.sent(2);
    writer.finishOldest();
    assert.deepEqual(await small, ['ok:a']);
  });

  it('sends a group as soon as maxMessages wait, without waiting for the window', async () => {
    const writer = new ControlledWriter();
    const group = new GroupCommit(writer.write, { windowMs: 10_000, maxMessages: 3 });
    const answers = ['a', 'b', 'c'].map((item) => group.submit([item]));
    await writer.sent(1);
    assert.deepEqual(writer.statements, [['a', 'b', 'c']]);
    writer.finishOldest();
    assert.equal((await Promise.all(answers)).length, 3);
  });

  it('keeps at most maxInFlight statements and groups what arrives meanwhile', async () => {
    const writer = new ControlledWriter();
    const group = new GroupCommit(writer.write, { windowMs: 0, maxInFlight: 1 });
    const first = group.submit(['a']);
    await writer.sent(1);
    const later = ['b', 'c', 'd'].map((item) => group.submit([item]));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(writer.inFlight, 1, 'a second statement was sent while the first was busy');
    assert.equal(group.pending, 3);
    writer.finishOldest();
    await writer.sent(2);
    assert.deepEqual(writer.statements[1], ['b', 'c', 'd']);
    writer.finishOldest();
    assert.deepEqual(await first, ['ok:a']);
    assert.deepEqual(await Promise.all(later), [['ok:b'], ['ok:c'], ['ok:d']]);
  });

  it('retries each member alone when Postgres refuses the group, so only the bad one fails', async () => {
    const writer = new ControlledWriter();
    writer.poisoned.add('bad');
    const group = new GroupCommit(writer.write, { windowMs: 0 });
    const good = group.submit(['good']);
    const bad = group.submit(['bad']);
    await writer.sent(1);
    writer.finishOldest();
    await writer.sent(3);
    assert.deepEqual(writer.statements.slice(1), [['good'], ['bad']]);
    writer.finishOldest();
    writer.finishOldest();
    assert.deepEqual(await good, ['ok:good']);
    await assert.rejects(bad, /invalid byte sequence/);
  });

  it('fails every member with an outage error, without retrying them one by one', async () => {
    const writer = new ControlledWriter();
    const group = new GroupCommit(writer.write, { windowMs: 0 });
    const answers = ['a', 'b'].map((item) => group.submit([item]));
    await writer.sent(1);
    writer.finishOldest(new DependencyUnavailableError('postgres', new Error('ECONNREFUSED')));
    for (const answer of answers)
      await assert.rejects(answer, (error: unknown) => {
        assert.ok(error instanceof HourglassError);
        assert.equal(error.code, 'unavailable');
        return true;
      });
    assert.equal(writer.statements.length, 1);
  });
});

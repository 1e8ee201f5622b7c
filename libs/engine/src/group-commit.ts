/**
 * Group commit for small inserts (issue 13).
 *
 * One single-message schedule costs one statement and one commit (an fsync); 32 callers doing it
 * at once wait for each other's WAL flushes and spend the pool on round trips. Here concurrent
 * small submissions wait a short, bounded window (or until `maxMessages` are waiting) and then
 * share ONE insert statement and ONE commit. Each submission still gets its own outcomes, and
 * only after that commit, so the 201 keeps its meaning: the message is durable.
 *
 * - A submission of `directMessages` or more (a bulk batch) is already one statement; it goes
 *   straight to the store and never waits for a window.
 * - At most `maxInFlight` grouped statements run at once. While they are busy, new submissions
 *   keep accumulating, so the group grows with the load (natural batching) instead of queueing
 *   statements on the pool.
 * - If a grouped statement fails with anything but an availability error (which would fail every
 *   member alike), each member is retried on its own, so one message Postgres refuses cannot fail
 *   the requests it happened to share a statement with.
 */
import { HourglassError } from '@hourglass/core';

export interface GroupCommitOptions {
  /**
   * How long the first submission of a group waits for others (ms). 0 waits only for the
   * requests already read from the sockets (one turn of the event loop).
   * @default 0
   */
  windowMs?: number;
  /** A group is sent at once when this many messages wait. @default 1000 */
  maxMessages?: number;
  /** Grouped statements in flight at once. @default 2 */
  maxInFlight?: number;
  /** Submissions of at least this many messages skip grouping. @default 100 */
  directMessages?: number;
}

/** What one flush did: reported to metrics. */
export interface GroupFlush {
  submissions: number;
  messages: number;
  /** How long the oldest member waited before its statement was sent (ms). */
  waitedMs: number;
}

interface Member<I, O> {
  items: readonly I[];
  resolve: (outcomes: O[]) => void;
  reject: (error: unknown) => void;
  enqueuedAt: number;
}

export class GroupCommit<I, O> {
  private readonly windowMs: number;
  private readonly maxMessages: number;
  private readonly maxInFlight: number;
  private readonly directMessages: number;
  private waiting: Member<I, O>[] = [];
  private waitingMessages = 0;
  private timer: ReturnType<typeof setTimeout> | ReturnType<typeof setImmediate> | null = null;
  private inFlight = 0;

  constructor(
    /** Writes a batch in one statement; outcomes in input order. */
    private readonly write: (items: readonly I[]) => Promise<O[]>,
    options: GroupCommitOptions = {},
    private readonly onFlush: (flush: GroupFlush) => void = () => {},
    private readonly now: () => number = () => performance.now(),
  ) {
    this.windowMs = options.windowMs ?? 0;
    this.maxMessages = options.maxMessages ?? 1000;
    this.maxInFlight = options.maxInFlight ?? 2;
    this.directMessages = options.directMessages ?? 100;
  }

  /** Writes `items` (with whatever else is waiting); resolves after the commit. */
  submit(items: readonly I[]): Promise<O[]> {
    if (items.length === 0) return Promise.resolve([]);
    if (items.length >= this.directMessages) return this.write(items);
    return new Promise<O[]>((resolve, reject) => {
      this.waiting.push({ items, resolve, reject, enqueuedAt: this.now() });
      this.waitingMessages += items.length;
      if (this.waitingMessages >= this.maxMessages) this.flushNow();
      else this.arm();
    });
  }

  /** Submissions waiting for a statement (for tests and metrics). */
  get pending(): number {
    return this.waiting.length;
  }

  private arm(): void {
    if (this.timer !== null || this.inFlight >= this.maxInFlight) return;
    this.timer =
      this.windowMs > 0
        ? setTimeout(() => this.flushNow(), this.windowMs)
        : setImmediate(() => this.flushNow());
  }

  private clearTimer(): void {
    if (this.timer === null) return;
    clearTimeout(this.timer as ReturnType<typeof setTimeout>);
    clearImmediate(this.timer as ReturnType<typeof setImmediate>);
    this.timer = null;
  }

  private flushNow(): void {
    this.clearTimer();
    // Full: the statement that finishes next takes the group (see release()).
    if (this.inFlight >= this.maxInFlight || this.waiting.length === 0) return;
    const members = this.take();
    this.inFlight++;
    void this.run(members).finally(() => this.release());
  }

  /** The oldest waiting members, up to maxMessages (at least one). */
  private take(): Member<I, O>[] {
    let count = 0;
    let end = 0;
    while (end < this.waiting.length) {
      const size = this.waiting[end]!.items.length;
      if (end > 0 && count + size > this.maxMessages) break;
      count += size;
      end++;
    }
    const members = this.waiting.slice(0, end);
    this.waiting = this.waiting.slice(end);
    this.waitingMessages -= count;
    this.onFlush({
      submissions: members.length,
      messages: count,
      waitedMs: this.now() - members[0]!.enqueuedAt,
    });
    return members;
  }

  private release(): void {
    this.inFlight--;
    // What piled up while every statement was busy goes at once: it has waited long enough. A
    // window still open (its timer set) belongs to members that arrived since; it runs out.
    while (this.waiting.length > 0 && this.timer === null && this.inFlight < this.maxInFlight)
      this.flushNow();
  }

  private async run(members: readonly Member<I, O>[]): Promise<void> {
    if (members.length === 1) {
      const only = members[0]!;
      await this.write(only.items).then(only.resolve, only.reject);
      return;
    }
    const items: I[] = [];
    for (const member of members) for (const item of member.items) items.push(item);
    let outcomes: O[];
    try {
      outcomes = await this.write(items);
    } catch (error) {
      if (isAvailability(error)) {
        for (const member of members) member.reject(error);
        return;
      }
      // One member may be what Postgres refused: each on its own, so only that one fails.
      await Promise.all(
        members.map((member) => this.write(member.items).then(member.resolve, member.reject)),
      );
      return;
    }
    let offset = 0;
    for (const member of members) {
      member.resolve(outcomes.slice(offset, offset + member.items.length));
      offset += member.items.length;
    }
  }
}

/** An error that any statement would have met: retrying members one by one cannot help. */
function isAvailability(error: unknown): boolean {
  return error instanceof HourglassError && error.code === 'unavailable';
}

/**
 * What happens to a claimed message that was not delivered.
 *
 * - **Release.** Its row goes back to `scheduled` (or to `failed`), fenced, retried until it
 *   succeeds: the claim takes only scheduled rows, so a row left `delivering` would never fire
 *   again on this node. Nothing is re-wheeled before its release succeeded.
 * - **A target that is down** (a retriable failure: the broker is unreachable, a request timed
 *   out) parks the message under that target, uncounted. The target is probed with one parked
 *   message after `retryInitialMs`, doubling up to `probeMaxMs`; the first delivery to it that
 *   succeeds (the probe, or any message that came due meanwhile) puts everything parked under it
 *   back in the wheel at once. So a backlog is delivered as soon as the target answers, instead of
 *   each message waiting out a timer of its own.
 * - **A target that refused the message** counts an attempt: the message becomes `failed` at
 *   `maxAttempts`, and is otherwise retried after its own backoff (`retryInitialMs` doubling per
 *   attempt, at most `retryMaxMs`).
 *
 * Parked and backed-off messages are `scheduled` and overdue in the store but not in the wheel;
 * {@link Retries.accounts} lets the sweep tell them from messages that were missed.
 */
import type {
  ClaimRelease,
  ClaimedMessage,
  Clock,
  Logger,
  MessageRef,
  MessageStore,
  TimingWheel,
} from '@hourglass/core';
import type { EngineMetrics } from '../metrics';
import type { ResolvedOptions } from '../options';
import type { ClaimLedger } from './claims';

/** A release waits for Postgres: retry often, since the messages fire again only once it is done. */
const RELEASE_RETRY_MAX_MS = 1_000;

interface ParkedTarget {
  readonly refs: Map<number, MessageRef>;
  /** Probes that failed since the target last answered. */
  failures: number;
  timer: NodeJS.Timeout | undefined;
}

export interface RetriesDeps {
  readonly store: MessageStore;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: EngineMetrics;
  readonly options: ResolvedOptions;
  readonly wheel: TimingWheel;
  readonly ledger: ClaimLedger;
  /** The epoch this node fires a slot under, if it does. */
  readonly epochOf: (slot: number) => number | undefined;
  /** Whether releases are still worth retrying (the engine runs and is not stopping). */
  readonly active: () => boolean;
  /** Something was put in the wheel: fire it. */
  readonly wake: () => void;
  readonly sleep: (ms: number) => Promise<void>;
}

export class Retries {
  private readonly parked = new Map<string, ParkedTarget>();
  /** Messages put back in the wheel by a retry, until the wheel fires them: seq → slot. */
  private readonly backoff = new Map<number, number>();
  /** Messages whose release is under way. */
  private readonly releasing = new Set<number>();

  constructor(private readonly deps: RetriesDeps) {
    deps.metrics.observeParked(() => this.parkedCount());
  }

  /** Whether the message waits here (parked, backed off or being released), not missed. */
  accounts(seq: number): boolean {
    if (this.releasing.has(seq) || this.backoff.has(seq)) return true;
    for (const target of this.parked.values()) if (target.refs.has(seq)) return true;
    return false;
  }

  /** The wheel fired it: its backoff is over. */
  fired(seq: number): void {
    if (this.backoff.size > 0) this.backoff.delete(seq);
  }

  /** A delivery to `target` succeeded: it is up, so what waits for it goes now. */
  answered(target: string): void {
    const parked = this.parked.get(target);
    if (!parked) return;
    this.parked.delete(target);
    clearTimeout(parked.timer);
    const now = this.deps.clock.now();
    for (const ref of parked.refs.values()) this.rewheel(ref, now);
    if (parked.refs.size > 0) {
      this.deps.logger.info(
        { target, messages: parked.refs.size },
        'delivery target answers again; firing what waited for it',
      );
      this.deps.wake();
    }
  }

  /** Retriable failure: release uncounted, then park under the target until it answers. */
  async park(
    target: string,
    messages: readonly ClaimedMessage[],
    leases: ReadonlyMap<number, number>,
    error: string,
  ): Promise<void> {
    const release: ClaimRelease = { error, countAttempt: false, giveUp: false };
    if (!(await this.release(messages, leases, release))) return;
    let parked = this.parked.get(target);
    if (!parked) {
      parked = { refs: new Map(), failures: 0, timer: undefined };
      this.parked.set(target, parked);
      this.deps.logger.warn(
        { target, err: error, messages: messages.length },
        'delivery target unavailable; holding its messages until it answers',
      );
    }
    for (const message of messages)
      if (this.deps.epochOf(message.slot) !== undefined)
        parked.refs.set(message.seq, { seq: message.seq, slot: message.slot });
    this.scheduleProbe(target, parked);
  }

  /** The target refused these messages: count the attempt; give up or retry after a backoff. */
  async refused(
    messages: readonly ClaimedMessage[],
    leases: ReadonlyMap<number, number>,
    error: string,
  ): Promise<void> {
    const { maxAttempts } = this.deps.options;
    const giveUp = messages.filter((message) => message.attempts + 1 >= maxAttempts);
    const retry = messages.filter((message) => message.attempts + 1 < maxAttempts);
    if (giveUp.length > 0) {
      const released = await this.release(giveUp, leases, {
        error,
        countAttempt: true,
        giveUp: true,
      });
      if (released) this.deps.metrics.failed(giveUp);
    }
    if (retry.length === 0) return;
    if (!(await this.release(retry, leases, { error, countAttempt: true, giveUp: false }))) return;
    const now = this.deps.clock.now();
    for (const message of retry) {
      const delay = Math.min(
        this.deps.options.retryMaxMs,
        this.deps.options.retryInitialMs * 2 ** Math.min(message.attempts, 20),
      );
      this.rewheel(message, now + delay);
    }
    this.deps.wake();
  }

  /** Puts released messages back in the wheel after `delayMs`. */
  later(refs: readonly MessageRef[], delayMs: number): void {
    const due = this.deps.clock.now() + delayMs;
    for (const ref of refs) this.rewheel(ref, due);
    this.deps.wake();
  }

  /**
   * releaseClaims, retried with backoff until it succeeds (true). Gives up (false) once the engine
   * stops or fires none of the batch's slots under the batch's epochs any more: the rows then
   * stay `delivering` until the slot's next acquisition resets them.
   */
  async release(
    messages: readonly MessageRef[],
    leases: ReadonlyMap<number, number>,
    release: ClaimRelease,
  ): Promise<boolean> {
    if (messages.length === 0) return true;
    for (const message of messages) this.releasing.add(message.seq);
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          await this.deps.store.releaseClaims(messages, leases, release, this.deps.clock.now());
          return true;
        } catch (error) {
          const held = [...leases].some(([slot, epoch]) => this.deps.epochOf(slot) === epoch);
          if (!this.deps.active() || !held) {
            this.deps.logger.warn(
              { err: error, messages: messages.length },
              'releasing claims failed; left for the next acquisition of their slots to reset',
            );
            return false;
          }
          if (attempt % 12 === 0)
            this.deps.logger.warn(
              { err: error, messages: messages.length, attempt },
              'releasing claims failed; retrying',
            );
          await this.deps.sleep(Math.min(RELEASE_RETRY_MAX_MS, 100 * 2 ** attempt));
        }
      }
    } finally {
      this.deps.ledger.settle(messages);
      for (const message of messages) this.releasing.delete(message.seq);
    }
  }

  /** Forgets what waits here for these slots (handed over: the next owner loads them). */
  dropSlots(slots: ReadonlySet<number>): void {
    // Their wheel entries go with the wheel's dropSlots; only the bookkeeping is left here.
    for (const [seq, slot] of this.backoff) if (slots.has(slot)) this.backoff.delete(seq);
    for (const parked of this.parked.values())
      for (const [seq, ref] of parked.refs) if (slots.has(ref.slot)) parked.refs.delete(seq);
  }

  stop(): void {
    for (const parked of this.parked.values()) clearTimeout(parked.timer);
    this.parked.clear();
    this.backoff.clear();
  }

  private parkedCount(): number {
    let count = 0;
    for (const parked of this.parked.values()) count += parked.refs.size;
    return count;
  }

  private rewheel(ref: MessageRef, dueMs: number): void {
    if (this.deps.epochOf(ref.slot) === undefined) return;
    // The claim comes claimAheadMs before the wheel's due time, so it is the claim that waits.
    const due = dueMs + this.deps.options.claimAheadMs;
    this.backoff.set(ref.seq, ref.slot);
    this.deps.wheel.insert({ seq: ref.seq, slot: ref.slot, dueMs: due });
  }

  private scheduleProbe(target: string, parked: ParkedTarget): void {
    if (parked.timer !== undefined || !this.deps.active()) return;
    const { retryInitialMs, probeMaxMs } = this.deps.options;
    const delay = Math.min(probeMaxMs, retryInitialMs * 2 ** Math.min(parked.failures, 20));
    parked.failures++;
    parked.timer = setTimeout(() => {
      parked.timer = undefined;
      const first = parked.refs.values().next();
      if (first.done) {
        if (this.parked.get(target) === parked) this.parked.delete(target);
        return;
      }
      // One message probes the target; its success releases the rest (see answered()). The next
      // probe is set now, not when this one fails: a probe that delivers nothing (its message
      // was cancelled meanwhile) must not leave the rest parked for good.
      parked.refs.delete(first.value.seq);
      this.rewheel(first.value, this.deps.clock.now());
      this.scheduleProbe(target, parked);
      this.deps.wake();
    }, delay);
  }
}

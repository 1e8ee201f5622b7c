/**
 * Counting semaphores, one per key (a destination host, or an app), that bound callbacks under
 * way. Waiters are served first come, first served; each waits at most its own limit, and a key's
 * queue holds at most `maxQueued` waiters, so neither memory nor waiting grows without bound.
 * A key's semaphore exists only while something holds or waits for it.
 */
import { CallFailure } from './errors';

/** Gives a permit back. Calling it again does nothing. */
export type Release = () => void;

export interface LimitMessages {
  /** The error of a call that finds the key's queue full. */
  queueFull(key: string): string;
  /** The error of a call that waited `waitedMs` without getting a permit. */
  waitedTooLong(key: string, waitedMs: number): string;
}

export interface KeyedLimitsOptions {
  /** Permits per key. */
  readonly limit: number;
  /** Waiters per key beyond which a call fails at once. */
  readonly maxQueued: number;
  readonly messages: LimitMessages;
}

interface Waiter {
  readonly grant: (release: Release) => void;
  readonly fail: (error: CallFailure) => void;
  readonly timer: NodeJS.Timeout;
}

class Semaphore {
  private inFlight = 0;
  /** First come, first served: a Set iterates in insertion order and drops a waiter in O(1). */
  private readonly waiters = new Set<Waiter>();

  constructor(
    private readonly key: string,
    private readonly options: KeyedLimitsOptions,
    private readonly onIdle: (semaphore: Semaphore) => void,
  ) {}

  get held(): number {
    return this.inFlight;
  }

  get queued(): number {
    return this.waiters.size;
  }

  acquire(waitLimitMs: number): Promise<Release> {
    if (this.inFlight < this.options.limit) {
      this.inFlight += 1;
      return Promise.resolve(this.releaser());
    }
    if (this.waiters.size >= this.options.maxQueued) {
      return Promise.reject(
        new CallFailure('QUEUE_FULL', this.options.messages.queueFull(this.key)),
      );
    }
    return new Promise<Release>((resolve, reject) => {
      const waiter: Waiter = {
        grant: resolve,
        fail: reject,
        timer: setTimeout(
          () => {
            this.waiters.delete(waiter);
            const message = this.options.messages.waitedTooLong(this.key, waitLimitMs);
            reject(new CallFailure('QUEUE_TIMEOUT', message));
            this.idleCheck();
          },
          Math.max(0, waitLimitMs),
        ),
      };
      this.waiters.add(waiter);
    });
  }

  failWaiting(error: CallFailure): void {
    for (const waiter of this.waiters) {
      clearTimeout(waiter.timer);
      waiter.fail(error);
    }
    this.waiters.clear();
    this.idleCheck();
  }

  private releaser(): Release {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.handOn();
    };
  }

  /** A freed permit goes straight to the oldest waiter, so a newcomer cannot overtake the queue. */
  private handOn(): void {
    const next = this.waiters.values().next();
    if (!next.done) {
      const waiter = next.value;
      this.waiters.delete(waiter);
      clearTimeout(waiter.timer);
      waiter.grant(this.releaser());
      return;
    }
    this.inFlight -= 1;
    this.idleCheck();
  }

  private idleCheck(): void {
    if (this.inFlight === 0 && this.waiters.size === 0) this.onIdle(this);
  }
}

export class KeyedLimits {
  private readonly semaphores = new Map<string, Semaphore>();

  constructor(private readonly options: KeyedLimitsOptions) {}

  /**
   * A permit for `key`, waiting at most `waitLimitMs` behind earlier callers. Rejects with a
   * {@link CallFailure}: `QUEUE_FULL` at once, or `QUEUE_TIMEOUT` after the wait.
   */
  acquire(key: string, waitLimitMs: number): Promise<Release> {
    let semaphore = this.semaphores.get(key);
    if (!semaphore) {
      semaphore = new Semaphore(key, this.options, (idle) => {
        // A released permit of an old semaphore must not remove a newer one for the same key.
        if (this.semaphores.get(key) === idle) this.semaphores.delete(key);
      });
      this.semaphores.set(key, semaphore);
    }
    return semaphore.acquire(waitLimitMs);
  }

  /** Permits held and waiters queued for `key` (0 and 0 for a key not in use). */
  usage(key: string): { held: number; queued: number } {
    const semaphore = this.semaphores.get(key);
    return { held: semaphore?.held ?? 0, queued: semaphore?.queued ?? 0 };
  }

  /** Fails every waiter of every key with `error`; permits already held stay valid. */
  failWaiting(error: CallFailure): void {
    for (const semaphore of [...this.semaphores.values()]) semaphore.failWaiting(error);
  }
}

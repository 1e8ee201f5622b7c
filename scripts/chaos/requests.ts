/**
 * The load's clients: a request sent round-robin over every node of the cluster (running or not,
 * like a client with a static node list), retried on the next node with the same body until it
 * gets an answer that is not a failure. Used for POST /v1/messages (load.ts), the PATCH that moves
 * a message (reschedule.ts) and POST /v1/schedules (recurring.ts).
 *
 * A failure is a 5xx, 408 or 429 answer, a connection error or a timeout; it is recorded and the
 * request sent again after a backoff of 100 ms doubling to 1 s, until `giveUpAt`. Any other
 * answer (2xx, or a 4xx that a re-send would only repeat) ends it. Every request of one method
 * and path carries the same body, so a re-send of one that committed before its answer was lost
 * is recognised by the node (idempotent POST; a PATCH to an absolute time applies the same change).
 */

/** One attempt that did not get an answer other than a failure: when, which node, what came back. */
export interface FailedAttempt {
  at: number;
  node: number;
  error: string;
}

/** What one retried request records of its attempts. */
export interface AttemptLog {
  attempts: number;
  failures: FailedAttempt[];
}

export type Answer =
  { kind: 'answered'; status: number; text: string; node: number } | { kind: 'gave-up' };

/**
 * A failed attempt whose request certainly never reached a node (nothing listened on the port),
 * so it cannot have committed anything.
 */
export function neverSent(failure: FailedAttempt): boolean {
  return failure.error === 'ECONNREFUSED';
}

class Semaphore {
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  constructor(private readonly limit: number) {}

  async acquire(): Promise<void> {
    if (this.active < this.limit) {
      this.active++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.active--;
  }
}

export class RetryingClient {
  private readonly semaphore: Semaphore;
  private nextNode = 0;

  /** At most `concurrency` requests are in flight at once, whatever they are. */
  constructor(
    private readonly urls: readonly string[],
    private readonly token: string,
    concurrency: number,
    private readonly requestTimeoutMs: number,
    private readonly abort: AbortSignal,
  ) {
    this.semaphore = new Semaphore(concurrency);
  }

  async send(
    method: 'POST' | 'PATCH',
    path: string,
    body: string,
    log: AttemptLog,
    giveUpAt: number,
  ): Promise<Answer> {
    let backoffMs = 100;
    for (;;) {
      if (this.abort.aborted || Date.now() > giveUpAt) return { kind: 'gave-up' };
      await this.semaphore.acquire();
      const node = this.nextNode++ % this.urls.length;
      const at = Date.now();
      log.attempts++;
      let error: string;
      try {
        const response = await fetch(`${this.urls[node]}${path}`, {
          method,
          headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
          body,
          signal: AbortSignal.any([AbortSignal.timeout(this.requestTimeoutMs), this.abort]),
        });
        const text = await response.text();
        const status = response.status;
        if (status < 500 && status !== 408 && status !== 429) {
          return { kind: 'answered', status, text, node };
        }
        error = `${status} ${text.slice(0, 160)}`;
      } catch (caught) {
        const cause = (caught as { cause?: { code?: string } }).cause;
        error =
          cause?.code ?? (caught instanceof Error ? `${caught.name}: ${caught.message}` : 'error');
      } finally {
        this.semaphore.release();
      }
      log.failures.push({ at, node, error });
      await new Promise((resolve) => setTimeout(resolve, backoffMs));
      backoffMs = Math.min(backoffMs * 2, 1000);
    }
  }
}

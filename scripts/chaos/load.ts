/**
 * Steady load from retrying clients: `rate` messages a second, each with a unique id and a delay
 * of `minDelayMs`–`maxDelayMs`, sent with POST /v1/messages round-robin over every node of the
 * cluster (running or not, like a client with a static node list).
 *
 * A failed request (5xx, 429, a connection error or a timeout) is retried on the next node with
 * the same id and the same body, with a backoff, until a 2xx answer or `giveUpMs` after the
 * message was first sent. An identical re-send is idempotent (200 with the stored message), so a
 * request that timed out after its commit is not sent twice. Only 2xx answers count as
 * acknowledged; their `deliverAt` is the due time the suite checks against.
 *
 * A share of the messages (`callbackShare`, spread evenly over the sequence) goes to the HTTP
 * receiver instead of the topic: `callback: {url}` with a retry strategy that outlasts every
 * fault (`callbackRetry`). Their ids end in `-cb<seq>` instead of `-<seq>`.
 *
 * At most `concurrency` requests are in flight at once; a message waiting for its turn waits
 * its backoff first. If more than `maxPending` messages are unacknowledged at once, new ones
 * are not generated (counted as `shed`), which bounds memory whatever the cluster does.
 */
import { log } from './common';

export interface LoadOptions {
  rate: number;
  minDelayMs: number;
  maxDelayMs: number;
  concurrency: number;
  requestTimeoutMs: number;
  giveUpMs: number;
  maxPending: number;
  /** 0–1: the share of messages sent as HTTP callbacks to `callbackUrl` instead of to the topic. */
  callbackShare: number;
  callbackUrl: string;
  /** The `retry` of every callback message. */
  callbackRetry: Readonly<Record<string, unknown>>;
  /** The callback's `timeoutMs`. */
  callbackTimeoutMs: number;
}

/** How a message is delivered: a Kafka record on the run's topic, or an HTTP callback. */
export type Via = 'kafka' | 'http';

/** Rejections logged one by one; after that, only counted. */
const MAX_REJECTIONS_LOGGED = 20;

/** One attempt that did not get a 2xx answer: when, which node, what came back. */
export interface FailedAttempt {
  at: number;
  node: number;
  error: string;
}

export interface SentMessage {
  id: string;
  via: Via;
  /** When the client generated it (first attempt started at or after this). */
  createdAt: number;
  delayMs: number;
  attempts: number;
  failures: FailedAttempt[];
  /** When the 2xx answer arrived, and its status and due time. */
  ackedAt?: number;
  ackStatus?: number;
  ackNode?: number;
  dueMs?: number;
  /** A non-retriable answer (4xx other than 408/429): never acknowledged. */
  rejected?: string;
  gaveUp?: boolean;
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

export class LoadGenerator {
  readonly messages = new Map<string, SentMessage>();
  shed = 0;
  rejections = 0;
  private readonly semaphore: Semaphore;
  private readonly tasks = new Set<Promise<void>>();
  private readonly abort = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private generated = 0;
  private nextNode = 0;
  private startedAt = 0;
  private pending = 0;
  private stoppedAt: number | undefined;

  constructor(
    private readonly urls: readonly string[],
    private readonly token: string,
    private readonly topic: string,
    private readonly runId: string,
    private readonly options: LoadOptions,
  ) {
    this.semaphore = new Semaphore(options.concurrency);
  }

  get inFlight(): number {
    return this.pending;
  }

  start(): void {
    this.startedAt = Date.now();
    this.timer = setInterval(() => this.tick(), 20);
  }

  /** Generates no more messages; those already generated keep retrying. */
  stopGenerating(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.stoppedAt ??= Date.now();
  }

  /** Waits (at most `timeoutMs`) for every message to be acknowledged, rejected or given up. */
  async settle(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.tasks.size > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return this.tasks.size === 0;
  }

  /** Aborts every request and retry still going (they count as given up). */
  async cancel(): Promise<void> {
    this.stopGenerating();
    this.abort.abort();
    await Promise.allSettled([...this.tasks]);
  }

  private tick(): void {
    const target = Math.floor(((Date.now() - this.startedAt) * this.options.rate) / 1000);
    // After a stall of the event loop, catch up by at most one second's worth.
    const count = Math.min(target - this.generated, this.options.rate);
    for (let i = 0; i < count; i++) {
      const seq = this.generated++;
      if (this.pending >= this.options.maxPending) {
        this.shed++;
        continue;
      }
      const { minDelayMs, maxDelayMs, callbackShare } = this.options;
      // The callback share, spread evenly: seq is a callback when it crosses the next multiple.
      const via: Via =
        Math.floor((seq + 1) * callbackShare) > Math.floor(seq * callbackShare) ? 'http' : 'kafka';
      const message: SentMessage = {
        id: via === 'http' ? `chaos-${this.runId}-cb${seq}` : `chaos-${this.runId}-${seq}`,
        via,
        createdAt: Date.now(),
        delayMs: minDelayMs + Math.floor(Math.random() * (maxDelayMs - minDelayMs + 1)),
        attempts: 0,
        failures: [],
      };
      this.messages.set(message.id, message);
      this.pending++;
      const task = this.send(message).finally(() => {
        this.pending--;
        this.tasks.delete(task);
      });
      this.tasks.add(task);
    }
    if (target > this.generated) this.generated = target;
  }

  private async send(message: SentMessage): Promise<void> {
    const payload = { id: message.id, createdAt: message.createdAt };
    const body = JSON.stringify(
      message.via === 'http'
        ? {
            id: message.id,
            callback: { url: this.options.callbackUrl, timeoutMs: this.options.callbackTimeoutMs },
            retry: this.options.callbackRetry,
            payload,
            delayMs: message.delayMs,
          }
        : { id: message.id, topic: this.topic, key: message.id, payload, delayMs: message.delayMs },
    );
    let backoffMs = 100;
    for (;;) {
      if (this.abort.signal.aborted || Date.now() - message.createdAt > this.options.giveUpMs) {
        message.gaveUp = true;
        return;
      }
      await this.semaphore.acquire();
      const node = this.nextNode++ % this.urls.length;
      const at = Date.now();
      message.attempts++;
      let error: string;
      try {
        const response = await fetch(`${this.urls[node]}/v1/messages`, {
          method: 'POST',
          headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
          body,
          signal: AbortSignal.any([
            AbortSignal.timeout(this.options.requestTimeoutMs),
            this.abort.signal,
          ]),
        });
        const text = await response.text();
        if (response.status === 200 || response.status === 201) {
          const stored = JSON.parse(text) as { deliverAt: string };
          message.ackedAt = Date.now();
          message.ackStatus = response.status;
          message.ackNode = node;
          message.dueMs = Date.parse(stored.deliverAt);
          return;
        }
        error = `${response.status} ${text.slice(0, 160)}`;
        if (response.status < 500 && response.status !== 408 && response.status !== 429) {
          message.rejected = error;
          if (++this.rejections <= MAX_REJECTIONS_LOGGED) {
            log(
              `message ${message.id} rejected by node ${node + 1}: ${error}${this.rejections === MAX_REJECTIONS_LOGGED ? ' (further rejections are only counted)' : ''}`,
            );
          }
          return;
        }
      } catch (caught) {
        const cause = (caught as { cause?: { code?: string } }).cause;
        error =
          cause?.code ?? (caught instanceof Error ? `${caught.name}: ${caught.message}` : 'error');
      } finally {
        this.semaphore.release();
      }
      message.failures.push({ at, node, error });
      await new Promise((resolve) => setTimeout(resolve, backoffMs));
      backoffMs = Math.min(backoffMs * 2, 1000);
    }
  }
}

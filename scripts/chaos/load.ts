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
 * A share of the Kafka messages (`rescheduleShare`, spread evenly over them; ids `-mv<seq>`) is
 * moved with a PATCH right after its POST was acknowledged, retried the same way
 * (./reschedule.ts). The requests themselves go through ./requests.ts.
 *
 * At most `concurrency` requests are in flight at once; a message waiting for its turn waits
 * its backoff first. If more than `maxPending` messages are unacknowledged at once, new ones
 * are not generated (counted as `shed`), which bounds memory whatever the cluster does.
 */
import { log } from './common';
import { reschedule } from './reschedule';
import type { Move } from './reschedule';
import { RetryingClient } from './requests';
import type { AttemptLog } from './requests';

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
  /** 0–1: the share of the Kafka messages moved with a PATCH once acknowledged (reschedule.ts). */
  rescheduleShare: number;
}

/** How a message is delivered: a Kafka record on the run's topic, or an HTTP callback. */
export type Via = 'kafka' | 'http';

/** Rejections logged one by one; after that, only counted. */
const MAX_REJECTIONS_LOGGED = 20;

export type { FailedAttempt } from './requests';

export interface SentMessage extends AttemptLog {
  id: string;
  via: Via;
  /** When the client generated it (first attempt started at or after this). */
  createdAt: number;
  delayMs: number;
  /** When the 2xx answer arrived, and its status and due time. */
  ackedAt?: number;
  ackStatus?: number;
  ackNode?: number;
  dueMs?: number;
  /** A non-retriable answer (4xx other than 408/429): never acknowledged. */
  rejected?: string;
  gaveUp?: boolean;
  /** Present for the rescheduled share: the PATCH that moves it once acknowledged. */
  move?: Move;
  /** Set for an expected occurrence of a recurring schedule (recurring.ts): the schedule's id. */
  occurrenceOf?: string;
}

export class LoadGenerator {
  readonly messages = new Map<string, SentMessage>();
  shed = 0;
  rejections = 0;
  /** The client every request goes through (the schedules' too): one limit on requests in flight. */
  readonly client: RetryingClient;
  private readonly tasks = new Set<Promise<void>>();
  private readonly abort = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private generated = 0;
  private kafkaGenerated = 0;
  private startedAt = 0;
  private pending = 0;
  private stoppedAt: number | undefined;

  constructor(
    urls: readonly string[],
    token: string,
    private readonly topic: string,
    private readonly runId: string,
    private readonly options: LoadOptions,
  ) {
    this.client = new RetryingClient(
      urls,
      token,
      options.concurrency,
      options.requestTimeoutMs,
      this.abort.signal,
    );
  }

  get inFlight(): number {
    return this.pending;
  }

  /** When the load stopped generating messages (undefined while it runs). */
  get stoppedGeneratingAt(): number | undefined {
    return this.stoppedAt;
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

  /** Runs `work` as one of the load's tasks: {@link settle} and {@link cancel} wait for it. */
  track(work: Promise<void>): void {
    this.pending++;
    const task = work.finally(() => {
      this.pending--;
      this.tasks.delete(task);
    });
    this.tasks.add(task);
  }

  /** Whether the n-th message (from 0) of a kind falls in `share`: spread evenly over the sequence. */
  private static inShare(n: number, share: number): boolean {
    return Math.floor((n + 1) * share) > Math.floor(n * share);
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
      const { minDelayMs, maxDelayMs, callbackShare, rescheduleShare } = this.options;
      const via: Via = LoadGenerator.inShare(seq, callbackShare) ? 'http' : 'kafka';
      const moved =
        via === 'kafka' && LoadGenerator.inShare(this.kafkaGenerated++, rescheduleShare);
      const message: SentMessage = {
        id:
          via === 'http'
            ? `chaos-${this.runId}-cb${seq}`
            : `chaos-${this.runId}-${moved ? 'mv' : ''}${seq}`,
        via,
        createdAt: Date.now(),
        delayMs: minDelayMs + Math.floor(Math.random() * (maxDelayMs - minDelayMs + 1)),
        attempts: 0,
        failures: [],
        ...(moved ? { move: { attempts: 0, failures: [] } } : {}),
      };
      this.messages.set(message.id, message);
      this.track(this.send(message));
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
    const giveUpAt = message.createdAt + this.options.giveUpMs;
    const answer = await this.client.send('POST', '/v1/messages', body, message, giveUpAt);
    if (answer.kind === 'gave-up') {
      message.gaveUp = true;
      return;
    }
    const { status, text, node } = answer;
    if (status === 200 || status === 201) {
      const stored = JSON.parse(text) as { deliverAt: string };
      message.ackedAt = Date.now();
      message.ackStatus = status;
      message.ackNode = node;
      message.dueMs = Date.parse(stored.deliverAt);
      // Right after the acknowledgement, as a client changing its mind would.
      if (message.move) await reschedule(this.client, message, giveUpAt);
      return;
    }
    message.rejected = `${status} ${text.slice(0, 160)}`;
    if (++this.rejections <= MAX_REJECTIONS_LOGGED) {
      log(
        `message ${message.id} rejected by node ${node + 1}: ${message.rejected}${this.rejections === MAX_REJECTIONS_LOGGED ? ' (further rejections are only counted)' : ''}`,
      );
    }
  }
}

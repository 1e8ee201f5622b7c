import { HourglassClientError } from './errors';
import { GrpcTransport } from './grpc';
import { HttpTransport } from './http';
import type { RetryPolicy } from './retry';
import { retryDelayMs } from './retry';
import type { Transport } from './transport';
import type {
  Attempt,
  BatchItemResult,
  CancelResult,
  Endpoint,
  Message,
  MessagePatch,
  ScheduleMessage,
  ScheduleResult,
  UpdateOptions,
} from './types';
import { prepareIfVersion, preparePatch } from './patch';
import { prepareMessage } from './wire';

/** Options of {@link HourglassClient}. */
export interface HourglassClientOptions {
  /** Your app's token, sent as `authorization: Bearer <token>`. */
  token: string;
  /**
   * Retries after the first attempt for retriable failures: HTTP 503 and gRPC UNAVAILABLE, 429 /
   * `rate_limited`, network errors and timeouts. Never for other 4xx refusals. 0 disables retries.
   * @default 4
   */
  retries?: number;
  /**
   * How long one attempt may take before it counts as failed (and is retried).
   * @default 10000
   */
  timeoutMs?: number;
  /**
   * The cap of the first backoff wait; each retry doubles it, and the actual wait is uniformly
   * random below the cap.
   * @default 100
   */
  initialBackoffMs?: number;
  /**
   * The largest backoff wait.
   * @default 5000
   */
  maxBackoffMs?: number;
  /**
   * The longest Retry-After (from a 429) the client waits for; a longer one is thrown as a
   * `rate_limited` error for the caller to schedule.
   * @default 60000
   */
  maxRetryAfterMs?: number;
  /**
   * gRPC only: the folder holding `hourglass/v1/messages.proto`, for bundled applications where
   * the package's own `proto/` folder is not next to the code.
   * @default the package's `proto/` folder
   */
  protoDir?: string;
}

/** The options after defaults were applied. */
interface CompiledOptions {
  readonly timeoutMs: number;
  readonly retry: RetryPolicy;
}

function compile(options: HourglassClientOptions): CompiledOptions {
  const count = (name: string, value: number | undefined, fallback: number): number => {
    const result = value ?? fallback;
    if (!Number.isFinite(result) || result < 0)
      throw new RangeError(
        `@hourglass/client: ${name} must be a number >= 0, got ${String(value)}`,
      );
    return result;
  };
  if (typeof options.token !== 'string' || options.token.length === 0)
    throw new TypeError('@hourglass/client: token is required');
  return {
    timeoutMs: count('timeoutMs', options.timeoutMs, 10_000),
    retry: {
      retries: Math.floor(count('retries', options.retries, 4)),
      initialBackoffMs: count('initialBackoffMs', options.initialBackoffMs, 100),
      maxBackoffMs: count('maxBackoffMs', options.maxBackoffMs, 5_000),
      maxRetryAfterMs: count('maxRetryAfterMs', options.maxRetryAfterMs, 60_000),
    },
  };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A client of the Hourglass message API over HTTP or gRPC; both behave the same, with the same
 * error codes.
 *
 * Every call is retried on retriable failures (see {@link HourglassClientOptions.retries}). That is
 * safe for `schedule` because the client gives each message an id (a UUIDv7) before the first
 * attempt when you give none: a retry whose first attempt was applied but whose answer was lost
 * is answered with the existing message (`created: false`), never a second message.
 *
 * @example
 * ```ts
 * const client = new HourglassClient({ http: 'http://127.0.0.1:8081' }, { token: 'demo-token' });
 * const { message } = await client.schedule({ topic: 'demo.events', payload: { orderId: 42 }, delayMs: 30_000 });
 * await client.cancel(message.id);
 * client.close();
 * ```
 */
export class HourglassClient {
  private readonly transport: Transport;
  private readonly options: CompiledOptions;

  /**
   * @param endpoint `{ http: baseUrl }` or `{ grpc: 'host:port' }`.
   * @param options the app token and retry settings.
   * @throws TypeError or RangeError for invalid options; Error when gRPC is chosen and the
   *   .proto files cannot be found.
   */
  constructor(endpoint: Endpoint, options: HourglassClientOptions) {
    this.options = compile(options);
    if ('http' in endpoint) {
      this.transport = new HttpTransport(endpoint.http, options.token);
    } else {
      this.transport = new GrpcTransport({
        address: endpoint.grpc,
        token: options.token,
        tls: endpoint.tls ?? false,
        ...(options.protoDir !== undefined ? { protoDir: options.protoDir } : {}),
      });
    }
  }

  /** `'http'` or `'grpc'`. */
  get transportName(): 'http' | 'grpc' {
    return this.transport.name;
  }

  /**
   * Schedules one message for delivery to its targets (a Kafka topic, an HTTP callback, or a
   * list of both) at its due time.
   * @returns the message as stored, and whether this call created it.
   * @throws {@link HourglassClientError} e.g. `invalid_request`, `topic_not_allowed`,
   *   `callback_not_allowed` (the app's callback host allowlist refuses the URL's host),
   *   `id_conflict` (the id exists with other content), `delay_too_long`, `payload_too_large`.
   */
  async schedule(message: ScheduleMessage): Promise<ScheduleResult> {
    const wire = prepareMessage(message, this.transport.name);
    return this.withRetries(() => this.transport.schedule(wire, this.options.timeoutMs));
  }

  /**
   * Schedules up to the server's batch limit (1000 by default) in one round trip.
   * @returns one result per message, in input order; refusals of single messages are results,
   *   not exceptions.
   * @throws {@link HourglassClientError} for failures of the whole call, e.g.
   *   `batch_too_large`, `unauthenticated`, or `unavailable` after retries.
   */
  async scheduleBatch(messages: readonly ScheduleMessage[]): Promise<BatchItemResult[]> {
    const wire = messages.map((message, index) =>
      prepareMessage(message, this.transport.name, `messages/${index}/`),
    );
    return this.withRetries(() => this.transport.scheduleBatch(wire, this.options.timeoutMs));
  }

  /**
   * The message with this id, scheduled by your app.
   * @throws {@link HourglassClientError} `not_found` (also for other apps' ids) or `invalid_request`.
   */
  async get(id: string): Promise<Message> {
    this.checkId(id);
    return this.withRetries(() => this.transport.get(id, this.options.timeoutMs));
  }

  /**
   * Cancels a scheduled message; once this resolves the message is never delivered.
   *
   * When an attempt fails without an answer and the retry is refused with `already_cancelled`,
   * the lost attempt (or another caller) did cancel it, so this resolves as a success.
   * @throws {@link HourglassClientError} `not_found`, `already_delivered` (it was, or is being,
   *   delivered), `already_cancelled`, `already_failed`.
   */
  async cancel(id: string): Promise<CancelResult> {
    this.checkId(id);
    let unanswered = false;
    return this.withRetries(async () => {
      try {
        return await this.transport.cancel(id, this.options.timeoutMs);
      } catch (error) {
        if (error instanceof HourglassClientError) {
          if (unanswered && error.code === 'already_cancelled')
            return { id, state: 'cancelled' as const };
          if (error.code === 'network_error' || error.code === 'timeout') unanswered = true;
        }
        throw error;
      }
    });
  }

  /**
   * The delivery attempts of your app's message, oldest first: one per HTTP target attempt, with
   * its status, error and the start of the answer's body. Kafka-only messages log none (their
   * count is in {@link Message.attempts}).
   * @throws {@link HourglassClientError} `not_found` or `invalid_request`.
   */
  async attempts(id: string): Promise<Attempt[]> {
    this.checkId(id);
    return this.withRetries(() => this.transport.attempts(id, this.options.timeoutMs));
  }

  /**
   * Re-arms the failed targets of a `failed` message now, with a fresh attempt budget; delivered
   * targets are not sent again.
   *
   * When an attempt fails without an answer and the retry is refused with `not_failed`, the lost
   * attempt (or another caller) most likely re-armed it, so this resolves with the message as it
   * is now.
   * @returns the message, `scheduled` again.
   * @throws {@link HourglassClientError} `not_failed` (it is not failed), `not_found`.
   */
  async retry(id: string): Promise<Message> {
    this.checkId(id);
    let unanswered = false;
    return this.withRetries(async () => {
      try {
        return await this.transport.retry(id, this.options.timeoutMs);
      } catch (error) {
        if (error instanceof HourglassClientError) {
          if (unanswered && error.code === 'not_failed')
            return this.transport.get(id, this.options.timeoutMs);
          if (error.code === 'network_error' || error.code === 'timeout') unanswered = true;
        }
        throw error;
      }
    });
  }

  /**
   * Changes a scheduled message: its due time, payload, headers, key, destination, retry strategy
   * or content type (see {@link MessagePatch}). Once this resolves the old version is never
   * delivered, on whichever node holds the message.
   *
   * With `ifVersion` the change applies only while the message is at that version. A retry after
   * an attempt that got no answer can then be refused with `version_mismatch` although that
   * attempt applied: read the message and compare before deciding (as after any lost race).
   * @returns the message as changed, with its raised {@link Message.version}.
   * @throws {@link HourglassClientError} `invalid_request` (the patch, or the message it makes, is
   *   invalid), `version_mismatch` (not at `ifVersion`), `not_found`, `already_delivered`,
   *   `delivery_in_progress` (ask again), `already_cancelled`, `already_failed`,
   *   `topic_not_allowed`, `callback_not_allowed`, `delay_too_long`, `payload_too_large`.
   */
  async update(id: string, patch: MessagePatch, options: UpdateOptions = {}): Promise<Message> {
    this.checkId(id);
    const wire = preparePatch(patch, this.transport.name);
    const ifVersion = prepareIfVersion(options, this.transport.name);
    return this.withRetries(() =>
      this.transport.update(id, wire, ifVersion, this.options.timeoutMs),
    );
  }

  /** Releases the gRPC channel (HTTP holds nothing). The client must not be used afterwards. */
  close(): void {
    this.transport.close();
  }

  /**
   * An empty id cannot be put in an HTTP path (it would address another route), so both transports
   * refuse it here with the code the server uses for bad ids.
   */
  private checkId(id: string): void {
    if (typeof id !== 'string' || id.length === 0) {
      throw new HourglassClientError({
        code: 'invalid_request',
        message: 'message ids are 1-128 characters of A-Z a-z 0-9 . _ : -',
        transport: this.transport.name,
        retriable: false,
        details: [{ path: 'id', message: 'required' }],
      });
    }
  }

  private async withRetries<T>(attempt: () => Promise<T>): Promise<T> {
    for (let retry = 0; ; retry++) {
      try {
        return await attempt();
      } catch (error) {
        if (!(error instanceof HourglassClientError)) throw error;
        const delay = retryDelayMs(error, retry, this.options.retry, Math.random);
        if (delay === undefined) throw error;
        await sleep(delay);
      }
    }
  }
}

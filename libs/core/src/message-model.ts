/**
 * What a message is, as stored and as requested: the types the store, the engine and the
 * exporters share, the limits a request is checked against, and the row a validated request
 * becomes. Validation itself is in ./message.ts.
 */
import { HourglassError } from './errors';
import type { NewMessage } from './ports';
import type { RetryStrategy } from './retry-strategy';
import type { MessageState } from './state-machine';
import type { TargetLimits, TargetSpec, TargetState } from './targets';

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export type PayloadEncoding = 'json' | 'binary';

/** A message as stored. Times are epoch milliseconds. */
export interface StoredMessage {
  readonly app: string;
  readonly id: string;
  readonly slot: number;
  readonly topic: string;
  readonly key: string | null;
  readonly payload: Buffer;
  readonly payloadEncoding: PayloadEncoding;
  readonly headers: Readonly<Record<string, string>>;
  readonly deliverAtMs: number;
  readonly state: MessageState;
  readonly createdAtMs: number;
  /** When it reached delivered, cancelled or failed. */
  readonly finishedAtMs: number | null;
  readonly attempts: number;
  readonly lastError: string | null;
  /** Fingerprint of the request as sent, for idempotent re-sends; see {@link requestFingerprint}. */
  readonly fingerprint: string;
  /** The targets, for a message with more than a `topic` (null/absent: the one Kafka target `topic`). */
  readonly targets?: readonly TargetSpec[] | null;
  /** One state per target, with `targets`. */
  readonly targetStates?: readonly TargetState[] | null;
  /** The retry strategy resolved when it was accepted, with `targets`. */
  readonly retry?: RetryStrategy | null;
  /** The content type of callback bodies, when the message says. */
  readonly contentType?: string | null;
  /** The due time as accepted, once a retry moved `deliverAtMs` on (null/absent: never moved). */
  readonly firstDeliverAtMs?: number | null;
  /** Raised by every change (PATCH); absent: 1, a message never changed. */
  readonly version?: number;
}

/** A validated schedule request, before an id and slot are assigned. */
export interface ScheduleRequest {
  readonly id: string | undefined;
  readonly topic: string;
  readonly key: string | null;
  readonly payload: Buffer;
  readonly payloadEncoding: PayloadEncoding;
  readonly headers: Readonly<Record<string, string>>;
  readonly deliverAtMs: number;
  readonly fingerprint: string;
  /** null for a message with only a `topic` (the Kafka fast path). */
  readonly targets: readonly TargetSpec[] | null;
  /** Whether they came as a `targets` list (else from `topic` and `callback`): for error paths. */
  readonly targetsListed?: boolean;
  readonly retry: RetryStrategy | null;
  readonly contentType: string | null;
}

export interface MessageLimits {
  /** @default 1048576 (1 MiB) */
  readonly maxPayloadBytes: number;
  /** @default 3650 days */
  readonly maxDelayMs: number;
  /** @default 1000 */
  readonly maxBatchSize: number;
  /**
   * How many levels a JSON payload may nest (`[]` is one); deeper ones are refused before they
   * are serialised. @default 64 ({@link DEFAULT_MAX_PAYLOAD_DEPTH})
   */
  readonly maxPayloadDepth?: number;
  /** Targets and callbacks: without these, only `topic` messages are accepted. */
  readonly targets?: TargetLimits;
  /** What a message's `retry` is merged over (the app's default, else the global one). */
  readonly retryBase?: RetryStrategy;
}

/** A validated request as the message to store, under the id and slot assigned to it. */
export function newMessageOf(
  app: string,
  id: string,
  slot: number,
  request: ScheduleRequest,
): NewMessage {
  return {
    app,
    id,
    slot,
    topic: request.topic,
    key: request.key,
    payload: request.payload,
    payloadEncoding: request.payloadEncoding,
    headers: request.headers,
    deliverAtMs: request.deliverAtMs,
    fingerprint: request.fingerprint,
    targets: request.targets,
    retry: request.retry,
    contentType: request.contentType,
  };
}

export function parseBatch(body: unknown, limits: MessageLimits): unknown[] {
  if (!isPlainObject(body) || !Array.isArray(body.messages)) {
    throw new HourglassError('invalid_request', 'the body must be {"messages": [...]}', [
      { path: 'messages', message: 'required array' },
    ]);
  }
  if (body.messages.length === 0 || body.messages.length > limits.maxBatchSize) {
    throw new HourglassError(
      'batch_too_large',
      `a batch holds 1 to ${limits.maxBatchSize} messages; got ${body.messages.length}`,
      [{ path: 'messages', message: `1 to ${limits.maxBatchSize} items` }],
    );
  }
  return body.messages as unknown[];
}

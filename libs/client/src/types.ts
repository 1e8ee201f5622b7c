/** Requests and responses of the Hourglass message API, the same over HTTP and gRPC. */
import type { HourglassClientError } from './errors';

/** Where a node listens. Any node of a cluster accepts every request. */
export type Endpoint =
  /** The HTTP v1 API base URL, e.g. `http://127.0.0.1:8081`. */
  | { readonly http: string }
  /**
   * The gRPC `host:port`, e.g. `127.0.0.1:9091`. `tls: true` uses TLS with the system roots.
   * @default tls false
   */
  | { readonly grpc: string; readonly tls?: boolean };

/** `POST` or `PUT`. */
export type CallbackMethod = 'POST' | 'PUT';

/**
 * An HTTP target: Hourglass sends the payload to `url` at the due time, signed with your app's
 * signing secret (Standard Webhooks headers), and retries it by the message's
 * {@link RetryStrategy} until a 2xx (docs/callbacks.md).
 */
export interface CallbackTarget {
  /** `http` or `https`, at most 2048 characters, no `user:password@`. */
  readonly url: string;
  /** @default 'POST' */
  readonly method?: CallbackMethod;
  /**
   * Added to the message's `headers` for this target. Names starting with `hourglass-` and
   * `host`, `content-length`, `transfer-encoding`, `connection`, `webhook-*` are refused.
   */
  readonly headers?: Readonly<Record<string, string>>;
  /** 1 to 60000. @default the node's `callbacks.defaultTimeoutMs` (10000) */
  readonly timeoutMs?: number;
  /** The handler's name at the receiver, sent as `hourglass-callback-name`. */
  readonly name?: string;
  /**
   * Send `{"topic", "id", "deliverAt", "body"}` as JSON instead of the payload bytes.
   * @default false
   */
  readonly envelope?: boolean;
  /** A 2xx counts as success only with this body (trimmed), e.g. `'ok'`. */
  readonly expectBody?: string;
}

/** A `targets` entry delivered to Kafka. `type` may be left out when `topic` is given. */
export interface KafkaTarget {
  readonly type?: 'kafka';
  /** A Kafka topic granted to your app. */
  readonly topic: string;
  /** @default null */
  readonly key?: string | null;
  /** Added to the message's `headers` for this target. */
  readonly headers?: Readonly<Record<string, string>>;
}

/** A `targets` entry delivered over HTTP. `type` may be left out when `url` is given. */
export interface HttpTarget extends CallbackTarget {
  readonly type?: 'http';
}

/** One of a message's targets: `{ topic }` (Kafka) or `{ url }` (HTTP). */
export type Target = KafkaTarget | HttpTarget;

export type RetryStrategyKind = 'fixed' | 'linear' | 'exponential';

/**
 * How an HTTP target is retried after a failed attempt. In a request, fields left out come from
 * your app's default, then the node's (exponential, 10 s initial, 1 day max, 10 attempts,
 * jitter); in a {@link Message} every field is set.
 */
export interface RetryStrategy {
  readonly strategy?: RetryStrategyKind;
  /** The delay after the first failed attempt. */
  readonly initialDelayMs?: number;
  /** No delay is longer, whatever the strategy or a `Retry-After` asks for. */
  readonly maxDelayMs?: number;
  /** 1 to 100 attempts in all, the first included. */
  readonly maxAttempts?: number;
  /** Spread each delay over [delay/2, delay]. */
  readonly jitter?: boolean;
}

/** `'trailing'`: the last message wins; `'leading'`: the first one does. */
export type DebounceMode = 'trailing' | 'leading';

/**
 * Collapses messages of your app with the same `key` into one while it is still scheduled and not
 * yet being delivered (README "Debounce"). Not accepted by `scheduleBatch` (refused per item).
 */
export interface Debounce {
  /** 1-256 characters, e.g. `cart:42`. */
  readonly key: string;
  /**
   * Milliseconds, 1 to the server's `limits.maxDelayDays`. Trailing: the message is due this long
   * after the latest one; leading: later messages within this long of the first are dropped.
   */
  readonly windowMs: number;
  /**
   * Trailing: the due time never moves past the first message's time plus this (`windowMs` or
   * more).
   * @default the server's `limits.maxDelayDays`
   */
  readonly maxWaitMs?: number;
  /**
   * `'trailing'`: each message replaces the content of the scheduled one and moves its due time to
   * now + `windowMs`; give no `deliverAt` / `delayMs`. `'leading'`: the first message is scheduled
   * as sent (with its due time), the rest of the window are acknowledged without a message.
   * @default 'trailing'
   */
  readonly mode?: DebounceMode;
}

/**
 * A message to schedule. Give exactly one of `payload` / `payloadBytes`, exactly one of
 * `deliverAt` / `delayMs` (none with a trailing `debounce`), and at least one of `topic` /
 * `callback` / `targets` (`topic` and `callback` together make two targets, Kafka first;
 * `targets` goes alone).
 */
export interface ScheduleMessage {
  /**
   * 1-128 characters of `A-Z a-z 0-9 . _ : -`, unique per app. Sending the same id with the same
   * content again is harmless (answered with the existing message), which is what makes retries
   * safe; the same id with other content is refused with `id_conflict`.
   * @default a UUIDv7 generated by the client, before the first attempt
   */
  id?: string;
  /** A Kafka topic granted to your app. */
  topic?: string;
  /** The Kafka record key of `topic`. @default null */
  key?: string | null;
  /** Any JSON value; produced as its compact JSON text. */
  payload?: unknown;
  /** Opaque bytes, produced as they are. */
  payloadBytes?: Uint8Array;
  /**
   * Headers sent to every target (Kafka record headers, HTTP request headers). Names starting
   * with `hourglass-` are reserved.
   */
  headers?: Readonly<Record<string, string>>;
  /**
   * When to deliver: a `Date`, epoch milliseconds, or ISO-8601 text with a zone. A `Date` is sent
   * as ISO-8601 text, so re-sending the same `Date` is recognised as the same message.
   */
  deliverAt?: Date | number | string;
  /** Milliseconds from when the server accepts the message. */
  delayMs?: number;
  /** One HTTP target (after the Kafka one, when `topic` is given too). */
  callback?: CallbackTarget;
  /** 1 to the server's `limits.maxTargets` (8) targets; not with `topic`, `key` or `callback`. */
  targets?: readonly Target[];
  /** How HTTP targets are retried. @default the app's, then the node's strategy */
  retry?: RetryStrategy;
  /**
   * The `content-type` of callback bodies.
   * @default 'application/json' for `payload`, 'application/octet-stream' for `payloadBytes`
   */
  contentType?: string;
  /** Collapse this message with the scheduled one of the same debounce key. @default none */
  debounce?: Debounce;
}

/**
 * The changes of {@link HourglassClient.update}: each field given replaces the message's, each one
 * left out keeps it, and the changed message must be valid as a new one would. Give at most one of
 * `payload` / `payloadBytes` and of `deliverAt` / `delayMs`, and at least one field.
 */
export interface MessagePatch {
  /** A new due time, as in {@link ScheduleMessage.deliverAt}; a pending retry backoff ends. */
  deliverAt?: Date | number | string;
  /** A new due time, this many milliseconds after the server accepts the update. */
  delayMs?: number;
  /** A new payload: any JSON value (`null` included). */
  payload?: unknown;
  /** A new payload of opaque bytes. */
  payloadBytes?: Uint8Array;
  /** Replaces all the message's headers; `{}` removes them. */
  headers?: Readonly<Record<string, string>>;
  /**
   * A new Kafka record key of the message's topic; `null` removes it. Refused for a message that
   * lists `targets` (send `targets` with the key on its Kafka target instead).
   */
  key?: string | null;
  /**
   * Naming any of `topic`, `callback` or `targets` replaces the whole destination (the old key
   * too, unless given again), with the rules of {@link ScheduleMessage}; delivery starts afresh.
   */
  topic?: string;
  callback?: CallbackTarget;
  targets?: readonly Target[];
  /** Replaces the retry strategy; fields left out come from the app's, then the node's default. */
  retry?: RetryStrategy;
  contentType?: string;
}

/** Options of {@link HourglassClient.update}. */
export interface UpdateOptions {
  /**
   * Apply the change only while the message is at this {@link Message.version}; otherwise it is
   * refused with `version_mismatch`. HTTP sends it as `If-Match: "<version>"`.
   * @default unconditional: the change applies to whatever version is current
   */
  readonly ifVersion?: number;
}

/** Where one target stands: `delivered` and `failed` are final. */
export type TargetState = 'pending' | 'delivered' | 'failed';

/** Fields every {@link TargetStatus} has. */
interface TargetStatusBase {
  /** Its position in the message's targets. */
  readonly index: number;
  /** A server newer than this SDK may report a state not listed in {@link TargetState}. */
  readonly state: TargetState;
  /** Attempts that counted (a Kafka broker outage does not count). */
  readonly attempts: number;
  readonly lastError?: string;
  /** The HTTP status of the last answer, if any. */
  readonly lastStatus?: number;
  /** When the next retry is due. */
  readonly nextAttemptAt?: Date;
  /** Set once `state` is `delivered` or `failed`. */
  readonly finishedAt?: Date;
}

/** One target of a {@link Message} as the server reports it. */
export type TargetStatus = TargetStatusBase &
  (
    | { readonly type: 'kafka'; readonly topic: string; readonly key: string | null }
    | {
        readonly type: 'http';
        readonly url: string;
        readonly method: CallbackMethod;
        readonly name?: string;
      }
  );

/** One delivery attempt of one HTTP target ({@link HourglassClient.attempts}). */
export interface Attempt {
  /** The target's index in {@link Message.targets}. */
  readonly target: number;
  readonly type: 'kafka' | 'http';
  /** 1 for the first. */
  readonly attempt: number;
  readonly at: Date;
  readonly durationMs: number;
  /** The HTTP status, when there was an answer. */
  readonly status?: number;
  readonly error?: string;
  /** The first 1 KiB of the answer's body. */
  readonly response?: string;
}

/** `scheduled` also covers a message being delivered right now. */
export type MessageState = 'scheduled' | 'delivered' | 'cancelled' | 'failed';

/** A message as the server reports it. */
export interface Message {
  readonly id: string;
  /** The app that scheduled it (the token's owner). */
  readonly app: string;
  /** The first Kafka target's topic; null when the message has none. */
  readonly topic: string | null;
  /** The first Kafka target's key. */
  readonly key: string | null;
  /** The shard holding the message; useful when reading server logs. */
  readonly slot: number;
  readonly deliverAt: Date;
  /** A server newer than this SDK may report a state not listed in {@link MessageState}. */
  readonly state: MessageState;
  /**
   * 1 when scheduled, raised by every {@link HourglassClient.update}. Pass it as
   * {@link UpdateOptions.ifVersion} to change the message only if nobody changed it since.
   */
  readonly version: number;
  readonly createdAt: Date;
  /** When the last target was delivered; set once `state` is `delivered`. */
  readonly deliveredAt?: Date;
  /** Set once the message is `delivered` or `failed`. */
  readonly finishedAt?: Date;
  /** Delivery attempts so far. */
  readonly attempts: number;
  /** The last delivery error, if an attempt failed. */
  readonly lastError?: string;
  /** When the next retry is due (`deliverAt` stays the due time asked for). */
  readonly nextAttemptAt?: Date;
  /**
   * Every target, in the order scheduled; a Kafka-only message shows its one Kafka target. The
   * message is `delivered` when every target is, `failed` once every target has finished with at
   * least one failed, and `scheduled` until then (also between retries).
   */
  readonly targets: readonly TargetStatus[];
  /** The retry strategy of its HTTP targets, as resolved when accepted. */
  readonly retry?: Required<RetryStrategy>;
}

export interface ScheduleResult {
  /**
   * False when a message with this id and the same content already existed. After a retry this
   * can be false for a message the same call created: its first answer was lost.
   */
  readonly created: boolean;
  readonly message: Message;
  /**
   * Only for a message sent with `debounce`: true when it was merged into (trailing) or dropped in
   * favour of (leading) `message`, the scheduled message that survives; false when this call
   * created `message` (or re-sent its id).
   */
  readonly debounced?: boolean;
}

/** One entry of {@link HourglassClient.scheduleBatch}'s result, in input order. */
export type BatchItemResult =
  | { readonly ok: true; readonly created: boolean; readonly message: Message }
  | { readonly ok: false; readonly error: HourglassClientError };

/** The answer to a successful cancel. */
export interface CancelResult {
  readonly id: string;
  readonly state: 'cancelled';
}

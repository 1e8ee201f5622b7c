/**
 * Translation between the hourglass.v1 protobuf messages (as @grpc/proto-loader decodes them:
 * camelCase fields, int64 as numbers, unset fields absent) and the JSON-shaped bodies and views of
 * {@link MessageService}. Validation is not done here: a translated body goes through the same
 * `parseScheduleRequest` as an HTTP body, so both transports accept and refuse the same things.
 */
import type { ErrorCode, ErrorDetail } from '@hourglass/core';
import { DEFAULT_MAX_PAYLOAD_DEPTH, HourglassError, jsonTextDepthExceeds } from '@hourglass/core';
import type { AttemptView, MessageView, TargetView } from '@hourglass/engine';
import type { DebouncePb } from './debounce';
import { debounceBody } from './debounce';

/** `hourglass.v1.HttpTarget` as decoded (a `callback`, or the `http` of a `Target`). */
export interface HttpTargetPb {
  url?: string;
  method?: string;
  headers?: Record<string, string>;
  timeoutMs?: number;
  name?: string;
  envelope?: boolean;
  expectBody?: string;
}

/** `hourglass.v1.KafkaTarget` as decoded. */
export interface KafkaTargetPb {
  topic?: string;
  key?: string;
  headers?: Record<string, string>;
}

/** `hourglass.v1.Target` as decoded (oneofs: false: the set member is the one present). */
export interface TargetPb {
  kafka?: KafkaTargetPb | null;
  http?: HttpTargetPb | null;
}

/** `hourglass.v1.RetryStrategy`, decoded in requests and encoded in messages. */
export interface RetryStrategyPb {
  strategy?: string;
  initialDelayMs?: number;
  maxDelayMs?: number;
  maxAttempts?: number;
  jitter?: boolean;
}

/** `hourglass.v1.ScheduleRequest` as decoded. */
export interface ScheduleRequestPb {
  id?: string;
  topic?: string;
  key?: string;
  payloadJson?: string;
  payloadBytes?: Uint8Array;
  headers?: Record<string, string>;
  deliverAtMs?: number;
  deliverAt?: string;
  delayMs?: number;
  callback?: HttpTargetPb | null;
  targets?: TargetPb[];
  retry?: RetryStrategyPb | null;
  contentType?: string;
  /** Not in an UpdateRequest; in a batch it reaches the service, which refuses it there. */
  debounce?: DebouncePb | null;
}

/** `hourglass.v1.TargetStatus` as encoded. */
export interface TargetStatusPb {
  index: number;
  type: string;
  topic?: string;
  key?: string;
  url?: string;
  method?: string;
  name?: string;
  state: string;
  attempts: number;
  lastError?: string;
  lastStatus?: number;
  nextAttemptAt?: string;
  finishedAt?: string;
}

/** `hourglass.v1.Message` as encoded. */
export interface MessagePb {
  id: string;
  app: string;
  /** Absent for a message without a Kafka target (HTTP `null`). */
  topic?: string;
  key?: string;
  slot: number;
  deliverAt: string;
  state: string;
  createdAt: string;
  deliveredAt?: string;
  attempts: number;
  lastError?: string;
  targets: TargetStatusPb[];
  nextAttemptAt?: string;
  finishedAt?: string;
  retry?: RetryStrategyPb;
  version: number;
}

/** `hourglass.v1.Attempt` as encoded. */
export interface AttemptPb {
  target: number;
  type: string;
  attempt: number;
  at: string;
  durationMs: number;
  status?: number;
  error?: string;
  response?: string;
}

export interface ErrorPb {
  code: ErrorCode;
  message: string;
  details: ErrorDetail[];
}

export type BatchResultPb =
  { message: MessagePb; created: boolean } | { error: ErrorPb; created: false };

/**
 * The HTTP-shaped body for one request. Field names in error details are those of HTTP v1
 * (`payload`, `deliverAt`, `delayMs`), since the same validator reports them for both transports.
 * Throws `invalid_request` when `payload_json` is not JSON: HTTP has no equivalent failure for a
 * single message (its whole body would be malformed), so this is the one check made here; and
 * when it nests deeper than `maxPayloadDepth`, measured on the text before it is parsed (the
 * core refuses the same payloads with the same words, after parsing).
 */
export function toScheduleBody(
  request: ScheduleRequestPb,
  path = '',
  maxPayloadDepth = DEFAULT_MAX_PAYLOAD_DEPTH,
): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  if (request.id !== undefined) body.id = request.id;
  // `topic` has presence: absent is "no Kafka topic" (a callback or targets message, or none
  // at all, which the validator names), "" is a bad topic, as over HTTP.
  if (request.topic !== undefined) body.topic = request.topic;
  if (request.key !== undefined) body.key = request.key;
  if (request.headers !== undefined && Object.keys(request.headers).length > 0)
    body.headers = { ...request.headers };
  if (request.payloadJson !== undefined) {
    if (jsonTextDepthExceeds(request.payloadJson, maxPayloadDepth)) {
      const message = `must not nest more than ${maxPayloadDepth} levels deep`;
      throw new HourglassError('invalid_request', `invalid message: ${path}payload: ${message}`, [
        { path: `${path}payload`, message },
      ]);
    }
    try {
      body.payload = JSON.parse(request.payloadJson) as unknown;
    } catch (error) {
      throw new HourglassError(
        'invalid_request',
        `invalid message: ${path}payload: payload_json is not valid JSON`,
        [
          {
            path: `${path}payload`,
            message: `payload_json is not valid JSON (${(error as Error).message})`,
          },
        ],
      );
    }
  }
  if (request.payloadBytes !== undefined)
    body.payloadBase64 = Buffer.from(request.payloadBytes).toString('base64');
  if (request.deliverAtMs !== undefined) body.deliverAt = request.deliverAtMs;
  if (request.deliverAt !== undefined) body.deliverAt = request.deliverAt;
  if (request.delayMs !== undefined) body.delayMs = request.delayMs;
  if (request.callback) body.callback = httpTargetBody(request.callback);
  // An empty repeated field is not on the wire: no targets.
  if (request.targets !== undefined && request.targets.length > 0)
    body.targets = request.targets.map(targetBody);
  if (request.retry) body.retry = retryBody(request.retry);
  if (request.contentType !== undefined) body.contentType = request.contentType;
  if (request.debounce) body.debounce = debounceBody(request.debounce);
  return body;
}

/** Copies the fields that are present, so the validator sees absent ones as absent. */
function present(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(fields)) if (value !== undefined) out[name] = value;
  return out;
}

/** A map field is never absent on the wire, only empty; empty means "no headers", as omitted. */
function headersBody(
  headers: Record<string, string> | undefined,
): Record<string, string> | undefined {
  return headers !== undefined && Object.keys(headers).length > 0 ? { ...headers } : undefined;
}

function httpTargetBody(target: HttpTargetPb): Record<string, unknown> {
  return present({
    // A plain string: unset and "" are the same on the wire. Left out, so the validator says
    // "required" as it does for an HTTP callback without a url.
    url: target.url === '' ? undefined : target.url,
    method: target.method,
    headers: headersBody(target.headers),
    timeoutMs: target.timeoutMs,
    name: target.name,
    envelope: target.envelope,
    expectBody: target.expectBody,
  });
}

/**
 * One `targets` entry, with its `type` from the oneof member. A Target with neither member is
 * passed on as `{}`, for the validator to refuse (`targets/<i>/type`) as it refuses `{}` over HTTP.
 */
function targetBody(target: TargetPb): Record<string, unknown> {
  if (target.http) return { type: 'http', ...httpTargetBody(target.http) };
  if (target.kafka)
    return present({
      type: 'kafka',
      topic: target.kafka.topic ?? '',
      key: target.kafka.key,
      headers: headersBody(target.kafka.headers),
    });
  return {};
}

function retryBody(retry: RetryStrategyPb): Record<string, unknown> {
  return present({
    strategy: retry.strategy,
    initialDelayMs: retry.initialDelayMs,
    maxDelayMs: retry.maxDelayMs,
    maxAttempts: retry.maxAttempts,
    jitter: retry.jitter,
  });
}

export function toTargetStatusPb(view: TargetView): TargetStatusPb {
  const target: TargetStatusPb = {
    index: view.index,
    type: view.type,
    state: view.state,
    attempts: view.attempts,
  };
  if (view.type === 'kafka') {
    target.topic = view.topic;
    if (view.key !== null) target.key = view.key;
  } else {
    target.url = view.url;
    target.method = view.method;
    if (view.name !== undefined) target.name = view.name;
  }
  if (view.lastError !== undefined) target.lastError = view.lastError;
  if (view.lastStatus !== undefined) target.lastStatus = view.lastStatus;
  if (view.nextAttemptAt !== undefined) target.nextAttemptAt = view.nextAttemptAt;
  if (view.finishedAt !== undefined) target.finishedAt = view.finishedAt;
  return target;
}

export function toMessagePb(view: MessageView): MessagePb {
  const message: MessagePb = {
    id: view.id,
    app: view.app,
    slot: view.slot,
    deliverAt: view.deliverAt,
    state: view.state,
    createdAt: view.createdAt,
    attempts: view.attempts,
    targets: view.targets.map(toTargetStatusPb),
    version: view.version,
  };
  if (view.topic !== null) message.topic = view.topic;
  if (view.key !== null) message.key = view.key;
  if (view.deliveredAt !== undefined) message.deliveredAt = view.deliveredAt;
  if (view.lastError !== undefined) message.lastError = view.lastError;
  if (view.nextAttemptAt !== undefined) message.nextAttemptAt = view.nextAttemptAt;
  if (view.finishedAt !== undefined) message.finishedAt = view.finishedAt;
  if (view.retry !== undefined) message.retry = { ...view.retry };
  return message;
}

export function toAttemptPb(view: AttemptView): AttemptPb {
  const attempt: AttemptPb = {
    target: view.target,
    type: view.type,
    attempt: view.attempt,
    at: view.at,
    durationMs: view.durationMs,
  };
  if (view.status !== undefined) attempt.status = view.status;
  if (view.error !== undefined) attempt.error = view.error;
  if (view.response !== undefined) attempt.response = view.response;
  return attempt;
}

export function toErrorPb(error: HourglassError): ErrorPb {
  return { code: error.code, message: error.message, details: [...(error.details ?? [])] };
}

/**
 * JSON with every non-ASCII character escaped. gRPC metadata values (non `-bin` keys) must be
 * printable ASCII, and details quote user input such as header names.
 */
export function asciiJson(value: unknown): string {
  return JSON.stringify(value).replace(
    /[^\x20-\x7e]/g,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/**
 * Rewrites `messages/<j>/` to `messages/<positions[j]>/` in an item error, for batches where some
 * items were refused before reaching the service and the rest were sent as a shorter batch.
 */
export function renumberBatchError(
  error: HourglassError,
  positions: readonly number[],
): HourglassError {
  const renumber = (text: string, anchored: boolean): string =>
    text.replace(
      anchored ? /^messages\/(\d+)\// : /\bmessages\/(\d+)\//g,
      (match, index: string) => {
        const original = positions[Number(index)];
        return original === undefined ? match : `messages/${original}/`;
      },
    );
  return new HourglassError(
    error.code,
    renumber(error.message, false),
    error.details?.map((detail) => ({
      path: renumber(detail.path, true),
      message: detail.message,
    })),
    error.retryAfterSeconds,
  );
}

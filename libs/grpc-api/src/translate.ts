/**
 * Translation between the hourglass.v1 protobuf messages (as @grpc/proto-loader decodes them:
 * camelCase fields, int64 as numbers, unset fields absent) and the JSON-shaped bodies and views of
 * {@link MessageService}. Validation is not done here: a translated body goes through the same
 * `parseScheduleRequest` as an HTTP body, so both transports accept and refuse the same things.
 */
import type { ErrorCode, ErrorDetail } from '@hourglass/core';
import { DEFAULT_MAX_PAYLOAD_DEPTH, HourglassError, jsonTextDepthExceeds } from '@hourglass/core';
import type { MessageView } from '@hourglass/engine';

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
}

/** `hourglass.v1.Message` as encoded. */
export interface MessagePb {
  id: string;
  app: string;
  topic: string;
  key?: string;
  slot: number;
  deliverAt: string;
  state: string;
  createdAt: string;
  deliveredAt?: string;
  attempts: number;
  lastError?: string;
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
  // proto3 cannot tell an empty topic from a missing one; '' makes the validator name the rule.
  const body: Record<string, unknown> = { topic: request.topic ?? '' };
  if (request.id !== undefined) body.id = request.id;
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
  return body;
}

export function toMessagePb(view: MessageView): MessagePb {
  const message: MessagePb = {
    id: view.id,
    app: view.app,
    topic: view.topic,
    slot: view.slot,
    deliverAt: view.deliverAt,
    state: view.state,
    createdAt: view.createdAt,
    attempts: view.attempts,
  };
  if (view.key !== null) message.key = view.key;
  if (view.deliveredAt !== undefined) message.deliveredAt = view.deliveredAt;
  if (view.lastError !== undefined) message.lastError = view.lastError;
  return message;
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

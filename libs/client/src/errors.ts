/**
 * The one error type the SDK throws for a refused or failed call, and the error thrown for a Kafka
 * record that is not an Hourglass delivery.
 */

/**
 * Stable codes the server sends (libs/core ERROR_TABLE). Kept as a literal list because this
 * package is published without the server's packages; a unit test checks it against the table.
 */
export const SERVER_ERROR_CODES = [
  'invalid_request',
  'malformed_json',
  'delay_too_long',
  'batch_too_large',
  'unauthenticated',
  'topic_not_allowed',
  'callback_not_allowed',
  'forbidden',
  'not_found',
  'route_not_found',
  'method_not_allowed',
  'id_conflict',
  'already_delivered',
  'delivery_in_progress',
  'already_cancelled',
  'already_failed',
  'not_failed',
  'version_mismatch',
  'payload_too_large',
  'unsupported_media_type',
  'schedule_quota_exceeded',
  'rate_limited',
  'unavailable',
  'shutting_down',
  'internal',
] as const;

/** A code the server sends; a server newer than this SDK may send one not listed. */
export type ServerErrorCode = (typeof SERVER_ERROR_CODES)[number];

/**
 * Codes the SDK assigns itself when no Hourglass answer arrived:
 * - `network_error`: the connection failed or dropped before an answer (retried);
 * - `timeout`: no answer within `timeoutMs` (retried; the request may have been applied, which
 *   is safe because schedules are idempotent by id);
 * - `unexpected_response`: an answer that is not from Hourglass (e.g. a proxy's HTML page);
 *   retried only for HTTP 502/504, the statuses proxies use when the node is unreachable.
 */
export type ClientErrorCode = 'network_error' | 'timeout' | 'unexpected_response';

/** Every code a {@link HourglassClientError} can carry. */
export type ErrorCode = ServerErrorCode | ClientErrorCode;

/** Server codes worth sending again unchanged (ERROR_TABLE's `retriable`). */
export const RETRIABLE_SERVER_CODES: ReadonlySet<string> = new Set<ServerErrorCode>([
  'rate_limited',
  'unavailable',
  'shutting_down',
]);

/** One problem in a request, located by a path such as `messages/3/topic`. */
export interface ErrorDetail {
  readonly path: string;
  readonly message: string;
}

/** The fields of a {@link HourglassClientError}, for constructing one (e.g. in tests of your code). */
export interface HourglassClientErrorInit {
  code: ErrorCode;
  message: string;
  transport: 'http' | 'grpc';
  retriable: boolean;
  status?: number;
  grpcCode?: number;
  details?: readonly ErrorDetail[];
  retryAfterMs?: number;
  cause?: unknown;
}

/**
 * Thrown by every {@link HourglassClient} method when the call did not succeed (after retries, for
 * retriable failures). Branch on {@link HourglassClientError.code}: it is the same on both
 * transports, while `status` and `grpcCode` are transport-specific.
 */
export class HourglassClientError extends Error {
  override readonly name = 'HourglassClientError';
  /** Stable code: one of {@link ServerErrorCode} or {@link ClientErrorCode}. */
  readonly code: ErrorCode;
  /** Which transport the call used. */
  readonly transport: 'http' | 'grpc';
  /** The HTTP status, for calls over HTTP that got an answer. */
  readonly status: number | undefined;
  /** The gRPC status code, for calls over gRPC. */
  readonly grpcCode: number | undefined;
  /** Whether sending the same request again may succeed (the client already retried these). */
  readonly retriable: boolean;
  /** Each offending field, for validation errors; empty otherwise. */
  readonly details: readonly ErrorDetail[];
  /** For `rate_limited`: how long the server asked to wait. */
  readonly retryAfterMs: number | undefined;

  constructor(init: HourglassClientErrorInit) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.code = init.code;
    this.transport = init.transport;
    this.status = init.status;
    this.grpcCode = init.grpcCode;
    this.retriable = init.retriable;
    this.details = init.details ?? [];
    this.retryAfterMs = init.retryAfterMs;
  }
}

/** Whether `code` is one this SDK knows the server to send. */
export function isServerErrorCode(code: string): code is ServerErrorCode {
  return (SERVER_ERROR_CODES as readonly string[]).includes(code);
}

/** Thrown by `decodeDelivery` for a Kafka record without the `hourglass-*` headers. */
export class InvalidDeliveryError extends Error {
  override readonly name = 'InvalidDeliveryError';
}

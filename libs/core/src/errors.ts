/**
 * Every failure Hourglass reports to a client has a stable code from this table. Both exporters
 * (HTTP and gRPC) map codes to their status through {@link ERROR_TABLE} and nothing else, so a code
 * means the same thing on every transport.
 *
 * gRPC status numbers are written out (see grpc/status.h) because the core imports no I/O library.
 */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;
export type GrpcStatusCode = (typeof GrpcStatus)[keyof typeof GrpcStatus];

export interface ErrorSpec {
  /** HTTP status of the response carrying this error. */
  readonly http: number;
  /** gRPC status of the call carrying this error. */
  readonly grpc: GrpcStatusCode;
  /** Whether the same request may succeed if sent again unchanged (clients retry these). */
  readonly retriable: boolean;
}

export const ERROR_TABLE = {
  /** The request body or parameters failed validation; `details` lists each problem. */
  invalid_request: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, retriable: false },
  /** The body is not parseable JSON. */
  malformed_json: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, retriable: false },
  /** The due time lies beyond the maximum delay allowed. */
  delay_too_long: { http: 400, grpc: GrpcStatus.OUT_OF_RANGE, retriable: false },
  /** The batch holds more messages than allowed, or none. */
  batch_too_large: { http: 400, grpc: GrpcStatus.INVALID_ARGUMENT, retriable: false },
  /** No token, or a token no app has. */
  unauthenticated: { http: 401, grpc: GrpcStatus.UNAUTHENTICATED, retriable: false },
  /** The app may not publish to the topic. */
  topic_not_allowed: { http: 403, grpc: GrpcStatus.PERMISSION_DENIED, retriable: false },
  /** The app may not call back to that host (its admin-set callback host allowlist). */
  callback_not_allowed: { http: 403, grpc: GrpcStatus.PERMISSION_DENIED, retriable: false },
  /** The caller is authenticated but the route needs another role (admin routes). */
  forbidden: { http: 403, grpc: GrpcStatus.PERMISSION_DENIED, retriable: false },
  /** No message with that id exists for the calling app. */
  not_found: { http: 404, grpc: GrpcStatus.NOT_FOUND, retriable: false },
  /** The route or method does not exist. */
  route_not_found: { http: 404, grpc: GrpcStatus.UNIMPLEMENTED, retriable: false },
  /** The path exists but not with this method; HTTP answers with an `Allow` header. */
  method_not_allowed: { http: 405, grpc: GrpcStatus.UNIMPLEMENTED, retriable: false },
  /** The id exists with different content. */
  id_conflict: { http: 409, grpc: GrpcStatus.ALREADY_EXISTS, retriable: false },
  /** Cancel refused: the message was delivered or is being delivered right now. */
  already_delivered: { http: 409, grpc: GrpcStatus.FAILED_PRECONDITION, retriable: false },
  /**
   * Cancel refused for now: the message is being delivered at this moment. Its delivery may still
   * fail and put it back (then a retry of the cancel can win), so ask again to learn the outcome.
   */
  delivery_in_progress: { http: 409, grpc: GrpcStatus.FAILED_PRECONDITION, retriable: false },
  /** Cancel refused: the message was already cancelled. */
  already_cancelled: { http: 409, grpc: GrpcStatus.FAILED_PRECONDITION, retriable: false },
  /** Cancel refused: delivery gave up and the message is failed. */
  already_failed: { http: 409, grpc: GrpcStatus.FAILED_PRECONDITION, retriable: false },
  /** A conditional change (If-Match) named a version the message is no longer at. */
  version_mismatch: { http: 412, grpc: GrpcStatus.ABORTED, retriable: false },
  /** Retry refused: the message has no failed target to re-arm (it is not `failed`). */
  not_failed: { http: 409, grpc: GrpcStatus.FAILED_PRECONDITION, retriable: false },
  /** The payload is larger than allowed. */
  payload_too_large: { http: 413, grpc: GrpcStatus.RESOURCE_EXHAUSTED, retriable: false },
  /** The body is not JSON. */
  unsupported_media_type: { http: 415, grpc: GrpcStatus.INVALID_ARGUMENT, retriable: false },
  /**
   * The app has as many recurring schedules as allowed (`limits.maxSchedulesPerApp`); delete one
   * first. Not retriable: waiting does not free a schedule.
   */
  schedule_quota_exceeded: { http: 429, grpc: GrpcStatus.RESOURCE_EXHAUSTED, retriable: false },
  /** A quota was exceeded; retry after the delay given. */
  rate_limited: { http: 429, grpc: GrpcStatus.RESOURCE_EXHAUSTED, retriable: true },
  /** A dependency (Postgres, Kafka, etcd) is unavailable; nothing was accepted. */
  unavailable: { http: 503, grpc: GrpcStatus.UNAVAILABLE, retriable: true },
  /** The node is shutting down and accepts no more requests. */
  shutting_down: { http: 503, grpc: GrpcStatus.UNAVAILABLE, retriable: true },
  /** A bug. Logged with a correlation id; never used for bad input. */
  internal: { http: 500, grpc: GrpcStatus.INTERNAL, retriable: false },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_TABLE;

/** One problem found in a request, located by a JSON-pointer-like path such as `messages/3/topic`. */
export interface ErrorDetail {
  readonly path: string;
  readonly message: string;
}

/** The one error type every layer throws for client-visible failures. */
export class HourglassError extends Error {
  override readonly name = 'HourglassError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: readonly ErrorDetail[],
    /** For `rate_limited`: seconds until a retry can succeed. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }

  get spec(): ErrorSpec {
    return ERROR_TABLE[this.code];
  }

  get retriable(): boolean {
    return ERROR_TABLE[this.code].retriable;
  }

  /** The body every exporter sends: `{"error": {"code", "message", "details"?}}`. */
  toBody(): ErrorBody {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.details && this.details.length > 0 ? { details: this.details } : {}),
      },
    };
  }
}

export interface ErrorBody {
  error: { code: ErrorCode; message: string; details?: readonly ErrorDetail[] };
}

export function isHourglassError(value: unknown): value is HourglassError {
  return value instanceof HourglassError;
}

/**
 * A dependency (Postgres, Kafka, etcd, Redis) failed in a way that says nothing about the request.
 * Adapters wrap driver errors in this so the exporters answer 503 instead of 500.
 */
export class DependencyUnavailableError extends HourglassError {
  constructor(
    readonly dependency: 'postgres' | 'kafka' | 'etcd' | 'redis',
    cause: unknown,
  ) {
    super('unavailable', `${dependency} is unavailable; nothing was changed, retry later`);
    this.cause = cause;
  }
}

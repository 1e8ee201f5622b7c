/**
 * What the schedule routes answer, shared by the Express routes (app.ts) and the direct handler
 * (fast-schedule.ts), so the two cannot drift: the batch reply and the mapping of any error to a
 * status and the one error body shape.
 */
import { randomUUID } from 'node:crypto';
import type { ErrorCode, Logger } from '@hourglass/core';
import { HourglassError, isHourglassError } from '@hourglass/core';
import type { ScheduleResult } from '@hourglass/engine';
import { bodyParserError } from './body';

export interface ErrorReply {
  status: number;
  body: unknown;
  /** Whole seconds, for a Retry-After header. */
  retryAfterSeconds?: number;
}

export function scheduleBatchReply(results: readonly ScheduleResult[]): unknown {
  return {
    results: results.map((result) =>
      result.ok
        ? { status: result.created ? 201 : 200, message: result.message }
        : { status: result.error.spec.http, ...result.error.toBody() },
    ),
  };
}

export function hourglassErrorReply(error: HourglassError): ErrorReply {
  return {
    status: error.spec.http,
    body: error.toBody(),
    ...(error.retryAfterSeconds !== undefined
      ? { retryAfterSeconds: Math.ceil(error.retryAfterSeconds) }
      : {}),
  };
}

/**
 * Any error thrown while serving a request: ours and body-parser's by their codes, other client
 * errors raised by Express as 4xx, and anything else as a 500 with an incident id in the log.
 */
export function errorReply(
  error: unknown,
  logger: Logger,
  method: string,
  path: string,
): ErrorReply {
  const known = isHourglassError(error) ? error : bodyParserError(error);
  if (known) {
    if (known.cause !== undefined) {
      // A dependency refused (503): the reason is for the operator, not the client.
      const reason = known.cause instanceof Error ? known.cause.message : 'no detail';
      logger.debug({ code: known.code, reason, method, path }, 'refused');
    }
    return hourglassErrorReply(known);
  }
  const status = (error as { status?: unknown }).status;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    // Any other client error raised by express itself (e.g. a malformed URL escape).
    const code: ErrorCode = status === 404 ? 'route_not_found' : 'invalid_request';
    return hourglassErrorReply(new HourglassError(code, (error as Error).message));
  }
  const incident = randomUUID();
  logger.error({ err: error, incident, method, path }, 'unhandled error');
  return hourglassErrorReply(
    new HourglassError('internal', `internal error; incident ${incident}`),
  );
}

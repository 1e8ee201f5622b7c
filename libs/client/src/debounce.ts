/**
 * The transport-neutral form of {@link ScheduleMessage.debounce}. The server validates it
 * (ranges, the mode's rules, a trailing debounce with a due time); the client refuses only what
 * one of the transports could not carry as sent, so both refuse it alike: gRPC has no place for
 * an unknown field, a key that is not a string, or a window that is not an integer (int64 would
 * truncate it). The detail paths are the server's.
 */
import { HourglassClientError } from './errors';
import type { Debounce } from './types';

/** The HTTP `debounce` object, also the gRPC `Debounce` (same camelCase names). */
export interface WireDebounce {
  readonly key: string;
  readonly windowMs: number;
  readonly maxWaitMs?: number;
  readonly mode?: string;
}

const FIELDS = new Set(['key', 'windowMs', 'maxWaitMs', 'mode']);

export function prepareDebounce(
  debounce: Debounce,
  transport: 'http' | 'grpc',
  path: string,
): WireDebounce {
  // A JS caller may pass anything; checked through `given` so `debounce` keeps its type.
  const given: unknown = debounce;
  const problems: Array<{ path: string; message: string }> = [];
  if (typeof given !== 'object' || given === null || Array.isArray(given)) {
    problems.push({
      path: `${path}debounce`,
      message: 'expected {key, windowMs, maxWaitMs?, mode?}',
    });
  } else {
    const fields = given as Record<string, unknown>;
    for (const field of Object.keys(fields))
      if (!FIELDS.has(field) && fields[field] !== undefined)
        problems.push({
          path: `${path}debounce/${field}`,
          message: 'unknown field; allowed: key, windowMs, maxWaitMs, mode',
        });
    if (typeof fields.key !== 'string')
      problems.push({
        path: `${path}debounce/key`,
        message: 'required string of 1-256 characters',
      });
    if (!Number.isSafeInteger(fields.windowMs))
      problems.push({ path: `${path}debounce/windowMs`, message: 'required integer' });
    if (fields.maxWaitMs !== undefined && !Number.isSafeInteger(fields.maxWaitMs))
      problems.push({ path: `${path}debounce/maxWaitMs`, message: 'an integer' });
    if (fields.mode !== undefined && typeof fields.mode !== 'string')
      problems.push({ path: `${path}debounce/mode`, message: 'must be "trailing" or "leading"' });
  }
  if (problems.length > 0)
    throw new HourglassClientError({
      code: 'invalid_request',
      message: `invalid message: ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`,
      transport,
      retriable: false,
      details: problems,
    });
  const wire: { -readonly [K in keyof WireDebounce]: WireDebounce[K] } = {
    key: debounce.key,
    windowMs: debounce.windowMs,
  };
  if (debounce.maxWaitMs !== undefined) wire.maxWaitMs = debounce.maxWaitMs;
  if (debounce.mode !== undefined) wire.mode = debounce.mode;
  return wire;
}

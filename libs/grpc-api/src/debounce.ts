/**
 * Debounce over gRPC (`ScheduleRequest.debounce`, `ScheduleResponse.debounced`): the request's
 * `Debounce` becomes the HTTP body's `debounce` object, field for field, and the service's answer
 * becomes a ScheduleResponse's `debounced`. Validation stays in the service (`parseDebounce`), so a bad debounce
 * is refused with the same code and detail paths (`debounce/windowMs`, …) on both transports.
 */
import type { MessageView } from '@hourglass/engine';

/** `hourglass.v1.Debounce` as decoded (unset fields absent). */
export interface DebouncePb {
  key?: string;
  windowMs?: number;
  maxWaitMs?: number;
  mode?: string;
}

/**
 * The HTTP `debounce` object. `key` and `window_ms` are plain proto3 scalars, so "" and 0 cannot be
 * told from unset: they are left out, and the validator says "required" as it does for an HTTP
 * body without them (the same words it has for "" and 0). `max_wait_ms` and `mode` have presence:
 * absent takes the default, a value sent is checked as sent.
 */
export function debounceBody(debounce: DebouncePb): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  if (debounce.key !== undefined && debounce.key !== '') body.key = debounce.key;
  if (debounce.windowMs !== undefined && debounce.windowMs !== 0) body.windowMs = debounce.windowMs;
  if (debounce.maxWaitMs !== undefined) body.maxWaitMs = debounce.maxWaitMs;
  if (debounce.mode !== undefined) body.mode = debounce.mode;
  return body;
}

/**
 * `ScheduleResponse.debounced` for what `MessageService.schedule` answered: set only for a request
 * with `debounce`, as HTTP has `debounced` in its answer only then.
 */
export function debouncedField(message: MessageView): { debounced?: boolean } {
  return message.debounced === undefined ? {} : { debounced: message.debounced };
}

/**
 * Debounce (issue 14, after task-scheduler's debounce by `key` and `window`): messages of one app
 * with the same debounce key collapse into one while it is scheduled. Pure: the request's
 * `debounce` field and the rules; the store makes them race-free (migration 006).
 *
 * - `trailing` (default): a new message replaces the content of the scheduled one and moves its
 *   due time to now + `windowMs`, capped at the first one's time + `maxWaitMs`.
 * - `leading`: the first message of a window wins; the rest of the window's messages are
 *   acknowledged without creating anything.
 * Once the surviving message is being delivered (or has been), the next one starts a new window.
 */
import { HourglassError } from './errors';
import type { ErrorDetail } from './errors';
import { textProblem } from './input';
import type { StoredMessage } from './message';

export type DebounceMode = 'trailing' | 'leading';

export interface DebounceSpec {
  readonly key: string;
  readonly windowMs: number;
  /** Trailing: the latest due time is the first message's time + this. */
  readonly maxWaitMs: number;
  readonly mode: DebounceMode;
}

/**
 * What a debounced insert did: `created` a new message (a new window), `merged` this one into
 * the scheduled message holding the key (trailing), or `kept` that message and created nothing
 * (leading). `message` is the surviving message as it is now.
 */
export type DebounceOutcome =
  | {
      readonly kind: 'created' | 'merged';
      readonly message: StoredMessage;
      readonly seq: number;
      /** This node holds the slot's current epoch: it wheels the message itself. */
      readonly wheelable: boolean;
    }
  | { readonly kind: 'kept'; readonly message: StoredMessage }
  /** The id was taken already: the caller schedules it the ordinary way (re-send or conflict). */
  | { readonly kind: 'id_exists' };

const FIELDS = new Set(['key', 'windowMs', 'maxWaitMs', 'mode']);

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Splits `debounce` off a schedule request. A trailing debounce sets the due time itself
 * (now + windowMs), so the body may not have one; a leading one keeps the body's.
 * Returns the spec and the body to validate as a plain message.
 */
export function parseDebounce(
  body: Record<string, unknown>,
  maxDelayMs: number,
): { debounce: DebounceSpec; message: Record<string, unknown> } {
  const { debounce: value, ...message } = body;
  const problems: ErrorDetail[] = [];
  if (!isPlainObject(value)) {
    throw new HourglassError('invalid_request', 'invalid message: debounce must be an object', [
      { path: 'debounce', message: 'expected {key, windowMs, maxWaitMs?, mode?}' },
    ]);
  }
  for (const field of Object.keys(value))
    if (!FIELDS.has(field))
      problems.push({
        path: `debounce/${field}`,
        message: 'unknown field; allowed: key, windowMs, maxWaitMs, mode',
      });
  const key = value.key;
  if (typeof key !== 'string' || key.length === 0 || key.length > 256 || textProblem(key) !== null)
    problems.push({
      path: 'debounce/key',
      message: 'required string of 1-256 characters, no NUL or lone surrogate',
    });
  const windowMs = value.windowMs;
  const isDuration = (n: unknown): n is number =>
    typeof n === 'number' && Number.isSafeInteger(n) && n >= 1 && n <= maxDelayMs;
  if (!isDuration(windowMs))
    problems.push({
      path: 'debounce/windowMs',
      message: `required integer from 1 to ${maxDelayMs} (limits.maxDelayDays)`,
    });
  const maxWaitMs = value.maxWaitMs ?? maxDelayMs;
  if (!isDuration(maxWaitMs) || (isDuration(windowMs) && maxWaitMs < windowMs))
    problems.push({
      path: 'debounce/maxWaitMs',
      message: `an integer from windowMs to ${maxDelayMs}`,
    });
  const mode = value.mode ?? 'trailing';
  if (mode !== 'trailing' && mode !== 'leading')
    problems.push({ path: 'debounce/mode', message: 'must be "trailing" or "leading"' });
  if (mode === 'trailing' && (message.deliverAt !== undefined || message.delayMs !== undefined))
    problems.push({
      path: message.deliverAt !== undefined ? 'deliverAt' : 'delayMs',
      message: 'not with a trailing debounce: it is due windowMs after the latest message',
    });
  if (problems.length > 0)
    throw new HourglassError(
      'invalid_request',
      `invalid message: ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`,
      problems,
    );
  const spec: DebounceSpec = {
    key: key as string,
    windowMs: windowMs as number,
    maxWaitMs: maxWaitMs as number,
    mode: mode as DebounceMode,
  };
  return {
    debounce: spec,
    message: mode === 'trailing' ? { ...message, delayMs: spec.windowMs } : message,
  };
}

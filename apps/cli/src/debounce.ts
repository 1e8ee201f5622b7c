/**
 * `hourglass messages schedule … --debounce-key K --debounce-window MS [--debounce-max-wait MS]
 * [--debounce-mode trailing|leading]`: the body's `debounce` (README "Debounce"). Only for
 * `messages schedule`: a scheduled message cannot be given a debounce later, so `messages update`
 * refuses these flags. Pure; the server validates ranges and the mode's rules (a trailing
 * debounce takes no --delay-ms / --deliver-at).
 */
import type { Values } from './flags';
import { number } from './flags';
import { UsageError } from './usage';

export const DEBOUNCE_FLAGS = [
  'debounce-key',
  'debounce-window',
  'debounce-max-wait',
  'debounce-mode',
] as const;

/** The `debounce` object from the flags; undefined when none is given. */
export function debounceField(values: Values): Record<string, unknown> | undefined {
  if (!DEBOUNCE_FLAGS.some((flag) => values[flag] !== undefined)) return undefined;
  const key = values['debounce-key'];
  const windowMs = number(values, 'debounce-window', true);
  if (key === undefined || windowMs === undefined)
    throw new UsageError(
      'messages schedule: debounce needs both --debounce-key K and --debounce-window MS',
    );
  const debounce: Record<string, unknown> = { key, windowMs };
  const maxWaitMs = number(values, 'debounce-max-wait', true);
  if (maxWaitMs !== undefined) debounce.maxWaitMs = maxWaitMs;
  if (values['debounce-mode'] !== undefined) debounce.mode = values['debounce-mode'];
  return debounce;
}

/** The first line of a schedule's answer, when the server merged or dropped this message. */
export function debouncedLine(json: Record<string, unknown>): string {
  return json.debounced === true ? `debounced into ${String(json.id)}\n` : '';
}

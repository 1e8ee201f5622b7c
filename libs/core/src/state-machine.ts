/**
 * A message's life. The store applies these transitions atomically (a conditional update on the
 * current state), so two parties racing on one message agree on a single winner: a cancel that
 * arrives while a delivery is in flight is refused rather than half-applied.
 *
 * ```mermaid
 * stateDiagram-v2
 *     [*] --> scheduled
 *     scheduled --> delivering: claim (due, fired by the slot owner)
 *     scheduled --> cancelled: cancel
 *     delivering --> delivered: ack (Kafka acknowledged)
 *     delivering --> scheduled: nack (produce failed, retry later)
 *     delivering --> scheduled: reset (new slot owner takes over a dead owner's claim)
 *     delivering --> failed: give_up (retries exhausted)
 *     delivered --> [*]
 *     cancelled --> [*]
 *     failed --> [*]
 * ```
 *
 * `delivering` is internal: clients see it as `scheduled`, because the message has not been
 * delivered yet and may still go back to `scheduled` (nack, reset).
 */

export type MessageState = 'scheduled' | 'delivering' | 'delivered' | 'cancelled' | 'failed';

/** The state a client sees; see {@link publicState}. */
export type PublicMessageState = 'scheduled' | 'delivered' | 'cancelled' | 'failed';

export type MessageEvent = 'claim' | 'ack' | 'nack' | 'give_up' | 'cancel' | 'reset';

export const MESSAGE_STATES: readonly MessageState[] = Object.freeze([
  'scheduled',
  'delivering',
  'delivered',
  'cancelled',
  'failed',
] as const);

export const MESSAGE_EVENTS: readonly MessageEvent[] = Object.freeze([
  'claim',
  'ack',
  'nack',
  'give_up',
  'cancel',
  'reset',
] as const);

/** The whole table: a pair absent here is refused. Terminal states have no way out. */
const TRANSITIONS: Readonly<
  Record<MessageState, Readonly<Partial<Record<MessageEvent, MessageState>>>>
> = {
  scheduled: { claim: 'delivering', cancel: 'cancelled' },
  delivering: { ack: 'delivered', nack: 'scheduled', give_up: 'failed', reset: 'scheduled' },
  delivered: {},
  cancelled: {},
  failed: {},
};

/** The state after `event`, or undefined if the event is not allowed in `state`. */
export function transition(state: MessageState, event: MessageEvent): MessageState | undefined {
  return TRANSITIONS[state][event];
}

export function publicState(state: MessageState): PublicMessageState {
  switch (state) {
    case 'scheduled':
    case 'delivering':
      return 'scheduled';
    case 'delivered':
    case 'cancelled':
    case 'failed':
      return state;
  }
}

/** Whether no event can leave `state`. */
export function isTerminal(state: MessageState): boolean {
  switch (state) {
    case 'scheduled':
    case 'delivering':
      return false;
    case 'delivered':
    case 'cancelled':
    case 'failed':
      return true;
  }
}

import assert from 'node:assert/strict';
import type { MessageEvent, MessageState } from '../../src/state-machine';
import {
  MESSAGE_EVENTS,
  MESSAGE_STATES,
  isTerminal,
  publicState,
  transition,
} from '../../src/state-machine';

/** The specification, written out independently of the implementation's table. */
const ALLOWED: ReadonlyArray<[MessageState, MessageEvent, MessageState]> = [
  ['scheduled', 'claim', 'delivering'],
  ['scheduled', 'cancel', 'cancelled'],
  ['delivering', 'ack', 'delivered'],
  ['delivering', 'nack', 'scheduled'],
  ['delivering', 'give_up', 'failed'],
  ['delivering', 'reset', 'scheduled'],
];

describe('message state machine', () => {
  it('lists every state and event once', () => {
    assert.deepEqual([...MESSAGE_STATES].sort(), [
      'cancelled',
      'delivered',
      'delivering',
      'failed',
      'scheduled',
    ]);
    assert.deepEqual([...MESSAGE_EVENTS].sort(), [
      'ack',
      'cancel',
      'claim',
      'give_up',
      'nack',
      'reset',
    ]);
    assert.ok(Object.isFrozen(MESSAGE_STATES));
  });

  it('allows exactly the specified transitions (all 30 state x event pairs)', () => {
    let checked = 0;
    for (const state of MESSAGE_STATES) {
      for (const event of MESSAGE_EVENTS) {
        const spec = ALLOWED.find(([s, e]) => s === state && e === event);
        assert.equal(transition(state, event), spec?.[2], `${state} --${event}-->`);
        checked++;
      }
    }
    assert.equal(checked, 30);
  });

  it('refuses a cancel while delivering: the cancel loses the race', () => {
    assert.equal(transition('delivering', 'cancel'), undefined);
  });

  it('has no way out of a terminal state, and one out of every other state', () => {
    for (const state of MESSAGE_STATES) {
      const exits = MESSAGE_EVENTS.filter((e) => transition(state, e) !== undefined);
      assert.equal(isTerminal(state), exits.length === 0, state);
    }
    assert.deepEqual(MESSAGE_STATES.filter(isTerminal), ['delivered', 'cancelled', 'failed']);
  });

  it('shows delivering as scheduled and every other state as itself', () => {
    assert.equal(publicState('delivering'), 'scheduled');
    for (const state of MESSAGE_STATES.filter((s) => s !== 'delivering')) {
      assert.equal(publicState(state), state);
    }
  });

  it('reaches every state from scheduled', () => {
    const seen = new Set<MessageState>(['scheduled']);
    const queue: MessageState[] = ['scheduled'];
    for (let state = queue.shift(); state !== undefined; state = queue.shift()) {
      for (const event of MESSAGE_EVENTS) {
        const next = transition(state, event);
        if (next !== undefined && !seen.has(next)) {
          seen.add(next);
          queue.push(next);
        }
      }
    }
    assert.equal(seen.size, MESSAGE_STATES.length);
  });
});

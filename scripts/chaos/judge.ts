/**
 * What a message's arrivals are judged against: the due time of the version that arrived, and
 * which versions may arrive at all. A plain message has one version and one due time (its
 * acknowledged `deliverAt`). A rescheduled one (./reschedule.ts) has two, and its PATCH's outcome
 * decides which of them may be delivered:
 *
 *   moved     only version 2, due at the `deliverAt` of the 200 answer
 *   refused   only version 1, due at the acknowledged `deliverAt` of its POST
 *   unknown   either, each at its own time, but not both
 *
 * Pure: no I/O, so that test/judge.test.ts can drive it.
 */
import type { SentMessage, Via } from './load';

/** The rows of a window: the ways of delivering, with Kafka messages split by what was done to them. */
export type RowKind = 'kafka' | 'moved' | 'recurring' | 'http';

/** What the judging needs of one arrival (a record at the consumer, a callback request). */
export interface VersionedArrival {
  receivedAt: number;
  appendedAt?: number;
  /** The payload's version: 2 for the moved version of a rescheduled message; 1 otherwise. */
  version?: number;
}

export function kindOf(message: SentMessage): RowKind {
  if (message.occurrenceOf !== undefined) return 'recurring';
  if (message.move) return 'moved';
  return message.via;
}

export function viaOf(kind: RowKind): Via {
  return kind === 'http' ? 'http' : 'kafka';
}

export interface Expectation {
  /** The due time the message is filed under (its window), epoch ms. */
  dueMs: number;
  /** When the client last got an acknowledgement (its POST, or the PATCH that moved it). */
  ackedAt: number;
  /** The due time an arrival of this version must not precede; NaN for a version never sent. */
  dueOf(arrival: VersionedArrival): number;
  /** Whether these deliveries include a version that must never be delivered (or both). */
  wrongVersion(delivered: readonly VersionedArrival[]): boolean;
}

const versionOf = (arrival: VersionedArrival): number => arrival.version ?? 1;

/**
 * The expectation of an acknowledged message (`dueMs` and `ackedAt` set); `delivered` decides,
 * for a PATCH of unknown outcome, which of its due times files it.
 */
export function expectationOf(
  message: SentMessage & { dueMs: number; ackedAt: number },
  delivered: readonly VersionedArrival[],
): Expectation {
  const posted = message.dueMs;
  const move = message.move;
  if (!move) {
    return {
      dueMs: posted,
      ackedAt: message.ackedAt,
      dueOf: () => posted,
      wrongVersion: () => false,
    };
  }
  const movedDue = move.dueMs ?? move.requestedMs ?? NaN;
  const dueOf = (arrival: VersionedArrival): number =>
    versionOf(arrival) === 2 ? movedDue : posted;
  const versions = new Set(delivered.map(versionOf));
  switch (move.outcome) {
    case 'moved':
      return {
        dueMs: movedDue,
        ackedAt: move.ackedAt ?? message.ackedAt,
        dueOf,
        wrongVersion: (got) => got.some((a) => versionOf(a) !== 2),
      };
    case 'refused':
    case undefined:
      return {
        dueMs: posted,
        ackedAt: message.ackedAt,
        dueOf,
        wrongVersion: (got) => got.some((a) => versionOf(a) !== 1),
      };
    case 'unknown':
      return {
        dueMs: versions.has(2) && !versions.has(1) ? movedDue : posted,
        ackedAt: message.ackedAt,
        dueOf,
        wrongVersion: (got) => new Set(got.map(versionOf)).size > 1,
      };
  }
}

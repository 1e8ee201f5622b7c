/**
 * The ways a callback fails before (or instead of) an HTTP exchange. They never leave the caller:
 * {@link UndiciHttpCaller.call} turns each into a failed result whose `error` is the message, so
 * messages are written for the app's owner to read and act on.
 */

export type CallFailureCode =
  /** Thrown when the URL is not an absolute http(s) URL. */
  | 'INVALID_URL'
  /** Thrown when the destination is, or resolves only to, addresses the policy refuses. */
  | 'ADDRESS_REFUSED'
  /** Thrown when a host or app already has the most queued callbacks allowed. */
  | 'QUEUE_FULL'
  /** Thrown when a queued callback waited its whole timeout for a free slot. */
  | 'QUEUE_TIMEOUT'
  /** Thrown for calls queued or under way when the caller stops. */
  | 'STOPPED'
  /** The abort reason of a call whose timeout ran out. */
  | 'TIMED_OUT';

export class CallFailure extends Error {
  override readonly name = 'CallFailure';

  constructor(
    readonly code: CallFailureCode,
    message: string,
  ) {
    super(message);
  }
}

export function isCallFailure(error: unknown): error is CallFailure {
  return error instanceof CallFailure;
}

import type { Attempt, BatchItemResult, CancelResult, Message, ScheduleResult } from './types';
import type { WirePatch } from './patch';
import type { WireMessage } from './wire';

/**
 * One way of reaching a node. A transport makes exactly one attempt per call and throws only
 * {@link HourglassClientError}s; retrying is the client's job.
 */
export interface Transport {
  readonly name: 'http' | 'grpc';
  schedule(message: WireMessage, timeoutMs: number): Promise<ScheduleResult>;
  scheduleBatch(messages: readonly WireMessage[], timeoutMs: number): Promise<BatchItemResult[]>;
  get(id: string, timeoutMs: number): Promise<Message>;
  cancel(id: string, timeoutMs: number): Promise<CancelResult>;
  attempts(id: string, timeoutMs: number): Promise<Attempt[]>;
  retry(id: string, timeoutMs: number): Promise<Message>;
  /** `ifVersion` undefined: unconditional. */
  update(
    id: string,
    patch: WirePatch,
    ifVersion: number | undefined,
    timeoutMs: number,
  ): Promise<Message>;
  close(): void;
}

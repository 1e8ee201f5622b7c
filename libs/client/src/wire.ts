/**
 * The transport-neutral form of a request, prepared once per call before the first attempt so
 * every retry sends exactly the same bytes (same id, same payload text, same due time as sent),
 * which is what the server compares to recognise a re-send.
 */
import { HourglassClientError } from './errors';
import type { Message, MessageState, ScheduleMessage } from './types';
import { uuidv7 } from './uuid';

export type WirePayload = { readonly json: string } | { readonly bytes: Buffer };
export type WireDue =
  { readonly deliverAtMs: number } | { readonly deliverAt: string } | { readonly delayMs: number };

export interface WireMessage {
  readonly id: string;
  readonly topic: string;
  readonly key?: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** Absent when the caller gave none; the server then refuses the message. */
  readonly payload?: WirePayload;
  readonly due?: WireDue;
}

/** Shared response shape of both transports (HTTP JSON, and gRPC decoded with camelCase names). */
export interface RawMessage {
  id: string;
  app: string;
  topic: string;
  key?: string | null;
  slot: number;
  deliverAt: string;
  state: string;
  createdAt: string;
  deliveredAt?: string;
  attempts: number;
  lastError?: string;
}

/**
 * Checks only what one of the transports could not express (both `payload` and `payloadBytes`,
 * both `deliverAt` and `delayMs`), so both refuse it with the same code; the server validates the
 * rest. `path` prefixes detail paths in batches.
 */
export function prepareMessage(
  message: ScheduleMessage,
  transport: 'http' | 'grpc',
  path = '',
): WireMessage {
  const problems: Array<{ path: string; message: string }> = [];
  let payload: WirePayload | undefined;
  if (message.payload !== undefined && message.payloadBytes !== undefined) {
    problems.push({
      path: `${path}payload`,
      message: 'give either payload or payloadBytes, not both',
    });
  } else if (message.payloadBytes !== undefined) {
    payload = { bytes: Buffer.from(message.payloadBytes) };
  } else if (message.payload !== undefined) {
    let json: string | undefined;
    try {
      // undefined for a function or symbol, whatever its declared type says.
      json = JSON.stringify(message.payload);
    } catch (error) {
      problems.push({
        path: `${path}payload`,
        message: `cannot be serialised as JSON: ${(error as Error).message}`,
      });
    }
    if (json !== undefined) payload = { json };
  }
  let due: WireDue | undefined;
  if (message.deliverAt !== undefined && message.delayMs !== undefined) {
    problems.push({
      path: `${path}deliverAt`,
      message: 'give either deliverAt or delayMs, not both',
    });
  } else if (message.delayMs !== undefined) {
    due = { delayMs: message.delayMs };
  } else if (message.deliverAt instanceof Date) {
    if (Number.isNaN(message.deliverAt.getTime()))
      problems.push({ path: `${path}deliverAt`, message: 'is an invalid Date' });
    else due = { deliverAt: message.deliverAt.toISOString() };
  } else if (typeof message.deliverAt === 'number') {
    due = { deliverAtMs: message.deliverAt };
  } else if (typeof message.deliverAt === 'string') {
    due = { deliverAt: message.deliverAt };
  }
  if (problems.length > 0) {
    throw new HourglassClientError({
      code: 'invalid_request',
      message: `invalid message: ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`,
      transport,
      retriable: false,
      details: problems,
    });
  }
  return {
    id: message.id ?? uuidv7(),
    topic: message.topic,
    ...(message.key !== undefined && message.key !== null ? { key: message.key } : {}),
    ...(message.headers !== undefined ? { headers: { ...message.headers } } : {}),
    ...(payload ? { payload } : {}),
    ...(due ? { due } : {}),
  };
}

export function toMessage(raw: RawMessage): Message {
  return {
    id: raw.id,
    app: raw.app,
    topic: raw.topic,
    key: raw.key ?? null,
    slot: raw.slot,
    deliverAt: new Date(raw.deliverAt),
    state: raw.state as MessageState,
    createdAt: new Date(raw.createdAt),
    ...(raw.deliveredAt !== undefined ? { deliveredAt: new Date(raw.deliveredAt) } : {}),
    attempts: raw.attempts,
    ...(raw.lastError !== undefined ? { lastError: raw.lastError } : {}),
  };
}

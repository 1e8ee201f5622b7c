/**
 * A callback request read from its headers and body, once its signature is verified. Hourglass
 * sends `hourglass-id`, `hourglass-app`, `hourglass-deliver-at` (ISO-8601), `hourglass-attempt`
 * and, for a callback with a `name`, `hourglass-callback-name` (docs/callbacks.md).
 */
import type { HeadersLike, VerifiedSignature } from './signature';
import { VerificationError, headerValue } from './signature';

/** A verified callback request. */
export interface CallbackMessage {
  /** The message id (`hourglass-id`), unique per app. */
  readonly id: string;
  /**
   * `webhook-id`: the message id, the same for every attempt. Deduplicate on it, together with
   * `name` when one message has several HTTP targets to the same receiver (they share it).
   */
  readonly webhookId: string;
  /** The app that scheduled the message (`hourglass-app`). */
  readonly app: string;
  /** The callback's `name` (`hourglass-callback-name`); undefined for a callback without one. */
  readonly name: string | undefined;
  /** The due time the message was scheduled for (`hourglass-deliver-at`). */
  readonly deliverAt: Date;
  /** 1 for the first attempt (`hourglass-attempt`). */
  readonly attempt: number;
  /** When this attempt was signed (`webhook-timestamp`). */
  readonly timestamp: Date;
  /** `content-type`: the message's `contentType`, `application/json` for envelope callbacks. */
  readonly contentType: string | undefined;
  /** Every request header, by lower-case name; the scheduler's own headers are among them. */
  readonly headers: Readonly<Record<string, string>>;
  /** The body as sent: the payload bytes, or the envelope's JSON text. */
  readonly body: Buffer;
  /**
   * The body parsed as JSON: the payload, or for an `envelope: true` callback the envelope
   * (type it as {@link CallbackEnvelope}). @throws SyntaxError for a body that is not JSON.
   */
  json<T = unknown>(): T;
}

/** The body of an `envelope: true` callback. */
export interface CallbackEnvelope<T = unknown> {
  /** The message's first Kafka topic, or null when it has none. */
  readonly topic: string | null;
  readonly id: string;
  /** ISO-8601. */
  readonly deliverAt: string;
  /** The JSON payload, or the base64 text of a binary one. */
  readonly body: T;
}

function parseDeliverAt(text: string | undefined): Date | undefined {
  if (text === undefined) return undefined;
  // ISO-8601 as sent; epoch milliseconds too, the form of the Kafka header of the same name.
  const date = new Date(/^\d{1,15}$/.test(text) ? Number(text) : text);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

function parseAttempt(text: string | undefined): number | undefined {
  return text !== undefined && /^[1-9]\d{0,8}$/.test(text) ? Number(text) : undefined;
}

function allHeaders(headers: HeadersLike): Record<string, string> {
  const all: Record<string, string> = {};
  if (typeof headers.forEach === 'function') {
    headers.forEach((value, name) => (all[name.toLowerCase()] = value));
  } else {
    for (const name of Object.keys(headers)) {
      const value = headerValue(headers, name.toLowerCase());
      if (value !== undefined) all[name.toLowerCase()] = value;
    }
  }
  return all;
}

/**
 * The {@link CallbackMessage} of a verified request.
 * @throws {@link VerificationError} `missing_headers` naming the `hourglass-*` headers that are
 *   missing or malformed: a request signed with the app's secret that is not a callback.
 */
export function readCallbackMessage(
  headers: HeadersLike,
  body: Buffer,
  signature: VerifiedSignature,
): CallbackMessage {
  const id = headerValue(headers, 'hourglass-id');
  const app = headerValue(headers, 'hourglass-app');
  const deliverAt = parseDeliverAt(headerValue(headers, 'hourglass-deliver-at'));
  const attempt = parseAttempt(headerValue(headers, 'hourglass-attempt'));
  if (!id || !app || !deliverAt || !attempt) {
    const bad = Object.entries({ id, app, 'deliver-at': deliverAt, attempt })
      .filter(([, value]) => !value)
      .map(([name]) => `hourglass-${name}`);
    throw new VerificationError(
      'missing_headers',
      `not an Hourglass callback: missing or malformed ${bad.join(', ')}`,
    );
  }
  return {
    id,
    webhookId: signature.webhookId,
    app,
    name: headerValue(headers, 'hourglass-callback-name') || undefined,
    deliverAt,
    attempt,
    timestamp: signature.timestamp,
    contentType: headerValue(headers, 'content-type'),
    headers: allHeaders(headers),
    body,
    json<T>(): T {
      return JSON.parse(body.toString('utf8')) as T;
    },
  };
}

/**
 * The HTTP request an HTTP target's attempt sends (docs/callbacks.md, "The request Hourglass
 * sends"): the payload bytes or the seed's envelope, the message's and the callback's headers,
 * Hourglass's own, and the Standard Webhooks signature over exactly the bytes sent.
 */
import type {
  ClaimedMessage,
  HttpCallRequest,
  HttpTargetSpec,
  OutboundRecord,
} from '@hourglass/core';
import { isoTime, webhookHeaders } from '@hourglass/core';

/** The due time the client asked for (a retry moves `deliverAtMs` on, not this). */
export function askedDueMs(message: ClaimedMessage): number {
  return message.firstDeliverAtMs ?? message.deliverAtMs;
}

/** The first Kafka target's topic, which the envelope's `topic` names (null when none). */
function envelopeTopic(message: ClaimedMessage): string | null {
  const kafka = message.targets?.find((target) => target.type === 'kafka');
  return kafka?.type === 'kafka' ? kafka.topic : null;
}

function bodyOf(message: ClaimedMessage, target: HttpTargetSpec): { body: Buffer; type: string } {
  const binary = message.payloadEncoding === 'binary';
  if (target.envelope) {
    // The payload's JSON text is spliced in as is: it was produced by JSON.stringify at accept
    // time, so it is valid JSON, and parsing it again would cost more than the request.
    const body = binary
      ? JSON.stringify(message.payload.toString('base64'))
      : message.payload.toString('utf8');
    const head = JSON.stringify({
      topic: envelopeTopic(message),
      id: message.id,
      deliverAt: isoTime(askedDueMs(message)),
    });
    return {
      body: Buffer.from(`${head.slice(0, -1)},"body":${body.length > 0 ? body : 'null'}}`, 'utf8'),
      type: 'application/json',
    };
  }
  return {
    body: message.payload,
    type: message.contentType ?? (binary ? 'application/octet-stream' : 'application/json'),
  };
}

export function callbackRequest(
  message: ClaimedMessage,
  target: HttpTargetSpec,
  targetIndex: number,
  attempt: number,
  secrets: readonly string[],
  nowMs: number,
): HttpCallRequest {
  const { body, type } = bodyOf(message, target);
  const headers: Record<string, string> = {
    ...message.headers,
    ...target.headers,
    'content-type': type,
    'hourglass-id': message.id,
    'hourglass-app': message.app,
    'hourglass-deliver-at': isoTime(askedDueMs(message)),
    'hourglass-attempt': String(attempt),
    // webhook-id is the message id (Standard Webhooks: stable across retries); a message with two
    // callbacks to one receiver tells them apart by this.
    'hourglass-target': String(targetIndex),
  };
  if (target.name !== null) headers['hourglass-callback-name'] = target.name;
  if (secrets.length > 0)
    Object.assign(headers, webhookHeaders(secrets, message.id, Math.floor(nowMs / 1000), body));
  return {
    app: message.app,
    url: target.url,
    method: target.method,
    headers,
    body,
    timeoutMs: target.timeoutMs,
    expectBody: target.expectBody,
  };
}

/** A Kafka target of a message as the Kafka delivery port takes it: one claimed message each. */
export function kafkaTargetMessage(
  message: ClaimedMessage,
  topic: string,
  key: string | null,
  headers: Readonly<Record<string, string>>,
): ClaimedMessage {
  return {
    ...message,
    topic,
    key,
    headers: { ...message.headers, ...headers },
    deliverAtMs: askedDueMs(message),
  };
}

export type { OutboundRecord };

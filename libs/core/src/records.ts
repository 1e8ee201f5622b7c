/**
 * The Kafka record a fired message becomes: its key, payload bytes and headers, plus the
 * `hourglass-*` headers consumers use to deduplicate (`hourglass-id`) and to measure lateness
 * (`hourglass-deliver-at`, epoch ms).
 */
import type { ClaimedMessage, OutboundRecord } from './ports';

export function kafkaRecordOf(message: ClaimedMessage): OutboundRecord {
  return {
    topic: message.topic,
    key: message.key,
    value: message.payload,
    headers: {
      ...message.headers,
      'hourglass-id': message.id,
      'hourglass-app': message.app,
      'hourglass-deliver-at': String(message.deliverAtMs),
    },
  };
}

/** Bytes a record adds to a produce request, near enough to split requests below a broker limit. */
export function recordBytes(record: OutboundRecord): number {
  let bytes = 70 + record.value.length + (record.key === null ? 0 : Buffer.byteLength(record.key));
  for (const name in record.headers)
    bytes += 8 + Buffer.byteLength(name) + Buffer.byteLength(record.headers[name]!);
  return bytes;
}

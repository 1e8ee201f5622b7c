/**
 * Delivering claimed messages to Kafka: the {@link Delivery} port's Kafka implementation.
 *
 * A fired batch is split into produce requests by topic, and within a topic by count and bytes,
 * and each request is answered on its own. So a topic that is missing fails only its own
 * messages, a request over the broker's `message.max.bytes` cannot take others down with it, and
 * after a partial failure only what failed is produced again (no duplicate without a crash or a
 * timed-out request whose fate is unknown).
 */
import type { ClaimedMessage, DeliveryOutcome, OutboundRecord } from '@hourglass/core';
import { kafkaRecordOf, recordBytes } from '@hourglass/core';
import type { Producer } from 'kafkajs';
import { CompressionTypes } from 'kafkajs';
import { toPublishError } from './errors';

/** Every outcome of a Kafka delivery names the same target: an outage takes the whole cluster. */
export const KAFKA_TARGET = 'kafka';

export interface ProduceLimits {
  /** Most bytes of records in one produce request (below the broker's message.max.bytes). */
  readonly maxRequestBytes: number;
  /** Most records in one produce request. */
  readonly maxRequestRecords: number;
  /** A request not answered by then counts as a retriable failure (its fate is unknown). */
  readonly timeoutMs: number;
}

interface Chunk {
  readonly topic: string;
  readonly indexes: number[];
  readonly records: OutboundRecord[];
}

/** Groups by topic, then cuts each topic's records into requests within the limits. */
export function produceChunks(
  records: readonly OutboundRecord[],
  limits: Pick<ProduceLimits, 'maxRequestBytes' | 'maxRequestRecords'>,
): Chunk[] {
  const open = new Map<string, { chunk: Chunk; bytes: number }>();
  const chunks: Chunk[] = [];
  records.forEach((record, index) => {
    const bytes = recordBytes(record);
    let current = open.get(record.topic);
    if (
      current &&
      current.chunk.records.length > 0 &&
      (current.bytes + bytes > limits.maxRequestBytes ||
        current.chunk.records.length >= limits.maxRequestRecords)
    ) {
      current = undefined;
    }
    if (!current) {
      current = { chunk: { topic: record.topic, indexes: [], records: [] }, bytes: 0 };
      open.set(record.topic, current);
      chunks.push(current.chunk);
    }
    current.chunk.indexes.push(index);
    current.chunk.records.push(record);
    current.bytes += bytes;
  });
  return chunks;
}

class ProduceTimeout extends Error {
  override readonly name = 'KafkaJSRequestTimeoutError';
}

function withTimeout<T>(work: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new ProduceTimeout(`produce not answered within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/** Produces the messages (acks=all) and answers one outcome per message, in order. */
export async function deliverToKafka(
  producer: () => Promise<Producer>,
  messages: readonly ClaimedMessage[],
  limits: ProduceLimits,
): Promise<DeliveryOutcome[]> {
  const outcomes = new Array<DeliveryOutcome>(messages.length);
  if (messages.length === 0) return outcomes;
  let connected: Producer;
  try {
    connected = await withTimeout(producer(), limits.timeoutMs);
  } catch (error) {
    const failure = toPublishError(error);
    return messages.map(() => ({
      kind: 'failed',
      target: KAFKA_TARGET,
      error: failure.message,
      retriable: true,
    }));
  }
  const chunks = produceChunks(messages.map(kafkaRecordOf), limits);
  await Promise.all(
    chunks.map(async (chunk) => {
      let outcome: DeliveryOutcome;
      try {
        await withTimeout(
          connected.send({
            topic: chunk.topic,
            acks: -1,
            compression: CompressionTypes.None,
            timeout: limits.timeoutMs,
            messages: chunk.records.map((record) => ({
              key: record.key,
              value: record.value,
              headers: { ...record.headers },
            })),
          }),
          limits.timeoutMs,
        );
        outcome = { kind: 'delivered', target: KAFKA_TARGET };
      } catch (error) {
        const failure = toPublishError(error);
        outcome = {
          kind: 'failed',
          target: KAFKA_TARGET,
          error: failure.message,
          retriable: failure.retriable,
        };
      }
      for (const index of chunk.indexes) outcomes[index] = outcome;
    }),
  );
  return outcomes;
}

/**
 * A Kafka collector that also records WHICH PRODUCER wrote each record: the idempotent producer's
 * id, which Kafka stores in every record batch. Each node has one producer (one id) for its
 * lifetime, so this tells which node fired a message without adding anything to the records the
 * engine produces. testkit's collectKafka does not expose it, hence this one.
 */
import type { Consumer, KafkaMessage } from 'kafkajs';
import { kafkaClient, randomId } from '@hourglass/testkit';

export interface ProducedRecord {
  readonly id: string;
  readonly app: string;
  /** The idempotent producer's id ('-1' would mean a non-idempotent producer). */
  readonly producerId: string;
  /** Producer create time of the record batch, ms: when the node encoded the produce request. */
  readonly timestampMs: number;
  /** `hourglass-deliver-at`, the message's due time. */
  readonly deliverAtMs: number;
  readonly receivedAtMs: number;
}

export interface ProducedCollector {
  readonly records: ProducedRecord[];
  stop(): Promise<void>;
}

function header(message: KafkaMessage, name: string): string {
  const raw = message.headers?.[name];
  const value = Array.isArray(raw) ? raw[raw.length - 1] : raw;
  return value === undefined ? '' : Buffer.isBuffer(value) ? value.toString('utf8') : value;
}

/** Collects every record of `topic` from the beginning; resolves once the consumer has its partitions. */
export async function collectProduced(
  brokers: string[],
  topic: string,
  timeoutMs = 30_000,
): Promise<ProducedCollector> {
  const records: ProducedRecord[] = [];
  const consumer: Consumer = kafkaClient(brokers, 'hourglass-test-produced').consumer({
    groupId: `test-produced-${randomId()}`,
    allowAutoTopicCreation: false,
    maxWaitTimeInMs: 250,
  });
  const joined = new Promise<void>((resolve) => {
    consumer.on(consumer.events.GROUP_JOIN, (event) => {
      if ((event.payload.memberAssignment[topic]?.length ?? 0) > 0) resolve();
    });
  });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    eachMessage: ({ message }) => {
      // kafkajs decodes the batch header into `batchContext` but does not declare it in its types.
      const context = (message as unknown as { batchContext?: { producerId?: string } })
        .batchContext;
      records.push({
        id: header(message, 'hourglass-id'),
        app: header(message, 'hourglass-app'),
        producerId: context?.producerId ?? 'unknown',
        timestampMs: Number(message.timestamp),
        deliverAtMs: Number(header(message, 'hourglass-deliver-at')),
        receivedAtMs: Date.now(),
      });
      return Promise.resolve();
    },
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      joined,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`collectProduced(${topic}): no partitions after ${timeoutMs} ms`)),
          timeoutMs,
        );
      }),
    ]);
  } catch (error) {
    await consumer.disconnect();
    throw error;
  } finally {
    clearTimeout(timer);
  }
  return { records, stop: () => consumer.disconnect() };
}

/**
 * The Kafka adapter: the only place that knows kafkajs. It produces fired messages with an
 * idempotent producer and acks=all, and creates topics for the admin side.
 *
 * kafkajs is unmaintained since 2023 (see STYLE.md); it is used because the design card names it,
 * and kept behind {@link Publisher} so it can be replaced without touching the engine.
 */
import type { ClaimedMessage, Delivery, DeliveryOutcome, Publisher } from '@hourglass/core';
import { DependencyUnavailableError, PublishError } from '@hourglass/core';
import type { Admin, Producer } from 'kafkajs';
import { Kafka, logLevel as KafkaLogLevel } from 'kafkajs';
import type { ProduceLimits } from './delivery';
import { deliverToKafka } from './delivery';
import { ensureKafkaTopics } from './topics';

export { KAFKA_TARGET, deliverToKafka, produceChunks } from './delivery';
export type { ProduceLimits } from './delivery';
export { toPublishError } from './errors';

// kafkajs prints a banner about its partitioner change on every producer otherwise.
process.env.KAFKAJS_NO_PARTITIONER_WARNING ??= '1';

export interface KafkaPublisherOptions {
  brokers: readonly string[];
  clientId: string;
  /** Partitions of topics created by {@link KafkaPublisher.ensureTopics}. @default 4 */
  topicPartitions?: number;
  /** How long one produce may take before it counts as failed (retriable). @default 10000 */
  requestTimeoutMs?: number;
  /** Most bytes of records in one produce request; keep it below the broker's message.max.bytes. @default 1000000 */
  maxRequestBytes?: number;
  /** Most records in one produce request. @default 1000 */
  maxRequestRecords?: number;
  logger?: { warn(obj: object, msg: string): void; error(obj: object, msg: string): void };
}

export class KafkaPublisher implements Publisher, Delivery {
  private readonly kafka: Kafka;
  private readonly limits: ProduceLimits;
  private producer: Producer | undefined;
  private admin: Admin | undefined;
  private starting: Promise<void> | undefined;

  constructor(private readonly options: KafkaPublisherOptions) {
    this.limits = {
      maxRequestBytes: options.maxRequestBytes ?? 1_000_000,
      maxRequestRecords: options.maxRequestRecords ?? 1000,
      // kafkajs' own request timeout plus its short retry, so a hung broker cannot hold a batch.
      timeoutMs: (options.requestTimeoutMs ?? 10_000) + 2_000,
    };
    this.kafka = new Kafka({
      clientId: options.clientId,
      brokers: [...options.brokers],
      logLevel: KafkaLogLevel.NOTHING,
      connectionTimeout: 3000,
      requestTimeout: options.requestTimeoutMs ?? 10_000,
      // Our own loop retries with backoff and keeps messages scheduled meanwhile; a short client
      // retry keeps a dead broker from holding a batch (and a readiness probe) for minutes.
      retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 1000 },
    });
  }

  /** Connects lazily: a node starts even while Kafka is down, and keeps messages until it is back. */
  async start(): Promise<void> {
    this.producer ??= this.kafka.producer({
      idempotent: true,
      // Required by the idempotent producer in kafkajs to keep ordering without gaps.
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
    });
    this.admin ??= this.kafka.admin();
    await this.connect().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    const producer = this.producer;
    if (!producer) throw new PublishError('publisher is not started', true);
    this.starting ??= producer.connect().catch((error: unknown) => {
      this.starting = undefined;
      throw error;
    });
    await this.starting;
  }

  async stop(): Promise<void> {
    const producer = this.producer;
    const admin = this.admin;
    this.producer = undefined;
    this.admin = undefined;
    this.starting = undefined;
    await Promise.allSettled([producer?.disconnect(), admin?.disconnect()]);
  }

  async ping(): Promise<void> {
    const admin = this.admin;
    if (!admin)
      throw new DependencyUnavailableError('kafka', new Error('publisher is not started'));
    try {
      await admin.connect();
      await admin.describeCluster();
    } catch (error) {
      throw new DependencyUnavailableError('kafka', error);
    }
  }

  /** {@link Delivery}: produces the messages, one outcome per message (see ./delivery). */
  deliver(messages: readonly ClaimedMessage[]): Promise<DeliveryOutcome[]> {
    return deliverToKafka(
      async () => {
        await this.connect();
        return this.producer!;
      },
      messages,
      this.limits,
    );
  }

  async ensureTopics(
    topics: readonly string[],
    options: { partitions?: number; replicationFactor?: number } = {},
  ): Promise<void> {
    if (topics.length === 0) return;
    const admin = this.admin;
    if (!admin)
      throw new DependencyUnavailableError('kafka', new Error('publisher is not started'));
    // Bad names and settings are `invalid_request` (see ./topics); only an unreachable Kafka is 503.
    await ensureKafkaTopics(admin, topics, options, this.options.topicPartitions ?? 4);
  }
}

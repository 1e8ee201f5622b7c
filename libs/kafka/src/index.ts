/**
 * The Kafka adapter: the only place that knows kafkajs. It produces fired messages with an
 * idempotent producer and acks=all, and creates topics for the admin side.
 *
 * kafkajs is unmaintained since 2023 (see STYLE.md); it is used because the design card names it,
 * and kept behind {@link Publisher} so it can be replaced without touching the engine.
 */
import type { OutboundRecord, Publisher } from '@hourglass/core';
import { DependencyUnavailableError, PublishError } from '@hourglass/core';
import type { Admin, Producer } from 'kafkajs';
import { CompressionTypes, Kafka, logLevel as KafkaLogLevel } from 'kafkajs';

// kafkajs prints a banner about its partitioner change on every producer otherwise.
process.env.KAFKAJS_NO_PARTITIONER_WARNING ??= '1';

export interface KafkaPublisherOptions {
  brokers: readonly string[];
  clientId: string;
  /** Partitions of topics created by {@link KafkaPublisher.ensureTopics}. @default 4 */
  topicPartitions?: number;
  /** How long one produce may take before it counts as failed. @default 10000 */
  requestTimeoutMs?: number;
  logger?: { warn(obj: object, msg: string): void; error(obj: object, msg: string): void };
}

export class KafkaPublisher implements Publisher {
  private readonly kafka: Kafka;
  private producer: Producer | undefined;
  private admin: Admin | undefined;
  private starting: Promise<void> | undefined;

  constructor(private readonly options: KafkaPublisherOptions) {
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

  async publish(records: readonly OutboundRecord[]): Promise<void> {
    if (records.length === 0) return;
    try {
      await this.connect();
      const byTopic = new Map<
        string,
        Array<{ key: string | null; value: Buffer; headers: Record<string, string> }>
      >();
      for (const record of records) {
        let list = byTopic.get(record.topic);
        if (!list) byTopic.set(record.topic, (list = []));
        list.push({ key: record.key, value: record.value, headers: { ...record.headers } });
      }
      await this.producer!.sendBatch({
        acks: -1,
        compression: CompressionTypes.None,
        topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
      });
    } catch (error) {
      throw toPublishError(error);
    }
  }

  async ensureTopics(
    topics: readonly string[],
    options: { partitions?: number; replicationFactor?: number } = {},
  ): Promise<void> {
    if (topics.length === 0) return;
    const admin = this.admin;
    if (!admin)
      throw new DependencyUnavailableError('kafka', new Error('publisher is not started'));
    try {
      await admin.connect();
      const existing = new Set(await admin.listTopics());
      const missing = [...new Set(topics)].filter((topic) => !existing.has(topic));
      if (missing.length === 0) return;
      await admin.createTopics({
        waitForLeaders: true,
        topics: missing.map((topic) => ({
          topic,
          numPartitions: options.partitions ?? this.options.topicPartitions ?? 4,
          // -1: the broker's default.replication.factor.
          replicationFactor: options.replicationFactor ?? -1,
        })),
      });
    } catch (error) {
      throw new DependencyUnavailableError('kafka', error);
    }
  }
}

/** kafkajs marks transient protocol and network errors `retriable`; anything else counts toward giving up. */
export function toPublishError(error: unknown): PublishError {
  if (error instanceof PublishError) return error;
  const err = error as {
    name?: string;
    message?: string;
    retriable?: boolean;
    cause?: unknown;
    originalError?: unknown;
  };
  const name = err.name ?? 'Error';
  // Retries exhausted wraps the last error; the connection-level ones are transient by nature.
  const inner = (err.originalError ?? err.cause) as
    { retriable?: boolean; name?: string } | undefined;
  const text = `${name} ${inner?.name ?? ''} ${err.message ?? ''}`;
  // A missing topic is "retriable" to Kafka (it may be being created), but a topic that stays
  // missing must end in `failed` rather than retry forever, so it counts toward giving up.
  if (/does not host this topic|UNKNOWN_TOPIC/i.test(text)) {
    return new PublishError(`${name}: ${err.message ?? String(error)}`, false, { cause: error });
  }
  const transient =
    err.retriable === true ||
    inner?.retriable === true ||
    /Connection|Network|Timeout|NotLeader|LeaderNotAvailable|BrokerNotFound|NotCoordinator/i.test(
      text,
    );
  return new PublishError(`${name}: ${err.message ?? String(error)}`, transient, { cause: error });
}

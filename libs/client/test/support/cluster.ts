/**
 * One in-process node for the SDK's integration tests: its own Postgres schema, its own Kafka
 * topic (with a collector on it) and gRPC on a free port.
 */
import type { CollectedRecord, KafkaCollector, TestDatabase } from '@hourglass/testkit';
import {
  collectKafka,
  createTestDatabase,
  createTopics,
  deleteTopics,
  randomTopicName,
  serviceUrls,
} from '@hourglass/testkit';
import pg from 'pg';
import type { RunningNode } from '../../../../apps/node/src/node';
import { startInProcess, testConfig } from '../../../../apps/node/test/support/harness';
import type { KafkaRecord } from '../../src';

export const TOKEN = 'sdk-test-token-0001';
export const OTHER_TOKEN = 'sdk-other-token-0001';

export interface TestCluster {
  node: RunningNode;
  topic: string;
  db: TestDatabase;
  collector: KafkaCollector;
  brokers: string[];
  /** Rows in `messages` for this app and topic, read straight from Postgres. */
  countMessages(topic: string): Promise<number>;
  recordsWithId(id: string): CollectedRecord[];
  stop(): Promise<void>;
}

/**
 * `overrides`: more config, layered over the test config (e.g.
 * `{ callbacks: { allowNetworks: ['127.0.0.0/8'] } }` for receivers on this machine).
 */
export async function startTestCluster(
  label: string,
  extraTopics: string[] = [],
  overrides: Record<string, unknown> = {},
): Promise<TestCluster> {
  const urls = serviceUrls();
  const db = await createTestDatabase();
  const topic = randomTopicName(label);
  await createTopics(urls.kafkaBrokers, [topic, ...extraTopics], 2);
  const collector = await collectKafka(urls.kafkaBrokers, topic);
  const node = await startInProcess(
    testConfig({
      postgres: { url: db.connectionString },
      kafka: { brokers: urls.kafkaBrokers, createTopics: false },
      grpc: { port: 0 },
      core: { loaderIntervalMs: 200 },
      apps: [
        { name: 'sdk', token: TOKEN, topics: [topic, ...extraTopics] },
        { name: 'other', token: OTHER_TOKEN, topics: [topic] },
      ],
      ...overrides,
    }),
  );
  return {
    node,
    topic,
    db,
    collector,
    brokers: urls.kafkaBrokers,
    async countMessages(countTopic) {
      const client = new pg.Client({ connectionString: db.connectionString });
      await client.connect();
      try {
        const result = await client.query<{ count: string }>(
          'SELECT count(*) FROM messages WHERE topic = $1',
          [countTopic],
        );
        return Number(result.rows[0]?.count ?? 0);
      } finally {
        await client.end();
      }
    },
    recordsWithId: (id) =>
      collector.records.filter((record) => record.headers['hourglass-id'] === id),
    async stop() {
      await node.stop();
      await collector.stop();
      await deleteTopics(urls.kafkaBrokers, [topic, ...extraTopics]).catch(() => undefined);
      await db.drop();
    },
  };
}

/** A collected record back in kafkajs' shape, for decodeDelivery. */
export function asKafkaRecord(record: CollectedRecord): KafkaRecord {
  return {
    key: record.key === null ? null : Buffer.from(record.key),
    value: record.value,
    timestamp: String(record.timestampMs),
    headers: record.headers,
    offset: record.offset,
  };
}

export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));

/**
 * @hourglass/testkit: what every integration test needs to reach the real services that
 * `scripts/services up` runs, each test isolated from the others.
 *
 * - Postgres: {@link createTestDatabase}, a schema per test file.
 * - Kafka: {@link randomTopicName} + {@link createTopics}; {@link collectKafka} to see what arrives.
 * - etcd and Redis: {@link etcdPrefix} and {@link redisPrefix}, a key prefix per test.
 * - {@link serviceUrls}: where the services are (HOURGLASS_* variables, with local defaults).
 * - {@link TcpProxy}: cut a client off from a service (reset or hang) without stopping it.
 * - {@link startReceiver}: a real HTTP receiver for callbacks, recording what arrives.
 */
export type { ServiceUrls } from './services';
export { DEFAULT_SERVICE_URLS, serviceUnreachable, serviceUrls } from './services';
export { etcdPrefix, randomId, randomTopicName, redisPrefix } from './names';
export type { CreateTestDatabaseOptions, TestDatabase } from './postgres';
export { createTestDatabase } from './postgres';
export type { CollectKafkaOptions, CollectedRecord, KafkaCollector } from './kafka';
export { collectKafka, createTopics, deleteTopics, kafkaClient } from './kafka';
export { TcpProxy } from './tcp-proxy';
export type { ReceivedRequest, ReceiverAnswer, Responder, TestReceiver } from './receiver';
export { startReceiver } from './receiver';
export { pollUntil } from './poll';

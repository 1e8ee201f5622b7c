/**
 * Topic creation for the admin side ({@link KafkaPublisher.ensureTopics}). What Kafka would refuse
 * is refused here first, with `invalid_request` naming the field: a bad name, a collision with an
 * existing topic, a partition count or replication factor out of range (the replication factor
 * against the brokers the cluster has). Kafka's own refusals of the settings map to the same
 * code; only a Kafka that cannot be reached (or does not answer) is `unavailable`.
 */
import type { ErrorDetail } from '@hourglass/core';
import {
  DependencyUnavailableError,
  HourglassError,
  topicCollisionKey,
  topicNameProblem,
} from '@hourglass/core';
import type { Admin } from 'kafkajs';

export interface TopicSettings {
  partitions?: number;
  /** Absent: the broker's `default.replication.factor`. */
  replicationFactor?: number;
}

/** Kafka's error types that say the request is wrong, each with the field it is about. */
const REQUEST_ERRORS: Readonly<Record<string, string>> = {
  INVALID_TOPIC_EXCEPTION: 'topic',
  INVALID_PARTITIONS: 'partitions',
  INVALID_REPLICATION_FACTOR: 'replicationFactor',
  INVALID_REPLICA_ASSIGNMENT: 'replicationFactor',
  INVALID_CONFIG: 'topic',
  POLICY_VIOLATION: 'topic',
  INVALID_REQUEST: 'topic',
};

function refused(message: string, details: ErrorDetail[]): HourglassError {
  return new HourglassError('invalid_request', message, details);
}

/** Checks what needs no Kafka: the names and the numbers. */
export function checkTopicSettings(topics: readonly string[], settings: TopicSettings): void {
  const details: ErrorDetail[] = [];
  for (const topic of topics) {
    const problem = topicNameProblem(topic);
    if (problem !== null)
      details.push({ path: 'topic', message: `"${String(topic).slice(0, 64)}": ${problem}` });
  }
  const { partitions, replicationFactor } = settings;
  if (partitions !== undefined && (!Number.isSafeInteger(partitions) || partitions < 1))
    details.push({ path: 'partitions', message: 'must be an integer >= 1' });
  if (
    replicationFactor !== undefined &&
    (!Number.isSafeInteger(replicationFactor) || replicationFactor < 1)
  )
    details.push({ path: 'replicationFactor', message: 'must be an integer >= 1' });
  if (details.length > 0)
    throw refused(
      `invalid topic: ${details.map((d) => `${d.path}: ${d.message}`).join('; ')}`,
      details,
    );
}

/**
 * What a failed `admin.createTopics` means: a refusal of the request (`invalid_request`), or
 * `undefined` when Kafka itself is the problem. kafkajs reports per-topic refusals as an aggregate
 * of errors with a `type`; `TOPIC_ALREADY_EXISTS` alone is not a failure (it resolves false).
 */
export function createTopicsRefusal(error: unknown): HourglassError | undefined {
  const err = error as { errors?: unknown; type?: unknown; message?: unknown };
  const parts = (Array.isArray(err.errors) ? err.errors : [err]) as Array<{
    type?: unknown;
    topic?: unknown;
    message?: unknown;
  }>;
  const details: ErrorDetail[] = [];
  for (const part of parts) {
    if (typeof part.type !== 'string' || part.type === 'TOPIC_ALREADY_EXISTS') continue;
    const path = REQUEST_ERRORS[part.type];
    if (path === undefined) return undefined;
    const topic = typeof part.topic === 'string' ? `"${part.topic}": ` : '';
    details.push({
      path,
      message: `${topic}Kafka refused it (${part.type}: ${String(part.message)})`,
    });
  }
  if (details.length === 0) return undefined;
  return refused(
    `Kafka refused to create the topic: ${details.map((d) => `${d.path}: ${d.message}`).join('; ')}`,
    details,
  );
}

/** Creates the missing topics; see the module comment for what is refused and how. */
export async function ensureKafkaTopics(
  admin: Admin,
  topics: readonly string[],
  settings: TopicSettings,
  defaultPartitions: number,
): Promise<void> {
  if (topics.length === 0) return;
  checkTopicSettings(topics, settings);
  const unavailable = (error: unknown): never => {
    throw new DependencyUnavailableError('kafka', error);
  };
  await admin.connect().catch(unavailable);
  const existing = await admin.listTopics().catch(unavailable);
  const existingSet = new Set(existing);
  const missing = [...new Set(topics)].filter((topic) => !existingSet.has(topic));
  if (missing.length === 0) return;

  // Kafka refuses a name that differs from an existing one only by "." versus "_".
  const byKey = new Map(existing.map((topic) => [topicCollisionKey(topic), topic]));
  const collisions: ErrorDetail[] = [];
  for (const topic of missing) {
    const other = byKey.get(topicCollisionKey(topic));
    if (other !== undefined)
      collisions.push({
        path: 'topic',
        message: `"${topic}" collides with the existing topic "${other}" (Kafka treats "." and "_" alike)`,
      });
  }
  if (collisions.length > 0)
    throw refused(`invalid topic: ${collisions.map((d) => d.message).join('; ')}`, collisions);

  if (settings.replicationFactor !== undefined) {
    const { brokers } = await admin.describeCluster().catch(unavailable);
    if (settings.replicationFactor > brokers.length) {
      throw refused(
        `replicationFactor ${settings.replicationFactor} is more than the ${brokers.length} broker(s) of the Kafka cluster`,
        [
          {
            path: 'replicationFactor',
            message: `at most ${brokers.length}, the number of brokers`,
          },
        ],
      );
    }
  }

  try {
    await admin.createTopics({
      waitForLeaders: true,
      topics: missing.map((topic) => ({
        topic,
        numPartitions: settings.partitions ?? defaultPartitions,
        // -1: the broker's default.replication.factor.
        replicationFactor: settings.replicationFactor ?? -1,
      })),
    });
  } catch (error) {
    throw createTopicsRefusal(error) ?? new DependencyUnavailableError('kafka', error);
  }
}

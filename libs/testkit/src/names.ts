/**
 * Unique names, so that test files (and concurrent runs against the same services) never see
 * each other's data: Kafka topics, Postgres schemas, etcd and Redis key prefixes.
 */
import { randomBytes } from 'node:crypto';

/**
 * 12 lowercase hex characters: legal in every name below without quoting (a Postgres schema
 * name included). 48 random bits make a collision among n names about n²/2⁴⁹ likely: one in
 * five million for 10,000 names.
 */
export function randomId(): string {
  return randomBytes(6).toString('hex');
}

/** An etcd key prefix of its own, like `/test/3f9c0a1b2c4d/`. */
export function etcdPrefix(): string {
  return `/test/${randomId()}/`;
}

/** A Redis key prefix of its own, like `test:3f9c0a1b2c4d:`. */
export function redisPrefix(): string {
  return `test:${randomId()}:`;
}

/**
 * A Kafka topic name of its own, like `test-1732249200000-3f9c0a1b2c4d`. The timestamp makes
 * leftovers from old runs easy to spot and delete. `prefix` is reduced to the characters Kafka
 * allows (`[a-zA-Z0-9._-]`) so any label can be passed.
 */
export function randomTopicName(prefix = 'test'): string {
  const safe = prefix.replace(/[^a-zA-Z0-9._-]/g, '-').slice(0, 200) || 'test';
  return `${safe}-${Date.now()}-${randomId()}`;
}

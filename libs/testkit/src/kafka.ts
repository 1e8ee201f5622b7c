/**
 * Kafka for tests: quiet clients, topics that exist before a test uses them, and a collector
 * that records what arrives on a topic.
 *
 * Auto-creation is off on the test broker (scripts/services), so every test creates its topics
 * with {@link createTopics}, under names from {@link randomTopicName}.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Admin, Consumer, IHeaders, KafkaMessage } from 'kafkajs';
import { Kafka, logLevel } from 'kafkajs';
import { randomId } from './names';
import { serviceUnreachable, serviceUrls } from './services';

// kafkajs prints a multi-line notice about its default partitioner for every producer unless
// this is set. Set on import, before any test creates a producer; an explicit value wins.
process.env['KAFKAJS_NO_PARTITIONER_WARNING'] ??= '1';

/**
 * A kafkajs client for tests. Silent: kafkajs logs retriable errors at ERROR level, which in
 * tests is noise (set `KAFKAJS_LOG_LEVEL=debug` to hear it again; kafkajs reads that variable
 * itself). Gives up on an unreachable broker within a few seconds rather than minutes.
 */
export function kafkaClient(
  brokers: string[] = serviceUrls().kafkaBrokers,
  clientId = 'hourglass-test',
): Kafka {
  return new Kafka({
    clientId,
    brokers,
    logLevel: logLevel.NOTHING,
    connectionTimeout: 3_000,
    retry: { retries: 5, initialRetryTime: 100 },
  });
}

/** How long {@link createTopics} waits for the topics to appear in metadata. */
const TOPIC_READY_TIMEOUT_MS = 30_000;

/**
 * Creates the topics (replication factor 1; topics that already exist are left as they are)
 * and resolves once broker metadata lists every one with `partitions` partitions, each with a
 * leader, so producers and consumers started next find them.
 */
export async function createTopics(
  brokers: string[],
  names: string[],
  partitions = 1,
): Promise<void> {
  if (names.length === 0) return;
  await withAdmin(brokers, async (admin) => {
    await admin.createTopics({
      topics: names.map((topic) => ({ topic, numPartitions: partitions, replicationFactor: 1 })),
      waitForLeaders: true,
      timeout: TOPIC_READY_TIMEOUT_MS,
    });
    // Metadata changes raise no event a client can wait on, so this polls, briefly.
    const deadline = Date.now() + TOPIC_READY_TIMEOUT_MS;
    for (;;) {
      const missing = await topicsNotReady(admin, names, partitions);
      if (missing.length === 0) return;
      if (Date.now() >= deadline) {
        throw new Error(
          `createTopics: ${missing.join(', ')} not in broker metadata with ${partitions} ` +
            `partition(s) and leaders after ${TOPIC_READY_TIMEOUT_MS} ms`,
        );
      }
      await sleep(50);
    }
  });
}

/** Deletes the topics; those that do not exist are ignored. For `after` hooks. */
export async function deleteTopics(brokers: string[], names: string[]): Promise<void> {
  if (names.length === 0) return;
  await withAdmin(brokers, async (admin) => {
    const existing = new Set(await admin.listTopics());
    const topics = names.filter((name) => existing.has(name));
    if (topics.length > 0) await admin.deleteTopics({ topics, timeout: TOPIC_READY_TIMEOUT_MS });
  });
}

async function topicsNotReady(
  admin: Admin,
  names: string[],
  partitions: number,
): Promise<string[]> {
  const notReady: string[] = [];
  for (const name of names) {
    try {
      const { topics } = await admin.fetchTopicMetadata({ topics: [name] });
      const found = topics.find((topic) => topic.name === name);
      const ready =
        found !== undefined &&
        found.partitions.length >= partitions &&
        found.partitions.every((partition) => partition.leader >= 0);
      if (!ready) notReady.push(name);
    } catch {
      // UNKNOWN_TOPIC_OR_PARTITION while the creation propagates.
      notReady.push(name);
    }
  }
  return notReady;
}

async function withAdmin<T>(brokers: string[], use: (admin: Admin) => Promise<T>): Promise<T> {
  const admin = kafkaClient(brokers, 'hourglass-test-admin').admin();
  try {
    await admin.connect();
  } catch (error) {
    throw serviceUnreachable('Kafka', brokers.join(','), error);
  }
  try {
    return await use(admin);
  } finally {
    await admin.disconnect();
  }
}

/** One record as {@link collectKafka} saw it. */
export interface CollectedRecord {
  readonly topic: string;
  readonly partition: number;
  /** Kafka offsets are 64-bit, so kafkajs gives them as strings. */
  readonly offset: string;
  /** The key as UTF-8, or null for a record without one. */
  readonly key: string | null;
  /** The value; a tombstone (null value) arrives as an empty Buffer. */
  readonly value: Buffer;
  /** Headers as UTF-8 strings. Kafka allows a header name twice; then the last value wins. */
  readonly headers: Record<string, string>;
  /** The record's own Kafka timestamp (producer create time), ms since the epoch. */
  readonly timestampMs: number;
  /** When this process received the record, `Date.now()`: compare with a delivery deadline. */
  readonly receivedAtMs: number;
}

export interface CollectKafkaOptions {
  /**
   * Whether records already on the topic count. When false, only records written after
   * `collectKafka` resolves are collected (exactly: those past the end offsets it read first).
   * @default true
   */
  readonly fromBeginning?: boolean;
  /** Consumer group to join. @default a unique `test-collector-<random>` */
  readonly groupId?: string;
  /** How long to wait for the consumer to join its group and get partitions. @default 30000 */
  readonly readyTimeoutMs?: number;
}

/** What {@link collectKafka} returns. */
export interface KafkaCollector {
  /** Every record received so far, in arrival order (per partition: offset order). Live. */
  readonly records: CollectedRecord[];
  /**
   * Resolves as soon as at least `count` records have arrived in total (at once if they
   * already have); rejects after `timeoutMs` with what did arrive, or when the consumer dies
   * or the collector is stopped.
   * @param timeoutMs @default 30000
   */
  waitFor(count: number, timeoutMs?: number): Promise<void>;
  /**
   * Resolves with the first record (already received or still to come) that `match` accepts;
   * rejects like {@link waitFor}. Prefer it to counting when other records may arrive in
   * between, e.g. `waitForRecord((r) => r.headers['hourglass-id'] === id)`.
   * @param timeoutMs @default 30000
   */
  waitForRecord(
    match: (record: CollectedRecord) => boolean,
    timeoutMs?: number,
  ): Promise<CollectedRecord>;
  /**
   * Resolves once `condition(records)` holds, re-checked on every arrival; rejects like
   * {@link waitFor}. For conditions that counting cannot express, e.g. n distinct ids when
   * duplicates are possible:
   * `waitUntil((rs) => new Set(rs.map((r) => r.headers['hourglass-id'])).size >= n)`.
   * @param timeoutMs @default 30000
   * @param description what is awaited, for the timeout message. @default 'the condition'
   */
  waitUntil(
    condition: (records: readonly CollectedRecord[]) => boolean,
    timeoutMs?: number,
    description?: string,
  ): Promise<void>;
  /** Leaves the group and disconnects. Idempotent. */
  stop(): Promise<void>;
}

/** A pending waitFor/waitForRecord: re-checked whenever a record arrives. */
interface Waiter {
  /** Settles the wait if it is satisfied; returns whether it was. */
  readonly check: () => boolean;
  readonly reject: (error: Error) => void;
}

/**
 * Starts a consumer on `topic` and records everything it receives. Resolves only once the
 * consumer has joined its group and been assigned partitions of the topic, so a record produced
 * after this resolves is collected (with `fromBeginning: false` too). The topic must exist.
 */
export async function collectKafka(
  brokers: string[],
  topic: string,
  options: CollectKafkaOptions = {},
): Promise<KafkaCollector> {
  const fromBeginning = options.fromBeginning ?? true;
  const readyTimeoutMs = options.readyTimeoutMs ?? 30_000;
  const groupId = options.groupId ?? `test-collector-${randomId()}`;

  // "Only new records" is implemented as "from the beginning, minus what was there before":
  // a consumer asked to start at the end picks the end when it first fetches, after the group
  // join, and would miss a record produced in between.
  const startOffsets = new Map<number, bigint>();
  if (!fromBeginning) {
    await withAdmin(brokers, async (admin) => {
      for (const { partition, high } of await admin.fetchTopicOffsets(topic)) {
        startOffsets.set(partition, BigInt(high));
      }
    });
  }

  const records: CollectedRecord[] = [];
  const waiters = new Set<Waiter>();
  let failure: Error | undefined;

  const settle = (): void => {
    for (const waiter of waiters) {
      if (failure) waiter.reject(failure);
      else waiter.check();
    }
  };

  /** Resolves with `find()`'s first defined result, checked now and on every new record. */
  const waitUntil = <T>(find: () => T | undefined, timeoutMs: number, what: string): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const already = find();
      if (already !== undefined) return resolve(already);
      if (failure) return reject(failure);
      const timer = setTimeout(() => {
        waiter.reject(
          new Error(
            `collectKafka(${topic}): waited ${timeoutMs} ms for ${what}, ` +
              `got ${records.length} record(s)${describeTail(records)}`,
          ),
        );
      }, timeoutMs);
      const waiter: Waiter = {
        check: () => {
          const found = find();
          if (found === undefined) return false;
          clearTimeout(timer);
          waiters.delete(waiter);
          resolve(found);
          return true;
        },
        reject: (error) => {
          clearTimeout(timer);
          waiters.delete(waiter);
          reject(error);
        },
      };
      waiters.add(waiter);
    });

  const consumer: Consumer = kafkaClient(brokers, 'hourglass-test-collector').consumer({
    groupId,
    allowAutoTopicCreation: false,
    // The broker answers a fetch as soon as a record arrives whatever this is; it only bounds
    // how long an idle fetch blocks stop().
    maxWaitTimeInMs: 250,
  });

  const ready = new Promise<void>((resolve, reject) => {
    consumer.on(consumer.events.GROUP_JOIN, (event) => {
      const assigned = event.payload.memberAssignment[topic];
      if (assigned !== undefined && assigned.length > 0) resolve();
    });
    consumer.on(consumer.events.CRASH, (event) => {
      if (event.payload.restart) return; // kafkajs retries on its own
      failure = new Error(
        `collectKafka(${topic}): consumer crashed: ${event.payload.error.message}`,
        {
          cause: event.payload.error,
        },
      );
      reject(failure);
      settle();
    });
  });
  // The `ready` rejection is also observed below; this keeps a late crash from being reported
  // as an unhandled rejection.
  ready.catch(() => undefined);

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      failure ??= new Error(`collectKafka(${topic}): collector stopped`);
      settle();
      await consumer.disconnect();
    })());

  try {
    try {
      await consumer.connect();
    } catch (error) {
      throw serviceUnreachable('Kafka', brokers.join(','), error);
    }
    try {
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new Error(
        `collectKafka(${topic}): cannot subscribe (${reason}). ` +
          'Topics are not auto-created: create it with createTopics first.',
        { cause: error },
      );
    }
    await consumer.run({
      eachMessage: ({ partition, message }) => {
        const start = startOffsets.get(partition);
        if (start === undefined || BigInt(message.offset) >= start) {
          records.push(toRecord(topic, partition, message));
          settle();
        }
        return Promise.resolve();
      },
    });
    await withTimeout(
      ready,
      readyTimeoutMs,
      () =>
        `collectKafka(${topic}): consumer did not join group ${groupId} and get partitions ` +
        `within ${readyTimeoutMs} ms. Does the topic exist (createTopics)?`,
    );
  } catch (error) {
    await stop();
    throw error;
  }

  return {
    records,
    stop,
    waitFor: (count, timeoutMs = 30_000) =>
      waitUntil(
        () => (records.length >= count ? true : undefined),
        timeoutMs,
        `${count} record(s)`,
      ).then(() => undefined),
    waitForRecord: (match, timeoutMs = 30_000) =>
      waitUntil(() => records.find(match), timeoutMs, 'a matching record'),
    waitUntil: (condition, timeoutMs = 30_000, description = 'the condition') =>
      waitUntil(() => (condition(records) ? true : undefined), timeoutMs, description).then(
        () => undefined,
      ),
  };
}

function toRecord(topic: string, partition: number, message: KafkaMessage): CollectedRecord {
  return {
    topic,
    partition,
    offset: message.offset,
    key: message.key === null ? null : message.key.toString('utf8'),
    value: message.value ?? Buffer.alloc(0),
    headers: decodeHeaders(message.headers),
    timestampMs: Number(message.timestamp),
    receivedAtMs: Date.now(),
  };
}

function decodeHeaders(headers: IHeaders | undefined): Record<string, string> {
  const decoded: Record<string, string> = {};
  for (const [name, raw] of Object.entries(headers ?? {})) {
    const value = Array.isArray(raw) ? raw[raw.length - 1] : raw;
    if (value !== undefined)
      decoded[name] = Buffer.isBuffer(value) ? value.toString('utf8') : value;
  }
  return decoded;
}

function describeTail(records: readonly CollectedRecord[]): string {
  if (records.length === 0) return '';
  const last = records
    .slice(-5)
    .map((record) => `${record.partition}@${record.offset} key=${record.key ?? 'null'}`);
  return ` (last: ${last.join(', ')})`;
}

async function withTimeout<T>(promise: Promise<T>, ms: number, message: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message())), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

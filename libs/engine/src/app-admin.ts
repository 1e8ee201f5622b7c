/** The admin side of apps: creating, changing and deleting them, their tokens, topics and quotas. */
import { randomBytes } from 'node:crypto';
import type {
  AppPatch,
  AppQuotas,
  AppRecord,
  AppStats,
  AppStore,
  DueBucket,
  Publisher,
} from '@hourglass/core';
import {
  DEFAULT_MAX_TOPIC_PARTITIONS,
  HourglassError,
  NO_QUOTAS,
  textProblem,
  topicNameProblem,
} from '@hourglass/core';
import type { ErrorDetail } from '@hourglass/core';
import type { Clock } from '@hourglass/core';
import type { AppIdentity, MessageService, MessageView } from './service';
import type { DbAppDirectory } from './apps';
import { tokenDigest } from './apps';

/** Tokens are 32 random bytes; the prefix makes a leaked one easy to recognise (secret scanners). */
export const TOKEN_PREFIX = 'hg_';

export function newToken(): string {
  return `${TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
}

export interface AppAdminDeps {
  store: AppStore;
  directory: DbAppDirectory;
  publisher: Publisher;
  service: MessageService;
  clock: Clock;
  /** Most partitions of a topic created through {@link AppAdmin.addTopic}. @default 64 */
  maxTopicPartitions?: number;
}

/** Default due-time buckets of the statistics, relative to now. */
export const STATS_BUCKETS: readonly DueBucket[] = [
  { label: 'overdue', untilMs: 0 },
  { label: 'within1m', untilMs: 60_000 },
  { label: 'within1h', untilMs: 3_600_000 },
  { label: 'within1d', untilMs: 86_400_000 },
  { label: 'later', untilMs: null },
];

export interface CreateAppInput {
  name: string;
  description?: string;
  topics?: readonly string[];
  quotas?: Partial<AppQuotas>;
}

/**
 * The admin operations, transport-neutral like {@link MessageService}. Every change is committed
 * in Postgres first and then invalidates the caches. Clear tokens exist only in the return value
 * of {@link AppAdmin.createApp} and {@link AppAdmin.rotateToken}.
 */
export class AppAdmin {
  constructor(private readonly deps: AppAdminDeps) {}

  listApps(): Promise<AppRecord[]> {
    return this.deps.store.listApps();
  }

  async getApp(name: string): Promise<AppRecord> {
    return found(await this.deps.store.getApp(name), name);
  }

  async createApp(input: CreateAppInput): Promise<{ app: AppRecord; token: string }> {
    const problems: ErrorDetail[] = [];
    if (input.description !== undefined) checkText(problems, 'description', input.description);
    (input.topics ?? []).forEach((topic, index) => {
      const problem = topicNameProblem(topic);
      if (problem !== null) problems.push({ path: `topics/${index}`, message: problem });
    });
    refuseIfAny(problems);
    if (input.topics && input.topics.length > 0) {
      // Kafka's refusals name `topic`; this body calls it `topics`.
      await this.deps.publisher.ensureTopics(input.topics, {}).catch((error: unknown) => {
        throw error instanceof HourglassError && error.code === 'invalid_request'
          ? new HourglassError(
              error.code,
              error.message,
              error.details?.map((d) => (d.path === 'topic' ? { ...d, path: 'topics' } : d)),
            )
          : error;
      });
    }
    const token = newToken();
    const app = await this.deps.store.createApp(
      {
        name: input.name,
        description: input.description ?? '',
        topics: input.topics ?? [],
        quotas: { ...NO_QUOTAS, ...input.quotas },
      },
      tokenDigest(token),
      this.deps.clock.now(),
    );
    if (!app)
      throw new HourglassError('id_conflict', `app "${input.name}" already exists`, [
        { path: 'name', message: 'taken' },
      ]);
    await this.deps.directory.invalidate({ app: app.name, tokenHashes: [tokenDigest(token)] });
    return { app, token };
  }

  async updateApp(name: string, patch: AppPatch): Promise<AppRecord> {
    const problems: ErrorDetail[] = [];
    if (patch.description !== undefined) checkText(problems, 'description', patch.description);
    refuseIfAny(problems);
    const app = found(await this.deps.store.updateApp(name, patch), name);
    await this.invalidate(name);
    return app;
  }

  /** The app's scheduled messages stay and are still delivered: they were acknowledged. */
  async deleteApp(name: string): Promise<void> {
    const hashes = await this.deps.store.deleteApp(name);
    if (hashes === null) throw notFound(name);
    await this.deps.directory.invalidate({ app: name, tokenHashes: hashes });
  }

  async rotateToken(name: string, graceMs: number): Promise<{ app: AppRecord; token: string }> {
    const token = newToken();
    const app = found(
      await this.deps.store.rotateToken(name, tokenDigest(token), this.deps.clock.now(), graceMs),
      name,
    );
    await this.invalidate(name);
    return { app, token };
  }

  /**
   * Creates the Kafka topic when missing (before granting: a grant of a topic that cannot exist
   * would only fail deliveries later). The name follows Kafka's rules and `partitions` is at most
   * `maxTopicPartitions`, checked before Kafka is asked; the publisher refuses a replication
   * factor above the broker count and maps Kafka's refusals to `invalid_request`.
   */
  async addTopic(
    name: string,
    topic: string,
    options: { partitions?: number; replicationFactor?: number } = {},
  ): Promise<AppRecord> {
    const problems: ErrorDetail[] = [];
    const topicProblem = topicNameProblem(topic);
    if (topicProblem !== null) problems.push({ path: 'topic', message: topicProblem });
    const maxPartitions = this.deps.maxTopicPartitions ?? DEFAULT_MAX_TOPIC_PARTITIONS;
    const { partitions, replicationFactor } = options;
    if (
      partitions !== undefined &&
      (!Number.isSafeInteger(partitions) || partitions < 1 || partitions > maxPartitions)
    )
      problems.push({
        path: 'partitions',
        message: `must be an integer from 1 to ${maxPartitions} (limits.maxTopicPartitions)`,
      });
    if (
      replicationFactor !== undefined &&
      (!Number.isSafeInteger(replicationFactor) || replicationFactor < 1)
    )
      problems.push({ path: 'replicationFactor', message: 'must be an integer >= 1' });
    refuseIfAny(problems);
    await this.getApp(name);
    await this.deps.publisher.ensureTopics([topic], options);
    const app = found(await this.deps.store.grantTopic(name, topic), name);
    await this.invalidate(name);
    return app;
  }

  async removeTopic(name: string, topic: string): Promise<AppRecord> {
    const app = found(await this.deps.store.revokeTopic(name, topic), name);
    await this.invalidate(name);
    return app;
  }

  async setQuotas(name: string, quotas: AppQuotas): Promise<AppRecord> {
    const app = found(await this.deps.store.setQuotas(name, quotas), name);
    await this.invalidate(name);
    return app;
  }

  getMessage(app: string, id: string): Promise<MessageView> {
    return this.deps.service.get(adminView(app), id);
  }

  cancelMessage(app: string, id: string): Promise<{ id: string; state: 'cancelled' }> {
    return this.deps.service.cancel(adminView(app), id);
  }

  async stats(): Promise<AppStats & { at: string; buckets: readonly DueBucket[] }> {
    const now = this.deps.clock.now();
    return {
      at: new Date(now).toISOString(),
      buckets: STATS_BUCKETS,
      ...(await this.deps.store.stats(now, STATS_BUCKETS)),
    };
  }

  private async invalidate(name: string): Promise<void> {
    await this.deps.directory.invalidate({
      app: name,
      tokenHashes: await this.deps.store.tokenHashes(name),
    });
  }
}

/** The identity the admin acts as to read or cancel an app's message: the app, with no topics. */
function adminView(app: string): AppIdentity {
  return { name: app, topics: new Set() };
}

/** Text Postgres cannot store as sent (NUL, lone surrogates): the request's fault, not a failed statement. */
function checkText(problems: ErrorDetail[], path: string, text: string): void {
  const problem = textProblem(text);
  if (problem !== null) problems.push({ path, message: problem });
}

function refuseIfAny(problems: readonly ErrorDetail[]): void {
  if (problems.length === 0) return;
  throw new HourglassError(
    'invalid_request',
    `invalid request: ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`,
    problems,
  );
}

function notFound(name: string): HourglassError {
  return new HourglassError('not_found', `no app "${name}"`);
}

function found<T>(value: T | null, name: string): T {
  if (value === null) throw notFound(name);
  return value;
}

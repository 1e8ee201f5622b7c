/**
 * The admin side of apps: creating, changing and deleting them, their tokens, topics, quotas,
 * delivery settings and signing secrets.
 */
import { randomBytes } from 'node:crypto';
import type {
  AppDeliveryPatch,
  AppPatch,
  AppQuotas,
  AppRecord,
  AppStats,
  AppStore,
  DueBucket,
  Publisher,
} from '@hourglass/core';
import {
  AddressPolicy,
  DEFAULT_MAX_TOPIC_PARTITIONS,
  HourglassError,
  NO_QUOTAS,
  newSigningSecret,
  textProblem,
  topicNameProblem,
} from '@hourglass/core';
import type { ErrorDetail } from '@hourglass/core';
import type { Clock } from '@hourglass/core';
import type { AppIdentity, AttemptView, MessageView } from './service';
import type { DbAppDirectory } from './apps';
import { tokenDigest } from './apps';
import type { AppDeliveryInput } from './app-delivery-input';
import { parseDeliveryPatch } from './app-delivery-input';
import type { AppRetentionInput } from './app-retention-input';
import { parseRetentionPatch } from './app-retention-input';
export type { AppRetentionInput, AppRetentionView } from './app-retention-input';
export { MAX_RETENTION_DAYS, retentionView } from './app-retention-input';
export type { AppDeliveryInput } from './app-delivery-input';
export { MAX_CALLBACK_HOSTS, MAX_HOST_NAME_LENGTH } from './app-delivery-input';

/** Tokens are 32 random bytes; the prefix makes a leaked one easy to recognise (secret scanners). */
export const TOKEN_PREFIX = 'hg_';

export function newToken(): string {
  return `${TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
}

/**
 * What the admin needs of {@link MessageService}: any app's message, by app and id. Narrower than
 * the service so that the admin side depends only on these operations.
 */
export interface AdminMessageOps {
  get(app: AppIdentity, id: string): Promise<MessageView>;
  cancel(app: AppIdentity, id: string): Promise<{ id: string; state: 'cancelled' }>;
  retry(app: AppIdentity, id: string): Promise<MessageView>;
  attempts(app: AppIdentity, id: string): Promise<AttemptView[]>;
}

export interface AppAdminDeps {
  store: AppStore;
  directory: DbAppDirectory;
  publisher: Publisher;
  service: AdminMessageOps;
  clock: Clock;
  /** Most partitions of a topic created through {@link AppAdmin.addTopic}. @default 64 */
  maxTopicPartitions?: number;
  /**
   * The SSRF guard applied to an alert URL with a literal address (`callbacks.allowNetworks`).
   * @default new AddressPolicy([]): public addresses only
   */
  callbackPolicy?: AddressPolicy;
}

/** {@link AppAdmin.updateApp}'s change: the app's own fields and, optionally, its delivery settings. */
export interface AppUpdate extends AppPatch {
  readonly delivery?: AppDeliveryInput;
  /** Retention overrides in days (issue 14). */
  readonly retention?: AppRetentionInput;
}

/** Default grace of a signing secret rotation: one day of callbacks carrying both signatures. */
export const DEFAULT_SECRET_GRACE_MS = 86_400_000;

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
 * of {@link AppAdmin.createApp} and {@link AppAdmin.rotateToken}; signing secrets only in that of
 * {@link AppAdmin.createApp} and {@link AppAdmin.rotateSigningSecret}.
 */
export class AppAdmin {
  private readonly callbackPolicy: AddressPolicy;

  constructor(private readonly deps: AppAdminDeps) {
    this.callbackPolicy = deps.callbackPolicy ?? new AddressPolicy([]);
  }

  listApps(): Promise<AppRecord[]> {
    return this.deps.store.listApps();
  }

  async getApp(name: string): Promise<AppRecord> {
    return found(await this.deps.store.getApp(name), name);
  }

  /**
   * Creates the app with a token and a signing secret, both returned this once. The secret is
   * stored right after the app (a failure between the two leaves an app without one, which gets
   * one at its first callback: see AppStore.signingSecrets; a rotation shows it).
   */
  async createApp(
    input: CreateAppInput,
  ): Promise<{ app: AppRecord; token: string; signingSecret: string }> {
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
        throw renamedTopicRefusal(error, 'topics');
      });
    }
    const token = newToken();
    const created = await this.deps.store.createApp(
      {
        name: input.name,
        description: input.description ?? '',
        topics: input.topics ?? [],
        quotas: { ...NO_QUOTAS, ...input.quotas },
      },
      tokenDigest(token),
      this.deps.clock.now(),
    );
    if (!created)
      throw new HourglassError('id_conflict', `app "${input.name}" already exists`, [
        { path: 'name', message: 'taken' },
      ]);
    const signingSecret = newSigningSecret(randomBytes);
    const app = found(
      await this.deps.store.rotateSigningSecret(
        created.name,
        signingSecret,
        this.deps.clock.now(),
        0,
      ),
      created.name,
    );
    await this.deps.directory.invalidate({ app: app.name, tokenHashes: [tokenDigest(token)] });
    return { app, token, signingSecret };
  }

  /**
   * Changes the description or the disabled flag, the delivery settings when `delivery` is given
   * and the retention overrides when `retention` is. Everything is validated before anything is
   * written.
   */
  async updateApp(name: string, update: AppUpdate): Promise<AppRecord> {
    const problems: ErrorDetail[] = [];
    if (update.description !== undefined) checkText(problems, 'description', update.description);
    const delivery =
      update.delivery === undefined
        ? undefined
        : parseDeliveryPatch(update.delivery, 'delivery/', problems, this.callbackPolicy);
    const retention =
      update.retention === undefined
        ? undefined
        : parseRetentionPatch(update.retention, 'retention/', problems);
    refuseIfAny(problems);
    const patch: AppPatch = {
      ...(update.description !== undefined ? { description: update.description } : {}),
      ...(update.disabled !== undefined ? { disabled: update.disabled } : {}),
    };
    let app: AppRecord | null = null;
    // The delivery settings first: Kafka may still refuse a topic they name.
    if (delivery !== undefined) app = await this.storeDelivery(name, delivery);
    if (retention !== undefined)
      app = found(await this.deps.store.setRetention(name, retention), name);
    if (Object.keys(patch).length > 0 || (delivery === undefined && retention === undefined))
      app = found(await this.deps.store.updateApp(name, patch), name);
    await this.invalidate(name);
    return found(app, name);
  }

  /**
   * Changes the app's delivery settings: absent fields stay, null clears. Refuses with
   * `invalid_request` (details at `delivery/...`) before anything is written. A dead-letter or
   * alert topic is created in Kafka when missing, as topics granted through the admin API are.
   */
  async setDelivery(name: string, input: AppDeliveryInput): Promise<AppRecord> {
    const problems: ErrorDetail[] = [];
    const patch = parseDeliveryPatch(input, 'delivery/', problems, this.callbackPolicy);
    refuseIfAny(problems);
    const app = await this.storeDelivery(name, patch);
    await this.invalidate(name);
    return app;
  }

  /**
   * Makes a new signing secret the app's, returned this once. Callbacks are signed with the old
   * one too for `graceMs` (0: not at all), so receivers can roll over.
   */
  async rotateSigningSecret(
    name: string,
    graceMs: number = DEFAULT_SECRET_GRACE_MS,
  ): Promise<{ app: AppRecord; signingSecret: string }> {
    if (!Number.isSafeInteger(graceMs) || graceMs < 0)
      throw new HourglassError('invalid_request', 'the grace must be a whole number of ms >= 0', [
        { path: 'graceSeconds', message: 'must be an integer >= 0' },
      ]);
    const signingSecret = newSigningSecret(randomBytes);
    const app = found(
      await this.deps.store.rotateSigningSecret(
        name,
        signingSecret,
        this.deps.clock.now(),
        graceMs,
      ),
      name,
    );
    await this.invalidate(name);
    return { app, signingSecret };
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

  /** Re-arms the failed targets of a failed message (409 `not_failed` otherwise). */
  retryMessage(app: string, id: string): Promise<MessageView> {
    return this.deps.service.retry(adminView(app), id);
  }

  messageAttempts(app: string, id: string): Promise<AttemptView[]> {
    return this.deps.service.attempts(adminView(app), id);
  }

  async stats(): Promise<AppStats & { at: string; buckets: readonly DueBucket[] }> {
    const now = this.deps.clock.now();
    return {
      at: new Date(now).toISOString(),
      buckets: STATS_BUCKETS,
      ...(await this.deps.store.stats(now, STATS_BUCKETS)),
    };
  }

  /** Creates the topics the settings name (dead letters, alerts), then stores the change. */
  private async storeDelivery(name: string, patch: AppDeliveryPatch): Promise<AppRecord> {
    await this.getApp(name);
    const topics: Array<[string, string | null | undefined]> = [
      ['delivery/deadLetterTopic', patch.deadLetterTopic],
      ['delivery/alerts/topic', patch.alerts?.topic],
    ];
    for (const [path, topic] of topics)
      if (typeof topic === 'string') await this.ensureTopic(topic, path);
    return found(await this.deps.store.setDeliveryConfig(name, patch), name);
  }

  /** Kafka's refusals name `topic`; in this body the topic is at `path`. */
  private async ensureTopic(topic: string, path: string): Promise<void> {
    await this.deps.publisher.ensureTopics([topic], {}).catch((error: unknown) => {
      throw renamedTopicRefusal(error, path);
    });
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

/** Kafka's refusal of a topic (details at `topic`) as the refusal of the field at `path`. */
function renamedTopicRefusal(error: unknown, path: string): unknown {
  return error instanceof HourglassError && error.code === 'invalid_request'
    ? new HourglassError(
        error.code,
        error.message,
        error.details?.map((d) => (d.path === 'topic' ? { ...d, path } : d)),
      )
    : error;
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

/**
 * Wires one node: config → adapters → engine → exporters. Nothing here decides behaviour; it only
 * connects parts and orders their start and stop.
 *
 * A start that fails part way (Postgres schema refused, a port taken, etcd down, ...) stops what it
 * had started, in the same order as {@link RunningNode.stop}, before it rejects: a caller that
 * catches the error (a test, a supervisor retrying in-process) is left with no pools, sockets,
 * timers or etcd lease behind.
 */
import { createServer } from 'node:net';
import { hostname } from 'node:os';
import type { Server } from 'node:http';
import type { HourglassConfig } from '@hourglass/config';
import {
  AppAdmin,
  CachedAppDelivery,
  DbAppDirectory,
  DelayEngine,
  EngineMetrics,
  MessageSearch,
  MessageService,
  SharedQuotaGate,
  StandaloneCoordinator,
} from '@hourglass/engine';
import { AddressPolicy, systemClock } from '@hourglass/core';
import { UndiciHttpCaller } from '@hourglass/http-callbacks';
import type { Logger, SlotCoordinator } from '@hourglass/core';
import { createGrpcServer } from '@hourglass/grpc-api';
import type { GrpcServer } from '@hourglass/grpc-api';
import { EtcdCoordinator } from '@hourglass/etcd';
import {
  adminClusterRouter,
  closeServer,
  createHttpApi,
  listen,
  standaloneClusterAdmin,
} from '@hourglass/http-api';
import type { ClusterAdmin, HttpApi } from '@hourglass/http-api';
import { KafkaPublisher } from '@hourglass/kafka';
import { checkSchema, PgAppStore, PgMessageStore } from '@hourglass/postgres';
import { RedisAdapter } from '@hourglass/redis';
import { createRetention } from './retention';
import { createSchedules } from './schedules';

export interface RunningNode {
  readonly id: string;
  readonly httpUrl: string;
  /** `host:port` of the gRPC exporter (hourglass.v1.Messages and grpc.health.v1.Health). */
  readonly grpcAddress: string;
  readonly engine: DelayEngine;
  /** Graceful stop: refuse new requests, hand slots off, finish in-flight firings, close clients. */
  stop(): Promise<void>;
}

/** A listener could not be opened; the message names the address and the config key to change. */
export class ListenError extends Error {
  constructor(
    readonly listener: 'HTTP' | 'gRPC',
    readonly host: string,
    readonly port: number,
    cause: unknown,
  ) {
    const key = listener === 'HTTP' ? 'http' : 'grpc';
    const env = `HOURGLASS__${key.toUpperCase()}__PORT`;
    const detail = cause instanceof Error ? cause.message : String(cause);
    super(
      isAddressInUse(cause)
        ? `cannot listen for ${listener} on ${host}:${port}: port ${port} is already in use. ` +
            `Stop the process that holds it, or give this node another ${key}.port (${env}).`
        : `cannot listen for ${listener} on ${host}:${port} (${key}.host, ${key}.port): ${detail}`,
    );
    this.name = 'ListenError';
    this.cause = cause;
  }
}

function isAddressInUse(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  return (
    (error as { code?: unknown }).code === 'EADDRINUSE' ||
    /EADDRINUSE|address already in use/i.test(error.message)
  );
}

/**
 * Fails fast when a configured port is taken, before the node touches Postgres, Kafka or etcd
 * (joining etcd only to leave again would make the running nodes rebalance twice). The real listen
 * still reports a port lost in between. Port 0 (any free port) is not probed.
 */
function probePort(listener: 'HTTP' | 'gRPC', host: string, port: number): Promise<void> {
  if (port === 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', (error) => reject(new ListenError(listener, host, port, error)));
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve()));
  });
}

export function nodeId(config: HourglassConfig): string {
  return config.node.id || `${hostname()}-${config.http.port}`;
}

export async function startNode(config: HourglassConfig, logger: Logger): Promise<RunningNode> {
  const id = nodeId(config);
  if (
    config.http.port !== 0 &&
    config.http.port === config.grpc.port &&
    config.http.host === config.grpc.host
  ) {
    throw new Error(
      `http.port and grpc.port are both ${config.http.port} on ${config.http.host}: give them different ports`,
    );
  }
  await probePort('HTTP', config.http.host, config.http.port);
  await probePort('gRPC', config.grpc.host, config.grpc.port);

  // Everything below is created before it is started, and `release` stops whatever exists, so the
  // failure path and stop() are one and the same.
  const store = new PgMessageStore({
    connectionString: config.postgres.url,
    poolSize: config.postgres.poolSize,
    statementTimeoutMs: config.postgres.statementTimeoutMs,
  });
  // Apps, tokens and topics (issue #7): Postgres is the truth, Redis the shared cache and quota counters.
  const appStore = new PgAppStore({
    connectionString: config.postgres.url,
    statementTimeoutMs: config.postgres.statementTimeoutMs,
  });
  const publisher = new KafkaPublisher({
    brokers: config.kafka.brokers,
    clientId: `${config.kafka.clientId}-${id}`,
    topicPartitions: config.kafka.topicPartitions,
    requestTimeoutMs: config.delivery.requestTimeoutMs,
    maxRequestBytes: config.delivery.maxRequestBytes,
    maxRequestRecords: config.core.fireBatchSize,
  });
  const metrics = new EngineMetrics({ defaultMetrics: true });
  // HTTP callbacks (docs/callbacks.md): the SSRF guard's policy serves the accept-time check of
  // literal addresses and the caller's check of the addresses it connects to.
  const callbackPolicy = new AddressPolicy(config.callbacks.allowNetworks);
  const httpCaller = new UndiciHttpCaller({
    policy: callbackPolicy,
    maxConnectionsPerHost: config.callbacks.maxConnectionsPerHost,
    maxInFlightPerHost: config.callbacks.maxInFlightPerHost,
    maxInFlightPerApp: config.callbacks.maxInFlightPerApp,
    // The engine's own bound (maxMessagesInFlight) is what holds callbacks back; the caller's
    // queue only has to hold what the engine lets through.
    maxQueuedPerHost: config.callbacks.maxMessagesInFlight * config.limits.maxTargets,
  });
  const appDelivery = new CachedAppDelivery(appStore, systemClock);
  let redis: RedisAdapter | undefined;
  let coordinator: SlotCoordinator | undefined;
  let etcdCoordinator: EtcdCoordinator | undefined;
  let http: HttpApi | undefined;
  let server: Server | undefined;
  let grpc: GrpcServer | undefined;
  let httpUrl = config.http.advertisedUrl || `http://${config.http.host}:${config.http.port}`;
  let grpcAddress = `${config.grpc.host}:${config.grpc.port}`;

  const engine = new DelayEngine(
    {
      store,
      delivery: publisher,
      clock: systemClock,
      logger,
      metrics,
      ownershipConfirmed: () => coordinator?.ownershipConfirmed() ?? false,
      onSlotsFenced: (slots) => coordinator?.slotsFenced?.(slots),
      http: httpCaller,
      appDelivery,
    },
    {
      horizonMs: config.core.horizonMinutes * 60_000,
      loaderIntervalMs: config.core.loaderIntervalMs,
      hintDrainIntervalMs: config.core.hintDrainIntervalMs,
      fireBatchSize: config.core.fireBatchSize,
      fireConcurrency: config.core.fireConcurrency,
      claimAheadMs: config.core.claimAheadMs,
      maxAttempts: config.delivery.maxAttempts,
      retryInitialMs: config.delivery.retryInitialMs,
      retryMaxMs: config.delivery.retryMaxMs,
      probeMaxMs: config.delivery.probeMaxMs,
      sweepIntervalMs: config.core.sweepIntervalMs,
      sweepGraceMs: config.core.sweepGraceMs,
      overdueLoadLimit: config.core.overdueLoadLimit,
      groupCommit: config.postgres.groupCommit,
      maxTargetMessagesInFlight: config.callbacks.maxMessagesInFlight,
    },
  );

  // Recurring schedules (docs/adr/0009-materialising-occurrences.md): a store of their own.
  const nodeSchedules = createSchedules(config, {
    slots: engine,
    clock: systemClock,
    logger,
    metrics,
  });
  // Retention of finished messages (issue 14): removes rows of the slots this engine owns.
  const retention = createRetention(config, {
    ownedSlots: () => engine.ownedSlots(),
    clock: systemClock,
    logger,
    metrics,
  });

  /**
   * Stops whatever was started, in dependency order. `strict` (stop()) lets the first failure
   * propagate; otherwise (a failed start) every step runs and failures are only logged, so one
   * stuck client does not leave the others open.
   */
  const release = async (strict: boolean): Promise<void> => {
    const step = async (name: string, fn: () => Promise<unknown>): Promise<void> => {
      if (strict) {
        await fn();
        return;
      }
      await fn().catch((error: unknown) =>
        logger.warn({ err: error, step: name }, 'cleanup after a failed start: step failed'),
      );
    };
    http?.setDraining(true);
    // Both exporters drain together: each refuses new calls and waits for those in flight.
    await Promise.all([
      step('http', async () => (server ? closeServer(server) : undefined)),
      step('grpc', async () => grpc?.stop()),
    ]);
    await step('retention', () => retention.stop());
    await step('schedules', () => nodeSchedules.stop());
    await step('coordinator', async () => coordinator?.stop());
    await step('engine', () => engine.stop());
    await step('callbacks', () => httpCaller.stop());
    await step('kafka', () => publisher.stop());
    await Promise.all([
      step('postgres', () => store.stop()),
      step('postgres-apps', () => appStore.stop()),
      step('postgres-schedules', () => nodeSchedules.store.stop()),
      step('redis', async () => redis?.stop()),
    ]);
  };

  try {
    // Refuses a schema this version cannot migrate or use (see libs/postgres/src/schema-check.ts)
    // with an error that says what to do, before migrate would fail on it less clearly.
    await checkSchema(config.postgres.url, 'before-migrate');
    await store.migrate(config.cluster.slots);
    await checkSchema(config.postgres.url, 'after-migrate');
    await store.start();
    await appStore.start();
    await nodeSchedules.store.start();
    const liveRedis = new RedisAdapter({
      url: config.redis.url,
      keyPrefix: config.redis.keyPrefix,
      clusterId: await appStore.clusterId(),
      onConnectionChange: (up, error) =>
        up
          ? logger.info({}, 'redis connected')
          : logger.warn({ err: (error as Error | undefined)?.message }, 'redis unavailable'),
    });
    redis = liveRedis;
    // An admin change of an app (its signing secret, say) reaches every node's delivery cache.
    liveRedis.onInvalidate((change) => {
      if (change.app !== undefined) appDelivery.forget(change.app);
    });
    await liveRedis.start();
    await publisher.start();
    if (config.kafka.createTopics) {
      const topics = config.apps.flatMap((app) => app.topics);
      await publisher.ensureTopics(topics).catch((error: unknown) => {
        logger.warn(
          { err: error, topics },
          'could not create app topics (is Kafka up?); continuing',
        );
      });
    }

    // 'etcd': lease membership and fenced slot ownership (docs/cluster.md); 'standalone': this
    // node owns every slot. The coordinator also serves the admin cluster endpoints.
    let cluster: ClusterAdmin;
    if (config.cluster.mode === 'etcd') {
      const etcd = new EtcdCoordinator(engine, {
        endpoints: config.etcd.endpoints,
        prefix: config.cluster.etcdPrefix,
        nodeId: id,
        // Registered before the servers listen, so a port 0 shows as configured (set advertisedUrl).
        httpUrl,
        grpcAddress,
        slotCount: config.cluster.slots,
        leaseTtlSeconds: config.cluster.leaseTtlSeconds,
        rebalanceDelayMs: config.cluster.rebalanceDelayMs,
        logger,
      });
      coordinator = etcd;
      etcdCoordinator = etcd;
      cluster = etcd;
    } else {
      coordinator = new StandaloneCoordinator(engine, config.cluster.slots);
      cluster = standaloneClusterAdmin({
        id,
        httpUrl: () => httpUrl,
        grpcAddress: () => grpcAddress,
        startedAt: new Date().toISOString(),
        slotCount: config.cluster.slots,
        ownedSlots: () => engine.ownedSlots(),
      });
    }
    await engine.start();
    await retention.start();

    const service = new MessageService(engine, store, systemClock, metrics, {
      slotCount: config.cluster.slots,
      limits: {
        maxPayloadBytes: config.limits.maxPayloadBytes,
        maxDelayMs: config.limits.maxDelayDays * 86_400_000,
        maxBatchSize: config.limits.maxBatchSize,
        maxPayloadDepth: config.limits.maxPayloadDepth,
        targets: {
          maxTargets: config.limits.maxTargets,
          defaultTimeoutMs: config.callbacks.defaultTimeoutMs,
          policy: callbackPolicy,
        },
        retryBase: config.callbacks.retry,
      },
      quotas: new SharedQuotaGate({
        backend: liveRedis,
        store: appStore,
        clock: systemClock,
        logger,
        failMode: config.quotas.failMode,
      }),
    });
    const apps = new DbAppDirectory({
      store: appStore,
      cache: liveRedis,
      adminToken: config.auth.adminToken,
      clock: systemClock,
      logger,
    });
    await apps.bootstrap(config.apps);
    const admin = new AppAdmin({
      store: appStore,
      directory: apps,
      publisher,
      service,
      clock: systemClock,
      maxTopicPartitions: config.limits.maxTopicPartitions,
      callbackPolicy,
    });
    const schedules = await nodeSchedules.start(service.limits);
    http = createHttpApi({
      service,
      schedules,
      apps,
      logger,
      metricsRegistry: metrics.registry,
      maxRequestBytes: config.limits.maxRequestBytes,
      admin,
      search: new MessageSearch(engine, store, systemClock, metrics, config.search),
      readiness: [
        { name: 'postgres', check: () => store.ping() },
        { name: 'kafka', check: () => publisher.ping() },
      ],
      extraRoutes: (app) => app.use(adminClusterRouter({ cluster, apps })),
    });
    try {
      server = await listen(http.handler, config.http.host, config.http.port);
    } catch (error) {
      throw new ListenError('HTTP', config.http.host, config.http.port, error);
    }
    const address = server.address();
    const boundPort = typeof address === 'object' && address ? address.port : config.http.port;
    httpUrl = config.http.advertisedUrl || `http://${config.http.host}:${boundPort}`;
    grpc = createGrpcServer({
      service,
      apps,
      logger,
      maxRequestBytes: config.limits.maxRequestBytes,
    });
    let grpcPort: number;
    try {
      grpcPort = await grpc.start(config.grpc.host, config.grpc.port);
    } catch (error) {
      throw new ListenError('gRPC', config.grpc.host, config.grpc.port, error);
    }
    grpcAddress = `${config.grpc.host}:${grpcPort}`;
    // Joined last: a lease of 2 s must not expire while the rest of a CPU-starved start runs.
    if (etcdCoordinator) {
      const revision = await etcdCoordinator.currentRevision();
      const forgotten = await store.forgetOwnerRevisionsAbove(revision);
      if (forgotten > 0)
        logger.warn(
          { slots: forgotten, revision },
          'the store had slot owner revisions from an earlier history of etcd (wiped or restored?); forgot them',
        );
    }
    await coordinator.start();
  } catch (error) {
    logger.error(
      { node: id, reason: error instanceof Error ? error.message : String(error) },
      'start failed; stopping what was started',
    );
    await release(false);
    throw error;
  }
  logger.info(
    { node: id, http: httpUrl, grpc: grpcAddress, slots: config.cluster.slots },
    'node started',
  );

  let stopping: Promise<void> | undefined;
  return {
    id,
    httpUrl,
    grpcAddress,
    engine,
    stop() {
      stopping ??= (async () => {
        await release(true);
        logger.info({ node: id }, 'node stopped');
      })();
      return stopping;
    },
  };
}

/**
 * Wires one node: config → adapters → engine → exporters. Nothing here decides behaviour; it only
 * connects parts and orders their start and stop.
 */
import { hostname } from 'node:os';
import type { Server } from 'node:http';
import type { HourglassConfig } from '@hourglass/config';
import { AppAdmin, DbAppDirectory, DelayEngine, EngineMetrics, MessageService, SharedQuotaGate, StandaloneCoordinator, systemClock } from '@hourglass/engine';
import type { Logger, SlotCoordinator } from '@hourglass/engine';
import { createGrpcServer } from '@hourglass/grpc-api';
import { EtcdCoordinator } from '@hourglass/etcd';
import { adminClusterRouter, closeServer, createHttpApi, listen, standaloneClusterAdmin } from '@hourglass/http-api';
import type { ClusterAdmin } from '@hourglass/http-api';
import { KafkaPublisher } from '@hourglass/kafka';
import { PgAppStore, PgMessageStore } from '@hourglass/postgres';
import { RedisAdapter } from '@hourglass/redis';

export interface RunningNode {
  readonly id: string;
  readonly httpUrl: string;
  /** `host:port` of the gRPC exporter (hourglass.v1.Messages and grpc.health.v1.Health). */
  readonly grpcAddress: string;
  readonly engine: DelayEngine;
  /** Graceful stop: refuse new requests, hand slots off, finish in-flight firings, close clients. */
  stop(): Promise<void>;
}

export function nodeId(config: HourglassConfig): string {
  return config.node.id || `${hostname()}-${config.http.port}`;
}

export async function startNode(config: HourglassConfig, logger: Logger): Promise<RunningNode> {
  const id = nodeId(config);
  const store = new PgMessageStore({
    connectionString: config.postgres.url,
    poolSize: config.postgres.poolSize,
    statementTimeoutMs: config.postgres.statementTimeoutMs,
  });
  const publisher = new KafkaPublisher({
    brokers: config.kafka.brokers,
    clientId: `${config.kafka.clientId}-${id}`,
    topicPartitions: config.kafka.topicPartitions,
  });
  const metrics = new EngineMetrics({ defaultMetrics: true });

  await store.start();
  await store.migrate(config.cluster.slots);
  // Apps, tokens and topics (issue #7): Postgres is the truth, Redis the shared cache and quota counters.
  const appStore = new PgAppStore({ connectionString: config.postgres.url, statementTimeoutMs: config.postgres.statementTimeoutMs });
  await appStore.start();
  const redis = new RedisAdapter({
    url: config.redis.url,
    keyPrefix: config.redis.keyPrefix,
    clusterId: await appStore.clusterId(),
    onConnectionChange: (up, error) =>
      up ? logger.info({}, 'redis connected') : logger.warn({ err: (error as Error | undefined)?.message }, 'redis unavailable'),
  });
  await redis.start();
  await publisher.start();
  if (config.kafka.createTopics) {
    const topics = config.apps.flatMap((app) => app.topics);
    await publisher.ensureTopics(topics).catch((error: unknown) => {
      logger.warn({ err: error, topics }, 'could not create app topics (is Kafka up?); continuing');
    });
  }

  let coordinator: SlotCoordinator | undefined;
  const engine = new DelayEngine(
    { store, publisher, clock: systemClock, logger, metrics, canFire: () => coordinator?.canFire() ?? false },
    {
      horizonMs: config.core.horizonMinutes * 60_000,
      loaderIntervalMs: config.core.loaderIntervalMs,
      hintDrainIntervalMs: config.core.hintDrainIntervalMs,
      fireBatchSize: config.core.fireBatchSize,
      fireConcurrency: config.core.fireConcurrency,
      maxAttempts: config.delivery.maxAttempts,
      retryInitialMs: config.delivery.retryInitialMs,
      retryMaxMs: config.delivery.retryMaxMs,
    },
  );
  // 'etcd': lease membership and fenced slot ownership (docs/cluster.md); 'standalone': this node
  // owns every slot. The coordinator also serves the admin cluster endpoints.
  let cluster: ClusterAdmin;
  if (config.cluster.mode === 'etcd') {
    const etcd = new EtcdCoordinator(engine, {
      endpoints: config.etcd.endpoints,
      prefix: config.cluster.etcdPrefix,
      nodeId: id,
      // Registered before the servers listen, so a port 0 shows as configured (set advertisedUrl).
      httpUrl: config.http.advertisedUrl || `http://${config.http.host}:${config.http.port}`,
      grpcAddress: `${config.grpc.host}:${config.grpc.port}`,
      slotCount: config.cluster.slots,
      leaseTtlSeconds: config.cluster.leaseTtlSeconds,
      rebalanceDelayMs: config.cluster.rebalanceDelayMs,
      logger,
    });
    coordinator = etcd;
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
  await coordinator.start();

  const service = new MessageService(engine, store, systemClock, metrics, {
    slotCount: config.cluster.slots,
    limits: {
      maxPayloadBytes: config.limits.maxPayloadBytes,
      maxDelayMs: config.limits.maxDelayDays * 86_400_000,
      maxBatchSize: config.limits.maxBatchSize,
    },
    quotas: new SharedQuotaGate({ backend: redis, store: appStore, clock: systemClock, logger, failMode: config.quotas.failMode }),
  });
  const apps = new DbAppDirectory({ store: appStore, cache: redis, adminToken: config.auth.adminToken, clock: systemClock, logger });
  await apps.bootstrap(config.apps);
  const admin = new AppAdmin({ store: appStore, directory: apps, publisher, service, clock: systemClock });
  const http = createHttpApi({
    service,
    apps,
    logger,
    metricsRegistry: metrics.registry,
    maxRequestBytes: config.limits.maxRequestBytes,
    admin,
    readiness: [
      { name: 'postgres', check: () => store.ping() },
      { name: 'kafka', check: () => publisher.ping() },
    ],
    extraRoutes: (app) => app.use(adminClusterRouter({ cluster, apps })),
  });
  const server: Server = await listen(http.app, config.http.host, config.http.port);
  const address = server.address();
  const boundPort = typeof address === 'object' && address ? address.port : config.http.port;
  const httpUrl = config.http.advertisedUrl || `http://${config.http.host}:${boundPort}`;
  const grpc = createGrpcServer({ service, apps, logger, maxRequestBytes: config.limits.maxRequestBytes });
  const grpcPort = await grpc.start(config.grpc.host, config.grpc.port);
  const grpcAddress = `${config.grpc.host}:${grpcPort}`;
  logger.info({ node: id, http: httpUrl, grpc: grpcAddress, slots: config.cluster.slots }, 'node started');

  let stopping: Promise<void> | undefined;
  return {
    id,
    httpUrl,
    grpcAddress,
    engine,
    stop() {
      stopping ??= (async () => {
        http.setDraining(true);
        // Both exporters drain together: each refuses new calls and waits for those in flight.
        await Promise.all([closeServer(server), grpc.stop()]);
        await coordinator.stop();
        await engine.stop();
        await publisher.stop();
        await Promise.all([store.stop(), appStore.stop(), redis.stop()]);
        logger.info({ node: id }, 'node stopped');
      })();
      return stopping;
    },
  };
}

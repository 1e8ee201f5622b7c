/**
 * Wires one node: config → adapters → engine → exporters. Nothing here decides behaviour; it only
 * connects parts and orders their start and stop.
 */
import { hostname } from 'node:os';
import type { Server } from 'node:http';
import type { HourglassConfig } from '@hourglass/config';
import { DelayEngine, EngineMetrics, MessageService, StandaloneCoordinator, StaticAppDirectory, systemClock } from '@hourglass/engine';
import type { Logger, SlotCoordinator } from '@hourglass/engine';
import { createGrpcServer } from '@hourglass/grpc-api';
import { closeServer, createHttpApi, listen } from '@hourglass/http-api';
import { KafkaPublisher } from '@hourglass/kafka';
import { PgMessageStore } from '@hourglass/postgres';

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
  coordinator = new StandaloneCoordinator(engine, config.cluster.slots);
  await engine.start();
  await coordinator.start();

  const service = new MessageService(engine, store, systemClock, metrics, {
    slotCount: config.cluster.slots,
    limits: {
      maxPayloadBytes: config.limits.maxPayloadBytes,
      maxDelayMs: config.limits.maxDelayDays * 86_400_000,
      maxBatchSize: config.limits.maxBatchSize,
    },
  });
  const apps = new StaticAppDirectory(config.apps, config.auth.adminToken);
  const http = createHttpApi({
    service,
    apps,
    logger,
    metricsRegistry: metrics.registry,
    maxRequestBytes: config.limits.maxRequestBytes,
    readiness: [
      { name: 'postgres', check: () => store.ping() },
      { name: 'kafka', check: () => publisher.ping() },
    ],
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
        await store.stop();
        logger.info({ node: id }, 'node stopped');
      })();
      return stopping;
    },
  };
}

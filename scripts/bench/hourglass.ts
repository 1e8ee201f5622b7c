/**
 * Hourglass under test: nodes in their own processes (`node --require tsx/cjs
 * apps/node/src/main.ts`), so the bench's own load generator and Kafka consumer do not share an
 * event loop with the node, and the node's RSS and CPU profile are its own.
 *
 * - single node: `cluster.mode: standalone`, a fresh Postgres schema, a fresh topic.
 * - 3-node cluster: three nodes with `cluster.mode: etcd` on one schema and an etcd prefix of
 *   their own; requests are spread round-robin. It counts as available only when the nodes split
 *   the slots between them (their `hourglass_owned_slots` add up to the slot count).
 *
 * Deliveries are measured at a real kafkajs consumer in the bench process; a message's run and
 * number travel in its id (`r<run>-<n>`), its due time in the `hourglass-deliver-at` header.
 */
import { randomUUID } from 'node:crypto';
import type { Consumer } from 'kafkajs';
import { HourglassClient } from '@hourglass/client';
import {
  createTestDatabase,
  createTopics,
  deleteTopics,
  kafkaClient,
  randomId,
  randomTopicName,
  serviceUrls,
} from '@hourglass/testkit';
import type { TestDatabase } from '@hourglass/testkit';
import pg from 'pg';
import { freePort } from '../../apps/node/test/support/harness';
import type { BenchMessage, BenchSystem } from './common';
import { bounded, sleep } from './common';
import type { FireStages, GcMemory } from './node-process';
import { HttpClient, NodeProcess, scrapeFireStages, scrapeMetrics } from './node-process';

export type { FireStages, GcMemory } from './node-process';
export { scrapeFireStages, scrapeMetrics } from './node-process';

const SLOTS = 256;
/** Every node of the bench uses these partitions; the consumer reads them all. */
const PARTITIONS = 4;

export interface HourglassOptions {
  nodes: 1 | 3;
  /** Write a V8 CPU profile of each node into this folder (node --cpu-prof). */
  cpuProfDir?: string;
  /** Extra config layered over the defaults, e.g. `{ core: { fireConcurrency: 8 } }`. */
  config?: Record<string, unknown>;
  /**
   * Start the kafkajs consumer that measures Kafka deliveries. @default true; the callback
   * scenario turns it off (its deliveries are HTTP requests, measured at its receivers).
   */
  consumer?: boolean;
}

export class HourglassSystem implements BenchSystem {
  readonly system = 'Hourglass';
  readonly variant: string;
  durability = 'Postgres commit (fsync) before 201';
  onDeliver: BenchSystem['onDeliver'] = () => undefined;

  private readonly token = `bench-${randomUUID()}`;
  private readonly topic = randomTopicName('bench');
  private readonly http = new HttpClient();
  private db: TestDatabase | undefined;
  private nodes: NodeProcess[] = [];
  /** One SDK client per node over its gRPC listener, made on the first gRPC call. */
  private grpcClients: HourglassClient[] | undefined;
  private nextGrpc = 0;
  private consumer: Consumer | undefined;
  private nextNode = 0;
  private stopped: Promise<void> | undefined;

  constructor(private readonly options: HourglassOptions) {
    this.variant = options.nodes === 1 ? 'single node' : '3-node cluster (etcd)';
  }

  /** The fire path's time per stage so far, summed over the nodes (a profile of the fire path). */
  fireStages(): Promise<FireStages> {
    return scrapeFireStages(this.nodes.map((node) => node.url));
  }

  /** What the nodes printed last (for diagnosing a bad run). */
  get nodeOutput(): string {
    return this.nodes.map((node) => node.lastOutput).join('\n');
  }

  /** The nodes' HTTP base URLs (the retention bench calls the admin API). */
  get nodeUrls(): string[] {
    return this.nodes.map((node) => node.url);
  }

  /** Pids of the node processes (for profiles and RSS). */
  get pids(): number[] {
    return this.nodes.map((node) => node.pid ?? 0);
  }

  async start(): Promise<void> {
    const urls = serviceUrls();
    this.db = await createTestDatabase();
    await createTopics(urls.kafkaBrokers, [this.topic], PARTITIONS);
    this.durability = await postgresDurability(this.db.connectionString);
    const etcdPrefix = `/bench-${randomId()}`;
    for (let i = 0; i < this.options.nodes; i++) {
      const clustered = this.options.nodes > 1;
      const execArgv = this.options.cpuProfDir
        ? ['--cpu-prof', `--cpu-prof-dir=${this.options.cpuProfDir}`]
        : [];
      const node = new NodeProcess(
        {
          node: { id: `bench-${i}-${randomId()}` },
          grpc: { host: '127.0.0.1', port: await freePort() },
          postgres: { url: this.db.connectionString },
          kafka: { brokers: urls.kafkaBrokers, createTopics: false, topicPartitions: PARTITIONS },
          etcd: { endpoints: [urls.etcd] },
          cluster: { slots: SLOTS, mode: clustered ? 'etcd' : 'standalone', etcdPrefix },
          apps: [{ name: 'bench', token: this.token, topics: [this.topic] }],
          log: { level: 'warn' },
          ...this.options.config,
        },
        await freePort(),
        execArgv,
      );
      this.nodes.push(node);
    }
    await Promise.all(this.nodes.map((node) => node.start(60_000)));
    if (this.options.nodes > 1) await this.waitForSlotSplit();
    if (this.options.consumer !== false) await this.startConsumer(urls.kafkaBrokers);
  }

  /**
   * A cluster is only a cluster if its nodes own disjoint shares of the slots. Nodes that ignore
   * `cluster.mode: etcd` each own every slot, which would double-fire: refuse to measure that.
   */
  private async waitForSlotSplit(): Promise<void> {
    const deadline = Date.now() + 30_000;
    let owned: number[] = [];
    while (Date.now() < deadline) {
      owned = await Promise.all(
        this.nodes.map(
          async (node) => (await scrapeMetrics(node.url)).get('hourglass_owned_slots') ?? 0,
        ),
      );
      const sum = owned.reduce((a, b) => a + b, 0);
      if (sum === SLOTS && owned.every((count) => count > 0)) return;
      if (owned.every((count) => count === SLOTS)) break; // each runs standalone
      await sleep(250);
    }
    throw new Error(
      `not available: the 3 nodes did not split the ${SLOTS} slots (owned: ${owned.join('/')}); ` +
        'cluster.mode=etcd does not seem to be wired into the node yet',
    );
  }

  private async startConsumer(brokers: string[]): Promise<void> {
    const consumer = kafkaClient(brokers, 'hourglass-bench').consumer({
      groupId: `bench-${randomId()}`,
      allowAutoTopicCreation: false,
      maxWaitTimeInMs: 100,
      minBytes: 1,
    });
    this.consumer = consumer;
    const joined = new Promise<void>((resolve) => {
      consumer.on(consumer.events.GROUP_JOIN, (event) => {
        if ((event.payload.memberAssignment[this.topic]?.length ?? 0) > 0) resolve();
      });
    });
    await consumer.connect();
    await consumer.subscribe({ topics: [this.topic], fromBeginning: true });
    await consumer.run({
      partitionsConsumedConcurrently: PARTITIONS,
      eachBatch: ({ batch }) => {
        const receivedMs = Date.now();
        for (const message of batch.messages) {
          const headers = message.headers ?? {};
          const id = String(headers['hourglass-id'] ?? '');
          const dueMs = Number(String(headers['hourglass-deliver-at'] ?? 'NaN'));
          const dash = id.indexOf('-');
          this.onDeliver(Number(id.slice(1, dash)), Number(id.slice(dash + 1)), dueMs, receivedMs);
        }
        return Promise.resolve();
      },
    });
    await bounded(joined, 30_000, 'joining the Kafka consumer group');
  }

  private pickNode(): NodeProcess {
    const node = this.nodes[this.nextNode++ % this.nodes.length];
    if (!node) throw new Error('Hourglass is not started');
    return node;
  }

  private wire(run: number, message: BenchMessage): Record<string, unknown> {
    return {
      id: `r${run}-${message.n}`,
      topic: this.topic,
      payload: { n: message.n },
      deliverAt: message.dueMs,
    };
  }

  async scheduleBatch(run: number, messages: readonly BenchMessage[]): Promise<void> {
    await this.postBatch(messages.map((message) => this.wire(run, message)));
  }

  /**
   * One `POST /v1/messages/batch` of messages as the API takes them (≤ 1000; e.g. with `callback`
   * instead of `topic`); throws unless every one was accepted.
   */
  async postBatch(messages: readonly Record<string, unknown>[]): Promise<void> {
    const response = await this.http.post(this.pickNode().url, '/v1/messages/batch', this.token, {
      messages,
    });
    if (response.status !== 200)
      throw new Error(`batch: HTTP ${response.status} ${response.text.slice(0, 200)}`);
    const body = JSON.parse(response.text) as { results: { status: number }[] };
    const bad = body.results.find((result) => result.status !== 201 && result.status !== 200);
    if (bad)
      throw new Error(`batch: a message got ${bad.status}: ${JSON.stringify(bad).slice(0, 300)}`);
  }

  /** The first node's /metrics. */
  metrics(): Promise<Map<string, number>> {
    const node = this.nodes[0];
    if (!node) throw new Error('Hourglass is not started');
    return scrapeMetrics(node.url);
  }

  async scheduleOne(run: number, message: BenchMessage): Promise<void> {
    const response = await this.http.post(
      this.pickNode().url,
      '/v1/messages',
      this.token,
      this.wire(run, message),
    );
    if (response.status !== 201 && response.status !== 200)
      throw new Error(`single: HTTP ${response.status} ${response.text.slice(0, 200)}`);
  }

  /**
   * One single add through gRPC (`hourglass.v1.Messages/Schedule`), with the SDK's gRPC transport
   * as an application would use it (`new HourglassClient({ grpc: 'host:port' })`: one HTTP/2
   * channel per node, calls multiplexed on it), round-robin over the nodes like the HTTP adds.
   * Retries are off so a failure counts, as it does over HTTP.
   */
  async scheduleOneGrpc(run: number, message: BenchMessage): Promise<void> {
    this.grpcClients ??= this.nodes.map((node) => {
      if (!node.grpcAddress) throw new Error('the node has no gRPC address');
      return new HourglassClient({ grpc: node.grpcAddress }, { token: this.token, retries: 0 });
    });
    const client = this.grpcClients[this.nextGrpc++ % this.grpcClients.length];
    if (!client) throw new Error('Hourglass is not started');
    await client.schedule({
      id: `r${run}-${message.n}`,
      topic: this.topic,
      payload: { n: message.n },
      deliverAt: message.dueMs,
    });
  }

  /** The first node's memory right after forced full GCs (live memory, without garbage). */
  gcMemory(): Promise<GcMemory> {
    const node = this.nodes[0];
    if (!node) throw new Error('Hourglass is not started');
    return node.gcMemory();
  }

  async memory(): Promise<{ rssBytes: number; heapUsedBytes: number; held: number }> {
    const node = this.nodes[0];
    if (!node) throw new Error('Hourglass is not started');
    const metrics = await scrapeMetrics(node.url);
    // The node registers prom-client's default metrics with the prefix `hourglass_process_`.
    const pick = (name: string): number =>
      metrics.get(`hourglass_process_${name}`) ??
      metrics.get(`hourglass_${name}`) ??
      metrics.get(name) ??
      Number.NaN;
    return {
      rssBytes: pick('process_resident_memory_bytes'),
      heapUsedBytes: pick('nodejs_heap_size_used_bytes'),
      held: pick('wheel_size'),
    };
  }

  /** The schema's connection string (scenario 5 fills the table directly). */
  get connectionString(): string {
    if (!this.db) throw new Error('Hourglass is not started');
    return this.db.connectionString;
  }

  stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.http.close();
      for (const client of this.grpcClients ?? []) client.close();
      await this.consumer?.disconnect().catch(() => undefined);
      // SIGTERM: graceful, so a --cpu-prof profile is written on exit. Bounded: a node that hangs
      // is killed.
      await Promise.all(this.nodes.map((node) => node.stop()));
      await deleteTopics(serviceUrls().kafkaBrokers, [this.topic]).catch(() => undefined);
      await this.db?.drop().catch(() => undefined);
    })();
    return this.stopped;
  }
}

/** What a Postgres commit survives on this server, from its live settings. */
export async function postgresDurability(connectionString: string): Promise<string> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    const { rows } = await client.query<{ fsync: string; sync: string }>(
      "SELECT current_setting('fsync') AS fsync, current_setting('synchronous_commit') AS sync",
    );
    const row = rows[0];
    return `Postgres commit (fsync=${row?.fsync}, synchronous_commit=${row?.sync})`;
  } finally {
    await client.end();
  }
}

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
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Consumer } from 'kafkajs';
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
import { stringify } from 'yaml';
import { freePort } from '../../apps/node/test/support/harness';
import type { BenchMessage, BenchSystem } from './common';
import { bounded, sleep } from './common';

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

const repoRoot = resolve(__dirname, '../..');

/** What scripts/bench/gc-on-signal.ts prints after a forced GC: `<marker> <n> <memoryUsage JSON>`. */
const GC_REPORT = /^hourglass-bench-gc (\d+) (\{.*\})$/;

/** The node's memory right after forced full GCs (process.memoryUsage(), bytes). */
export interface GcMemory {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

/**
 * One node process: `node [--cpu-prof] --expose-gc --require tsx/cjs --require
 * scripts/bench/gc-on-signal.ts apps/node/src/main.ts` with a YAML file layered over
 * config/default.yaml. Like the test harness's ChildNode, but it can pass V8 flags (`--cpu-prof`
 * is not allowed in NODE_OPTIONS). The GC hook only acts on SIGUSR2 ({@link NodeProcess.gcMemory}).
 */
class NodeProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<void> | undefined;
  private output = '';
  private stderrLine = '';
  private readonly gcReports = new Map<number, GcMemory>();
  private gcRequests = 0;
  readonly url: string;

  constructor(
    private readonly config: Record<string, unknown>,
    readonly port: number,
    private readonly execArgv: string[],
  ) {
    this.url = `http://127.0.0.1:${port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** The last few kB the node printed (warnings and errors: the bench runs it at `warn`). */
  get lastOutput(): string {
    return this.output;
  }

  async start(timeoutMs: number): Promise<void> {
    const dir = mkdtempSync(join(tmpdir(), 'hourglass-bench-'));
    const file = join(dir, 'node.yaml');
    writeFileSync(
      file,
      stringify({ ...this.config, http: { host: '127.0.0.1', port: this.port } }),
    );
    const child = spawn(
      process.execPath,
      [
        ...this.execArgv,
        '--expose-gc',
        '--require',
        'tsx/cjs',
        '--require',
        './scripts/bench/gc-on-signal.ts',
        'apps/node/src/main.ts',
      ],
      {
        cwd: repoRoot,
        env: { ...process.env, HOURGLASS_CONFIG: file },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    this.child = child;
    const keep = (chunk: Buffer): void => {
      this.output = (this.output + chunk.toString()).slice(-4000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    child.stderr?.on('data', (chunk: Buffer) => {
      const lines = (this.stderrLine + chunk.toString()).split('\n');
      this.stderrLine = lines.pop() ?? '';
      for (const line of lines) {
        const match = GC_REPORT.exec(line);
        if (match) this.gcReports.set(Number(match[1]), JSON.parse(match[2]!) as GcMemory);
      }
    });
    let gone = false;
    this.exited = new Promise((resolveExit) =>
      child.once('exit', () => {
        gone = true;
        rmSync(dir, { recursive: true, force: true });
        resolveExit();
      }),
    );
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (gone)
        throw new Error(
          `node exited before it was ready: ${this.output.trim().split('\n').slice(-3).join(' | ')}`,
        );
      try {
        if ((await fetch(`${this.url}/readyz`)).status === 200) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline)
        throw new Error(`node not ready after ${timeoutMs} ms: ${this.output.slice(-500)}`);
      await sleep(100);
    }
  }

  /** Forces full GCs in the node (SIGUSR2, see gc-on-signal.ts) and returns its memory after them. */
  async gcMemory(timeoutMs = 10_000): Promise<GcMemory> {
    const child = this.child;
    if (!child || child.exitCode !== null) throw new Error('the node is not running');
    const n = ++this.gcRequests;
    child.kill('SIGUSR2');
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const report = this.gcReports.get(n);
      if (report) return report;
      if (Date.now() > deadline) throw new Error('the node printed no memory report after SIGUSR2');
      await sleep(20);
    }
  }

  /** SIGTERM (graceful: a CPU profile is written on exit), SIGKILL after `graceMs`. */
  async stop(graceMs = 20_000): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    try {
      await bounded(this.exited ?? Promise.resolve(), graceMs, 'stopping a node');
    } catch {
      child.kill('SIGKILL');
      await this.exited;
    }
  }
}

/** A keep-alive HTTP client: one socket per concurrent request, reused (no connect per call). */
class HttpClient {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 128 });

  post(
    baseUrl: string,
    path: string,
    token: string,
    body: unknown,
  ): Promise<{ status: number; text: string }> {
    const payload = Buffer.from(JSON.stringify(body));
    const url = new URL(path, baseUrl);
    return new Promise((resolve, reject) => {
      const req = request(
        {
          agent: this.agent,
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: 'POST',
          headers: {
            authorization: `Bearer ${token}`,
            'content-type': 'application/json',
            'content-length': payload.length,
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
          );
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

export async function scrapeMetrics(baseUrl: string): Promise<Map<string, number>> {
  const response = await fetch(`${baseUrl}/metrics`);
  const text = await response.text();
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.length === 0) continue;
    const space = line.lastIndexOf(' ');
    values.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return values;
}

/** Per fire stage (claim, produce, mark): statements or requests, messages, and seconds spent. */
export type FireStages = Record<string, { calls: number; messages: number; seconds: number }>;

/** Sums the nodes' `hourglass_fire_stage_*` metrics. */
export async function scrapeFireStages(baseUrls: readonly string[]): Promise<FireStages> {
  const stages: FireStages = {};
  for (const url of baseUrls) {
    const metrics = await scrapeMetrics(url);
    for (const stage of ['claim', 'produce', 'mark']) {
      const entry = (stages[stage] ??= { calls: 0, messages: 0, seconds: 0 });
      entry.calls += metrics.get(`hourglass_fire_stage_seconds_count{stage="${stage}"}`) ?? 0;
      entry.seconds += metrics.get(`hourglass_fire_stage_seconds_sum{stage="${stage}"}`) ?? 0;
      entry.messages += metrics.get(`hourglass_fire_stage_messages_total{stage="${stage}"}`) ?? 0;
    }
  }
  return stages;
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

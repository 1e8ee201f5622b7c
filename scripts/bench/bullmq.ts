/**
 * BullMQ delayed jobs on the shared Redis, under a key prefix of their own (`bench-<random>`),
 * obliterated and closed at the end. The worker runs in the bench process; lateness is taken in
 * its handler. Jobs use `removeOnComplete`/`removeOnFail` in both variants, so Redis does not
 * keep hundreds of thousands of finished jobs (that is housekeeping, not latency).
 */
import { Queue, Worker } from 'bullmq';
import { randomId, serviceUrls } from '@hourglass/testkit';
import Redis from 'ioredis';
import type { BenchMessage, BenchSystem } from './common';

interface JobData {
  r: number;
  n: number;
  due: number;
}

export interface BullmqOptions {
  /** Worker concurrency; BullMQ's default is 1. */
  concurrency?: number;
}

export class BullmqSystem implements BenchSystem {
  readonly system = 'BullMQ';
  readonly variant: string;
  durability = 'Redis';
  onDeliver: BenchSystem['onDeliver'] = () => undefined;

  private readonly prefix = `bench-${randomId()}`;
  private readonly name = 'delayed';
  private queue: Queue<JobData> | undefined;
  private worker: Worker<JobData> | undefined;
  private stopped: Promise<void> | undefined;

  constructor(private readonly options: BullmqOptions) {
    this.variant =
      options.concurrency === undefined ? 'defaults' : `tuned (concurrency ${options.concurrency})`;
  }

  private connection(): { host: string; port: number; maxRetriesPerRequest: null } {
    const url = new URL(serviceUrls().redis);
    return { host: url.hostname, port: Number(url.port || 6379), maxRetriesPerRequest: null };
  }

  async start(): Promise<void> {
    const connection = this.connection();
    const redis = new Redis(connection);
    try {
      const aof = await redis.config('GET', 'appendonly');
      const save = await redis.config('GET', 'save');
      this.durability = `Redis memory (appendonly=${aof[1] ?? '?'}, save="${save[1] ?? ''}"): no fsync`;
    } finally {
      redis.disconnect();
    }
    this.queue = new Queue<JobData>(this.name, {
      connection,
      prefix: this.prefix,
      defaultJobOptions: { removeOnComplete: true, removeOnFail: true },
    });
    await this.queue.waitUntilReady();
    this.worker = new Worker<JobData>(
      this.name,
      (job) => {
        this.onDeliver(job.data.r, job.data.n, job.data.due, Date.now());
        return Promise.resolve();
      },
      {
        connection,
        prefix: this.prefix,
        ...(this.options.concurrency === undefined
          ? {}
          : { concurrency: this.options.concurrency }),
      },
    );
    this.worker.on('error', () => undefined);
    await this.worker.waitUntilReady();
  }

  private requireQueue(): Queue<JobData> {
    if (!this.queue) throw new Error('BullMQ is not started');
    return this.queue;
  }

  async scheduleBatch(run: number, messages: readonly BenchMessage[]): Promise<void> {
    const now = Date.now();
    await this.requireQueue().addBulk(
      messages.map((m) => ({
        name: 'm',
        data: { r: run, n: m.n, due: m.dueMs },
        opts: { delay: Math.max(0, m.dueMs - now) },
      })),
    );
  }

  async scheduleOne(run: number, m: BenchMessage): Promise<void> {
    await this.requireQueue().add(
      'm',
      { r: run, n: m.n, due: m.dueMs },
      { delay: Math.max(0, m.dueMs - Date.now()) },
    );
  }

  stop(): Promise<void> {
    this.stopped ??= (async () => {
      await this.worker?.close(true).catch(() => undefined);
      await this.queue?.obliterate({ force: true }).catch(() => undefined);
      await this.queue?.close().catch(() => undefined);
    })();
    return this.stopped;
  }
}

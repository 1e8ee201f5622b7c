/**
 * pg-boss with `startAfter` on the shared Postgres, in a schema of its own (`bench_pgboss_<random>`),
 * dropped at the end. The worker runs in the bench process; lateness is taken in its handler.
 */
import { randomId, serviceUrls } from '@hourglass/testkit';
import PgBoss from 'pg-boss';
import pg from 'pg';
import type { BenchMessage, BenchSystem } from './common';
import { postgresDurability } from './hourglass';

interface JobData {
  r: number;
  n: number;
  due: number;
}

export interface PgBossOptions {
  /** `work()` options; pg-boss's defaults are polling 2 s and batch size 1. */
  pollingIntervalSeconds?: number;
  batchSize?: number;
}

export class PgBossSystem implements BenchSystem {
  readonly system = 'pg-boss';
  readonly variant: string;
  durability = 'Postgres';
  onDeliver: BenchSystem['onDeliver'] = () => undefined;

  private readonly schema = `bench_pgboss_${randomId()}`;
  private readonly queueName = 'delayed';
  private boss: PgBoss | undefined;
  private stopped: Promise<void> | undefined;

  constructor(private readonly options: PgBossOptions) {
    this.variant =
      options.pollingIntervalSeconds === undefined
        ? 'defaults'
        : `tuned (poll ${options.pollingIntervalSeconds} s, batch ${options.batchSize ?? 1})`;
  }

  async start(): Promise<void> {
    const url = serviceUrls().postgres;
    this.durability = await postgresDurability(url);
    const boss = new PgBoss({ connectionString: url, schema: this.schema });
    boss.on('error', () => undefined);
    this.boss = boss;
    await boss.start();
    await boss.createQueue(this.queueName);
    const options: PgBoss.WorkOptions = {};
    if (this.options.pollingIntervalSeconds !== undefined)
      options.pollingIntervalSeconds = this.options.pollingIntervalSeconds;
    if (this.options.batchSize !== undefined) options.batchSize = this.options.batchSize;
    await boss.work<JobData>(this.queueName, options, (jobs) => {
      const now = Date.now();
      for (const job of jobs) this.onDeliver(job.data.r, job.data.n, job.data.due, now);
      return Promise.resolve();
    });
  }

  private requireBoss(): PgBoss {
    if (!this.boss) throw new Error('pg-boss is not started');
    return this.boss;
  }

  async scheduleBatch(run: number, messages: readonly BenchMessage[]): Promise<void> {
    await this.requireBoss().insert(
      messages.map((m) => ({
        name: this.queueName,
        data: { r: run, n: m.n, due: m.dueMs },
        startAfter: new Date(m.dueMs),
      })),
    );
  }

  async scheduleOne(run: number, m: BenchMessage): Promise<void> {
    await this.requireBoss().send(
      this.queueName,
      { r: run, n: m.n, due: m.dueMs },
      { startAfter: new Date(m.dueMs) },
    );
  }

  stop(): Promise<void> {
    this.stopped ??= (async () => {
      await this.boss?.stop({ graceful: false, wait: true, timeout: 5000 }).catch(() => undefined);
      const client = new pg.Client({ connectionString: serviceUrls().postgres });
      await client.connect();
      try {
        await client.query(`DROP SCHEMA IF EXISTS ${this.schema} CASCADE`);
      } finally {
        await client.end();
      }
    })();
    return this.stopped;
  }
}

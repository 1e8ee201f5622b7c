/**
 * graphile-worker with `runAt` on the shared Postgres, in a schema of its own
 * (`bench_graphile_<random>`), dropped at the end. The runner lives in the bench process;
 * lateness is taken in the task. It uses Postgres's clock for `run_at` (its default), the same
 * machine's clock as ours.
 */
import { randomId, serviceUrls } from '@hourglass/testkit';
import type { Runner, WorkerUtils } from 'graphile-worker';
import { Logger, makeWorkerUtils, run } from 'graphile-worker';
import pg from 'pg';
import type { BenchMessage, BenchSystem } from './common';
import { postgresDurability } from './hourglass';

interface JobData {
  r: number;
  n: number;
  due: number;
}

export interface GraphileOptions {
  /** Poll interval for future jobs; graphile-worker's default is 2000 ms. */
  pollInterval?: number;
  /** Jobs run at once; graphile-worker's default is 1. */
  concurrency?: number;
}

const silent = new Logger(() => () => undefined);

export class GraphileSystem implements BenchSystem {
  readonly system = 'graphile-worker';
  readonly variant: string;
  durability = 'Postgres';
  onDeliver: BenchSystem['onDeliver'] = () => undefined;

  private readonly schema = `bench_graphile_${randomId()}`;
  private utils: WorkerUtils | undefined;
  private runner: Runner | undefined;
  private stopped: Promise<void> | undefined;

  constructor(private readonly options: GraphileOptions) {
    this.variant =
      options.pollInterval === undefined
        ? 'defaults'
        : `tuned (poll ${options.pollInterval} ms, concurrency ${options.concurrency ?? 1})`;
  }

  async start(): Promise<void> {
    const connectionString = serviceUrls().postgres;
    this.durability = await postgresDurability(connectionString);
    this.utils = await makeWorkerUtils({ connectionString, schema: this.schema, logger: silent });
    await this.utils.migrate();
    this.runner = await run({
      connectionString,
      schema: this.schema,
      logger: silent,
      noHandleSignals: true,
      ...(this.options.pollInterval === undefined
        ? {}
        : { pollInterval: this.options.pollInterval }),
      ...(this.options.concurrency === undefined ? {} : { concurrency: this.options.concurrency }),
      taskList: {
        due: (payload) => {
          const data = payload as JobData;
          this.onDeliver(data.r, data.n, data.due, Date.now());
          return Promise.resolve();
        },
      },
    });
  }

  private requireUtils(): WorkerUtils {
    if (!this.utils) throw new Error('graphile-worker is not started');
    return this.utils;
  }

  async scheduleBatch(run: number, messages: readonly BenchMessage[]): Promise<void> {
    await this.requireUtils().addJobs(
      messages.map((m) => ({
        identifier: 'due',
        payload: { r: run, n: m.n, due: m.dueMs },
        runAt: new Date(m.dueMs),
      })),
    );
  }

  async scheduleOne(run: number, m: BenchMessage): Promise<void> {
    await this.requireUtils().addJob(
      'due',
      { r: run, n: m.n, due: m.dueMs },
      { runAt: new Date(m.dueMs) },
    );
  }

  stop(): Promise<void> {
    this.stopped ??= (async () => {
      await this.runner?.stop().catch(() => undefined);
      await this.utils?.release();
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

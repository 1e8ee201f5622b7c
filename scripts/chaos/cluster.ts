/**
 * The cluster under test: `nodes` processes of apps/node/src/main.ts (`cluster.mode: etcd`),
 * configured like apps/node/src/local-cluster.ts does it, by HOURGLASS__* variables over
 * config/default.yaml, but pointed at the suite's own services, a database and an etcd prefix of
 * the run, free HTTP/gRPC ports, and with callbacks allowed to 127.0.0.0/8 (the suite's
 * receiver). Each node appends its output to <run dir>/<name>.log.
 *
 * Nodes stay in the suite's process group and session (not detached), so whatever stops the
 * suite's group stops them too, and CI's leftover check sees any that outlive it.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { appendFileSync, closeSync, openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { AbortedError, SetupError, log, sleep } from './common';
import { repoRoot } from './services';
import type { ChaosServices } from './services';

export const ADMIN_TOKEN = 'admin-token';

export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
    server.once('error', reject);
  });
}

function logTail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export class ChaosNode {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private stopped = false;
  exitCode: number | null | undefined;

  constructor(
    readonly name: string,
    readonly httpPort: number,
    private readonly env: NodeJS.ProcessEnv,
    readonly logFile: string,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.httpPort}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined && this.exitCode === undefined;
  }

  /** Whether it is SIGSTOPped right now (a stopped node must be continued before it can exit). */
  get paused(): boolean {
    return this.stopped;
  }

  start(): void {
    if (this.running) throw new Error(`${this.name} is already running`);
    appendFileSync(
      this.logFile,
      `--- chaos: starting ${this.name} at ${new Date().toISOString()}\n`,
    );
    const fd = openSync(this.logFile, 'a');
    const child = spawn(process.execPath, ['--require', 'tsx/cjs', 'apps/node/src/main.ts'], {
      cwd: repoRoot,
      env: this.env,
      stdio: ['ignore', fd, fd],
    });
    closeSync(fd);
    this.child = child;
    this.exitCode = undefined;
    this.stopped = false;
    this.exited = new Promise((resolveExit) => {
      child.once('exit', (code, signal) => {
        this.exitCode = code ?? (signal ? 128 : null);
        appendFileSync(
          this.logFile,
          `--- chaos: ${this.name} (pid ${child.pid}) exited (${signal ?? `code ${code}`})\n`,
        );
        resolveExit();
      });
      child.once('error', () => {
        this.exitCode = 127;
        resolveExit();
      });
    });
  }

  /** Sends `signal` to the node's pid (only while it runs: a pid is never reused before exit). */
  signal(signal: NodeJS.Signals): void {
    const pid = this.child?.pid;
    if (!this.running || pid === undefined) return;
    process.kill(pid, signal);
    if (signal === 'SIGSTOP') this.stopped = true;
    if (signal === 'SIGCONT') this.stopped = false;
  }

  async waitReady(timeoutMs: number, abort: AbortSignal): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (abort.aborted) throw new AbortedError();
      if (!this.running) {
        throw new SetupError(
          `${this.name} exited (code ${this.exitCode}) before it was ready; last lines of ${this.logFile}:\n${logTail(this.logFile)}`,
        );
      }
      try {
        const response = await fetch(`${this.url}/readyz`, { signal: AbortSignal.timeout(2000) });
        if (response.status === 200) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        throw new SetupError(
          `${this.name} not ready after ${timeoutMs / 1000} s; last lines of ${this.logFile}:\n${logTail(this.logFile)}`,
        );
      }
      await sleep(200, abort);
    }
  }

  /** kill -9, and wait until the process is gone. */
  async kill(): Promise<void> {
    this.signal('SIGKILL');
    await this.exited;
  }

  /** SIGCONT (if paused), SIGTERM (graceful leave), then SIGKILL after `graceMs`. */
  async stop(graceMs: number): Promise<void> {
    if (!this.running) return;
    this.signal('SIGCONT');
    this.signal('SIGTERM');
    const timer = setTimeout(() => {
      log(`${this.name} did not stop within ${graceMs / 1000} s; SIGKILL`);
      this.signal('SIGKILL');
    }, graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

export interface ClusterOptions {
  nodes: number;
  runId: string;
  runDir: string;
  databaseUrl: string;
  leaseTtlSeconds: number;
}

/** The nodes' environment: ours, minus any Hourglass config the caller's shell carries. */
function baseEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (name === 'HOURGLASS_CONFIG' || name.startsWith('HOURGLASS__')) continue;
    env[name] = value;
  }
  return env;
}

export class Cluster {
  readonly nodes: ChaosNode[] = [];

  private constructor() {}

  static async create(services: ChaosServices, options: ClusterOptions): Promise<Cluster> {
    const cluster = new Cluster();
    for (let i = 1; i <= options.nodes; i++) {
      const name = `chaos-${i}`;
      const httpPort = await freePort();
      const grpcPort = await freePort();
      const env: NodeJS.ProcessEnv = {
        ...baseEnv(),
        HOURGLASS__NODE__ID: name,
        HOURGLASS__HTTP__HOST: '127.0.0.1',
        HOURGLASS__HTTP__PORT: String(httpPort),
        HOURGLASS__GRPC__HOST: '127.0.0.1',
        HOURGLASS__GRPC__PORT: String(grpcPort),
        HOURGLASS__POSTGRES__URL: JSON.stringify(options.databaseUrl),
        HOURGLASS__KAFKA__BROKERS: JSON.stringify(services.kafkaBrokers),
        HOURGLASS__ETCD__ENDPOINTS: JSON.stringify([services.etcd]),
        HOURGLASS__REDIS__URL: JSON.stringify(services.redis),
        HOURGLASS__CLUSTER__MODE: 'etcd',
        HOURGLASS__CLUSTER__ETCD_PREFIX: JSON.stringify(`/chaos/${options.runId}`),
        HOURGLASS__CLUSTER__LEASE_TTL_SECONDS: String(options.leaseTtlSeconds),
        // The suite's callback receiver listens on 127.0.0.1, which the SSRF guard refuses unless
        // opened on purpose (as `npm start` does).
        HOURGLASS__CALLBACKS__ALLOW_NETWORKS: JSON.stringify(['127.0.0.0/8']),
        HOURGLASS__LOG__LEVEL: 'info',
      };
      cluster.nodes.push(
        new ChaosNode(name, httpPort, env, resolve(options.runDir, `${name}.log`)),
      );
    }
    return cluster;
  }

  /** Every node's base URL, running or not: the clients' static list. */
  get urls(): string[] {
    return this.nodes.map((node) => node.url);
  }

  node(index: number): ChaosNode {
    const node = this.nodes[index % this.nodes.length];
    if (!node) throw new Error('the cluster has no nodes');
    return node;
  }

  async start(abort: AbortSignal): Promise<void> {
    for (const node of this.nodes) node.start();
    await Promise.all(this.nodes.map((node) => node.waitReady(90_000, abort)));
    log(`nodes ready: ${this.nodes.map((n) => `${n.name} ${n.url} pid ${n.pid}`).join(', ')}`);
    await this.waitBalanced(60_000, abort);
  }

  /**
   * Until every slot has an owner that fires it, and every running node is in the view and owns
   * some slots.
   */
  async waitBalanced(timeoutMs: number, abort: AbortSignal): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    let summary = 'no cluster view';
    for (;;) {
      for (const node of this.nodes.filter((n) => n.running && !n.paused)) {
        const left = deadline - Date.now();
        if (left <= 0) break;
        try {
          const response = await fetch(`${node.url}/v1/admin/cluster`, {
            headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
            signal: AbortSignal.timeout(Math.max(100, Math.min(2000, left))),
          });
          if (response.status !== 200) continue;
          const view = (await response.json()) as {
            nodes: Array<{ id: string; slots: number[] }>;
            slots: Array<{ owner: string | null; epoch: number | null }>;
          };
          const unowned = view.slots.filter((s) => s.owner === null || s.epoch === null).length;
          summary = `${view.nodes.map((n) => `${n.id} ${n.slots.length}`).join(', ')}; ${unowned} slot(s) not fired`;
          const live = this.nodes.filter((n) => n.running).length;
          const owning = view.nodes.filter((n) => n.slots.length > 0).length;
          if (unowned === 0 && view.nodes.length === live && owning === live) return summary;
          break;
        } catch {
          // try the next node
        }
      }
      if (Date.now() > deadline) {
        throw new SetupError(
          `the cluster did not balance within ${timeoutMs / 1000} s: ${summary}`,
        );
      }
      await sleep(250, abort);
    }
  }

  /** Stops every node that runs (by pid), in parallel. */
  async stop(graceMs = 20_000): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.stop(graceMs)));
  }
}

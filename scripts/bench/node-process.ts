/**
 * The processes and plain clients behind {@link HourglassSystem} (hourglass.ts): one node process
 * with its config file and GC hook, a keep-alive HTTP client, and the /metrics scrapers.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Pool } from 'undici';
import { stringify } from 'yaml';
import { bounded, sleep } from './common';

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
export class NodeProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<void> | undefined;
  private output = '';
  private stderrLine = '';
  private readonly gcReports = new Map<number, GcMemory>();
  private gcRequests = 0;
  readonly url: string;
  /** `host:port` of the node's gRPC listener (its `grpc` config), for the SDK's gRPC transport. */
  readonly grpcAddress: string | undefined;

  constructor(
    private readonly config: Record<string, unknown>,
    readonly port: number,
    private readonly execArgv: string[],
  ) {
    this.url = `http://127.0.0.1:${port}`;
    const grpc = config.grpc as { host?: unknown; port?: unknown } | undefined;
    this.grpcAddress =
      typeof grpc?.port === 'number' && grpc.port > 0
        ? `${typeof grpc.host === 'string' ? grpc.host : '127.0.0.1'}:${grpc.port}`
        : undefined;
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
/**
 * The load generator's HTTP client: an undici pool per node, keep-alive, no pipelining. undici,
 * not node:http's Agent: at 32 concurrent callers the Agent's per-request cost made the bench
 * process, not the node, the limit of the single-add figure (about 8,000 req/s against a server
 * that only echoes, against 13,600 with undici on this machine).
 */
export class HttpClient {
  private readonly pools = new Map<string, Pool>();

  async post(
    baseUrl: string,
    path: string,
    token: string,
    body: unknown,
  ): Promise<{ status: number; text: string }> {
    let pool = this.pools.get(baseUrl);
    if (!pool) {
      pool = new Pool(baseUrl, { connections: 128, pipelining: 1 });
      this.pools.set(baseUrl, pool);
    }
    const response = await pool.request({
      path,
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: response.statusCode, text: await response.body.text() };
  }

  close(): void {
    for (const pool of this.pools.values()) void pool.close();
    this.pools.clear();
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

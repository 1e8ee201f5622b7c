/**
 * Runs Hourglass nodes for integration tests: in-process (fast, for API behaviour) or as child
 * processes (for kill -9, SIGSTOP and restarts), against the real local services.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { HourglassConfig } from '@hourglass/config';
import { loadConfig } from '@hourglass/config';
import pino from 'pino';
import { stringify } from 'yaml';
import { startNode } from '../../src/node';
import type { RunningNode } from '../../src/node';

const repoRoot = resolve(__dirname, '../../../..');

export type ConfigOverrides = Record<string, unknown>;

export function testConfig(overrides: ConfigOverrides): HourglassConfig {
  return loadConfig({
    env: {},
    overrides: { log: { level: 'silent' }, http: { port: 0 }, grpc: { port: 0 }, ...overrides },
  });
}

export async function startInProcess(config: HourglassConfig): Promise<RunningNode> {
  return startNode(config, pino({ level: config.log.level }));
}

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

export interface ApiResponse<T = Record<string, unknown>> {
  status: number;
  body: T;
  headers: Headers;
}

/** One HTTP call; the body is sent as JSON unless it is a string (sent raw, for malformed input). */
export async function api<T = Record<string, unknown>>(
  baseUrl: string,
  method: string,
  path: string,
  token: string | null,
  body?: unknown,
  contentType = 'application/json',
  extraHeaders: Record<string, string> = {},
): Promise<ApiResponse<T>> {
  const headers: Record<string, string> = { ...extraHeaders };
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = contentType;
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Not JSON (e.g. /metrics); tests that expect JSON assert on the shape.
  }
  return { status: response.status, body: parsed as T, headers: response.headers };
}

/** A node in its own process, configured through a YAML file layered over config/default.yaml. */
export class ChildNode {
  private child: ChildProcess | undefined;
  private exitPromise: Promise<number | null> | undefined;
  readonly url: string;
  output = '';

  private constructor(
    private readonly configFile: string,
    readonly port: number,
    private readonly extraEnv: Record<string, string>,
  ) {
    this.url = `http://127.0.0.1:${port}`;
  }

  static async create(
    overrides: ConfigOverrides,
    extraEnv: Record<string, string> = {},
  ): Promise<ChildNode> {
    const port = await freePort();
    const grpcPort = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'hourglass-node-'));
    const configFile = join(dir, 'node.yaml');
    writeFileSync(
      configFile,
      stringify({
        log: { level: 'warn' },
        grpc: { port: grpcPort, host: '127.0.0.1' },
        ...overrides,
        http: { port, host: '127.0.0.1' },
      }),
    );
    return new ChildNode(configFile, port, extraEnv);
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts the process and resolves when /readyz answers 200. */
  async start(timeoutMs = 30_000): Promise<void> {
    const child = spawn(process.execPath, ['--require', 'tsx/cjs', 'apps/node/src/main.ts'], {
      cwd: repoRoot,
      env: { ...process.env, ...this.extraEnv, HOURGLASS_CONFIG: this.configFile },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    child.stdout?.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    this.exitPromise = new Promise((resolveExit) =>
      child.once('exit', (code) => resolveExit(code)),
    );
    await this.waitReady(timeoutMs);
  }

  async waitReady(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let exited = false;
    void this.exitPromise?.then(() => (exited = true));
    for (;;) {
      if (exited) throw new Error(`node exited before it was ready:\n${this.output}`);
      try {
        const response = await fetch(`${this.url}/readyz`);
        if (response.status === 200) return;
      } catch {
        // Not listening yet.
      }
      if (Date.now() > deadline)
        throw new Error(`node not ready after ${timeoutMs} ms:\n${this.output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  signal(signal: NodeJS.Signals): void {
    this.child?.kill(signal);
  }

  /** Sends the signal and resolves with the exit code once the process is gone. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null)
      return this.child?.exitCode ?? null;
    this.child.kill(signal);
    return (await this.exitPromise) ?? null;
  }
}

/**
 * `npm start` (scripts/start, after `scripts/services up`): a local Hourglass cluster in the
 * foreground. Each node is its own process running main.ts, configured by HOURGLASS__* variables
 * over config/default.yaml:
 *
 *   node-i   HTTP 127.0.0.1:(8080+i)   gRPC 127.0.0.1:(9090+i)   cluster.mode=etcd
 *
 * Options: `--nodes N` (default 3, at most 9), `--standalone` (one node owning every slot, no
 * etcd). Node logs go to .hourglass/local-cluster/node-i.log. Ctrl-C (or SIGTERM) sends SIGTERM to
 * every node, so each hands its slots off and exits, and waits for them; a second Ctrl-C kills.
 *
 * The nodes run in their own process groups: a terminal's Ctrl-C reaches only this launcher, which
 * then signals each node once (a node treats a second signal as "exit now", skipping the handoff).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { relative, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConfigError, loadConfig } from '@hourglass/config';

const repoRoot = resolve(__dirname, '../../..');
const READY_TIMEOUT_MS = 90_000;
const STOP_TIMEOUT_MS = 30_000;

interface Options {
  nodes: number;
  standalone: boolean;
}

interface LocalNode {
  readonly name: string;
  readonly httpUrl: string;
  readonly grpcAddress: string;
  readonly logFile: string;
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  exitCode: number | null | undefined;
}

function usage(exitCode: number): never {
  process.stdout.write(
    'usage: npm start -- [--nodes N] [--standalone]\n  --nodes N      nodes to run, 1-9 (default 3)\n  --standalone   one node, cluster.mode=standalone (no etcd)\n',
  );
  process.exit(exitCode);
}

function parseArgs(argv: readonly string[]): Options {
  const options: Options = { nodes: 3, standalone: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--standalone') options.standalone = true;
    else if (arg === '--nodes' || arg?.startsWith('--nodes=')) {
      const value = arg === '--nodes' ? argv[++i] : arg.slice('--nodes='.length);
      const nodes = Number(value);
      if (!Number.isInteger(nodes) || nodes < 1 || nodes > 9) {
        process.stderr.write(`local-cluster: --nodes wants 1-9, got ${value ?? 'nothing'}\n`);
        usage(2);
      }
      options.nodes = nodes;
    } else if (arg === '-h' || arg === '--help') usage(0);
    else {
      process.stderr.write(`local-cluster: unknown argument ${arg}\n`);
      usage(2);
    }
  }
  if (options.standalone) options.nodes = 1;
  return options;
}

function logTail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function startNode(index: number, options: Options, logDir: string): LocalNode {
  const name = `node-${index}`;
  const httpPort = 8080 + index;
  const grpcPort = 9090 + index;
  const logFile = resolve(logDir, `${name}.log`);
  const log = openSync(logFile, 'a');
  const child = spawn(process.execPath, ['--require', 'tsx/cjs', 'apps/node/src/main.ts'], {
    cwd: repoRoot,
    env: {
      ...process.env,
      HOURGLASS__NODE__ID: name,
      HOURGLASS__HTTP__HOST: '127.0.0.1',
      HOURGLASS__HTTP__PORT: String(httpPort),
      HOURGLASS__GRPC__HOST: '127.0.0.1',
      HOURGLASS__GRPC__PORT: String(grpcPort),
      HOURGLASS__CLUSTER__MODE: options.standalone ? 'standalone' : 'etcd',
      // Callbacks to receivers on this machine: the SSRF guard refuses loopback otherwise.
      HOURGLASS__CALLBACKS__ALLOW_NETWORKS:
        process.env.HOURGLASS__CALLBACKS__ALLOW_NETWORKS ?? '[127.0.0.0/8]',
    },
    stdio: ['ignore', log, log],
    detached: true,
  });
  closeSync(log);
  const node: LocalNode = {
    name,
    httpUrl: `http://127.0.0.1:${httpPort}`,
    grpcAddress: `127.0.0.1:${grpcPort}`,
    logFile,
    child,
    exitCode: undefined,
    exited: new Promise((resolveExit) => {
      child.once('exit', (code, signal) => {
        node.exitCode = code ?? (signal ? 128 : null);
        resolveExit(node.exitCode);
      });
      child.once('error', () => {
        node.exitCode = 127;
        resolveExit(127);
      });
    }),
  };
  return node;
}

async function waitReady(node: LocalNode): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (node.exitCode !== undefined) {
      throw new Error(
        `${node.name} exited (code ${node.exitCode}) before it was ready; last lines of ${node.logFile}:\n${logTail(node.logFile)}`,
      );
    }
    try {
      const response = await fetch(`${node.httpUrl}/readyz`, { signal: AbortSignal.timeout(2000) });
      if (response.status === 200) return;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline)
      throw new Error(
        `${node.name} not ready after ${READY_TIMEOUT_MS / 1000} s; see ${node.logFile}`,
      );
    await sleep(200);
  }
}

/** Waits (briefly) until every slot has an owner, and describes who owns how many. */
async function slotSummary(node: LocalNode, adminToken: string): Promise<string> {
  const deadline = Date.now() + 20_000;
  let summary = 'slot owners unknown';
  while (Date.now() < deadline) {
    try {
      const response = await fetch(`${node.httpUrl}/v1/admin/cluster`, {
        headers: { authorization: `Bearer ${adminToken}` },
        signal: AbortSignal.timeout(2000),
      });
      const view = (await response.json()) as {
        slotCount: number;
        nodes: Array<{ id: string; slots: number[] }>;
        slots: Array<{ owner: string | null }>;
      };
      const unowned = view.slots.filter((slot) => slot.owner === null).length;
      summary = `${view.slotCount} slots: ${view.nodes.map((n) => `${n.id} ${n.slots.length}`).join(', ')}${unowned > 0 ? `, ${unowned} not owned yet` : ''}`;
      if (unowned === 0) return summary;
    } catch {
      // Retried until the deadline.
    }
    await sleep(250);
  }
  return summary;
}

async function stopAll(nodes: readonly LocalNode[]): Promise<void> {
  for (const node of nodes) {
    if (node.exitCode === undefined && node.child.pid !== undefined) {
      try {
        process.kill(node.child.pid, 'SIGTERM');
      } catch {
        // Already gone.
      }
    }
  }
  const timer = setTimeout(() => {
    for (const node of nodes) {
      if (node.exitCode === undefined && node.child.pid !== undefined) {
        process.stderr.write(
          `${node.name} did not stop within ${STOP_TIMEOUT_MS / 1000} s; killing it\n`,
        );
        process.kill(node.child.pid, 'SIGKILL');
      }
    }
  }, STOP_TIMEOUT_MS);
  await Promise.all(nodes.map((node) => node.exited));
  clearTimeout(timer);
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`local-cluster: ${error.message}\n`);
      process.exit(78);
    }
    throw error;
  }
  const logDir = resolve(repoRoot, '.hourglass/local-cluster');
  mkdirSync(logDir, { recursive: true });

  const nodes: LocalNode[] = [];
  let stopping: Promise<void> | undefined;
  const shutdown = (signal: string): void => {
    if (stopping) {
      process.stderr.write(`\n${signal} again: killing the nodes\n`);
      for (const node of nodes) {
        if (node.exitCode !== undefined || node.child.pid === undefined) continue;
        try {
          process.kill(node.child.pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
      return;
    }
    process.stdout.write(
      `\n${signal}: stopping ${nodes.length} node(s) (each hands its slots off)...\n`,
    );
    stopping = stopAll(nodes).then(() => {
      process.stdout.write('all nodes stopped\n');
      process.exit(0);
    });
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  // Never leave orphans behind, whatever ends this process.
  process.on('exit', () => {
    for (const node of nodes) {
      if (node.exitCode !== undefined || node.child.pid === undefined) continue;
      try {
        process.kill(node.child.pid, 'SIGTERM');
      } catch {
        // Already gone.
      }
    }
  });

  for (let i = 1; i <= options.nodes; i++) nodes.push(startNode(i, options, logDir));
  try {
    await Promise.all(nodes.map(waitReady));
  } catch (error) {
    process.stderr.write(`local-cluster: ${(error as Error).message}\n`);
    await stopAll(nodes);
    process.exit(1);
  }
  if (stopping) return;

  const app = config.apps[0];
  const admin = config.auth.adminToken;
  const first = nodes[0];
  const out: string[] = [
    '',
    `Hourglass local cluster: ${nodes.length} node(s), cluster.mode=${options.standalone ? 'standalone' : `etcd (${config.etcd.endpoints.join(',')}, prefix ${config.cluster.etcdPrefix})`}`,
    ...nodes.map(
      (node) =>
        `  ${node.name}  HTTP ${node.httpUrl}  gRPC ${node.grpcAddress}  pid ${node.child.pid}  log ${relative(process.cwd(), node.logFile)}`,
    ),
    `  ${first ? await slotSummary(first, admin) : ''}`,
    `  Callbacks may call receivers on this machine: callbacks.allowNetworks is ${process.env.HOURGLASS__CALLBACKS__ALLOW_NETWORKS ?? '[127.0.0.0/8]'} (the default config allows public addresses only).`,
    '',
    app
      ? `App token:   ${app.token}   (app "${app.name}", topics: ${app.topics.join(', ')})`
      : 'No app configured (config apps: [])',
    `Admin token: ${admin}`,
    '',
  ];
  if (app && first) {
    out.push(
      'Schedule a message due in 10 s (any node accepts any message):',
      `  curl -s -X POST ${first.httpUrl}/v1/messages -H 'Authorization: Bearer ${app.token}' -H 'Content-Type: application/json' \\`,
      `    -d '{"topic":"${app.topics[0] ?? 'demo.events'}","payload":{"hello":"world"},"delayMs":10000}'`,
      'See the cluster (nodes, slots, owners, epochs):',
      `  curl -s ${first.httpUrl}/v1/admin/cluster -H 'Authorization: Bearer ${admin}'`,
      '',
    );
  }
  out.push('Ctrl-C stops every node.', '');
  process.stdout.write(out.join('\n'));

  // A node that dies on its own is reported; the launcher keeps running while any node does.
  await Promise.all(
    nodes.map(async (node) => {
      const code = await node.exited;
      if (stopping) return;
      process.stderr.write(
        `${node.name} exited on its own (code ${code}); last lines of its log:\n${logTail(node.logFile)}\n`,
      );
    }),
  );
  if (!stopping) {
    process.stderr.write('every node has exited\n');
    process.exit(1);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(
    `local-cluster: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
});

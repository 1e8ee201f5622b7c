/**
 * The faults, each run under the load and undone by itself:
 *
 *   kill      kill -9 one node, restart it (same id and ports) after `killDownMs`
 *   stop      SIGSTOP one node for the lease TTL + 3 s (past its lease), then SIGCONT
 *   kafka     scripts/services down kafka, `outageMs.kafka` later up kafka
 *   postgres  the same for Postgres
 *   etcd      the same for etcd
 *   receiver  the callback receiver answers 503 for `receiverOutageMs`, then 200 again
 *             (only with callbacks in the load)
 *
 * A fault starts right before the action and ends when it is undone: the restarted node answers
 * /readyz, SIGCONT is sent, `scripts/services up` returned (the service answers requests), or the
 * receiver answers 200 again.
 */
import { log, sleep } from './common';
import type { Cluster } from './cluster';
import type { CallbackReceiver } from './receiver';
import { runServices } from './services';
import type { ServiceName } from './services';

export const FAULT_NAMES = ['kill', 'stop', 'kafka', 'postgres', 'etcd', 'receiver'] as const;
export type FaultName = (typeof FAULT_NAMES)[number];

export interface FaultTiming {
  killDownMs: number;
  stopMs: number;
  outageMs: Record<'kafka' | 'postgres' | 'etcd', number>;
  receiverOutageMs: number;
}

export interface FaultRecord {
  name: FaultName;
  description: string;
  startedAt: number;
  endedAt: number;
  notes: string[];
}

export interface FaultContext {
  cluster: Cluster;
  /** The callback receiver; undefined when the load sends no callbacks. */
  receiver: CallbackReceiver | undefined;
  timing: FaultTiming;
  abort: AbortSignal;
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

async function killNode(ctx: FaultContext): Promise<FaultRecord> {
  const victim = ctx.cluster.node(1);
  const pid = victim.pid;
  const startedAt = Date.now();
  await victim.kill();
  log(`kill: ${victim.name} (pid ${pid}) killed with SIGKILL`);
  await sleep(ctx.timing.killDownMs, ctx.abort);
  const restartAt = Date.now();
  victim.start();
  await victim.waitReady(90_000, ctx.abort);
  const endedAt = Date.now();
  log(
    `kill: ${victim.name} restarted (pid ${victim.pid}), ready after ${seconds(endedAt - restartAt)}`,
  );
  return {
    name: 'kill',
    description: `kill -9 ${victim.name}, restart after ${seconds(ctx.timing.killDownMs)}`,
    startedAt,
    endedAt,
    notes: [`restart ready in ${seconds(endedAt - restartAt)}`],
  };
}

async function stopNode(ctx: FaultContext): Promise<FaultRecord> {
  const victim = ctx.cluster.node(2);
  const startedAt = Date.now();
  victim.signal('SIGSTOP');
  log(`stop: ${victim.name} (pid ${victim.pid}) SIGSTOPped for ${seconds(ctx.timing.stopMs)}`);
  try {
    await sleep(ctx.timing.stopMs, ctx.abort);
  } finally {
    victim.signal('SIGCONT');
  }
  log(`stop: ${victim.name} continued`);
  return {
    name: 'stop',
    description: `SIGSTOP ${victim.name} for ${seconds(ctx.timing.stopMs)}, then SIGCONT`,
    startedAt,
    endedAt: Date.now(),
    notes: [],
  };
}

async function serviceOutage(
  ctx: FaultContext,
  service: ServiceName & FaultName,
): Promise<FaultRecord> {
  const outageMs = ctx.timing.outageMs[service];
  const startedAt = Date.now();
  await runServices(['down', service], 120_000, ctx.abort);
  const downAt = Date.now();
  log(
    `${service}: down (stopping took ${seconds(downAt - startedAt)}); up again in ${seconds(outageMs)}`,
  );
  await sleep(outageMs, ctx.abort);
  const upAt = Date.now();
  await runServices(['up', service], 240_000, ctx.abort);
  const endedAt = Date.now();
  log(`${service}: up and answering (starting took ${seconds(endedAt - upAt)})`);
  return {
    name: service,
    description: `${service} down for ${seconds(outageMs)}`,
    startedAt,
    endedAt,
    notes: [`stop took ${seconds(downAt - startedAt)}, start ${seconds(endedAt - upAt)}`],
  };
}

async function receiverOutage(ctx: FaultContext): Promise<FaultRecord> {
  const receiver = ctx.receiver;
  if (!receiver) throw new Error('the receiver fault needs callbacks in the load');
  const outageMs = ctx.timing.receiverOutageMs;
  const startedAt = Date.now();
  await receiver.answerWith(503);
  log(`receiver: answering 503 for ${seconds(outageMs)}`);
  try {
    await sleep(outageMs, ctx.abort);
  } finally {
    await receiver.answerWith(200);
  }
  log(`receiver: answering 200 again`);
  return {
    name: 'receiver',
    description: `callback receiver answers 503 for ${seconds(outageMs)}`,
    startedAt,
    endedAt: Date.now(),
    notes: [],
  };
}

export function runFault(name: FaultName, ctx: FaultContext): Promise<FaultRecord> {
  switch (name) {
    case 'kill':
      return killNode(ctx);
    case 'stop':
      return stopNode(ctx);
    case 'kafka':
    case 'postgres':
    case 'etcd':
      return serviceOutage(ctx, name);
    case 'receiver':
      return receiverOutage(ctx);
  }
}

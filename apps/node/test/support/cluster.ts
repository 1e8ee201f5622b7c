/**
 * A multi-node cluster for integration tests: node processes (ChildNode) sharing one Postgres
 * schema, one Kafka topic and one etcd prefix; a steady load of scheduled messages; and recorders
 * of the admin cluster view, polled at a fixed interval, from which failover times and handoff
 * gaps are measured.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ClusterView } from '@hourglass/core';
import { ChildNode } from './harness';
import type { ConfigOverrides } from './harness';

export const APP = 'demo';
export const APP_TOKEN = 'demo-token';
export const ADMIN_TOKEN = 'admin-token';

const servicesScript = resolve(__dirname, '../../../../scripts/services');

/** `scripts/services <args>` (e.g. `down etcd`), synchronously. */
export function services(...args: string[]): void {
  execFileSync('bash', [servicesScript, ...args], { stdio: 'ignore', timeout: 180_000 });
}

export interface ClusterSettings {
  postgresUrl: string;
  kafkaBrokers: string[];
  etcdEndpoints: string[];
  etcdPrefix: string;
  topic: string;
  slots: number;
  leaseTtlSeconds: number;
  rebalanceDelayMs: number;
}

/** GET /v1/admin/cluster on one node; undefined when it does not answer within the timeout. */
export async function fetchView(url: string, timeoutMs = 1000): Promise<ClusterView | undefined> {
  try {
    const response = await fetch(`${url}/v1/admin/cluster`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (response.status !== 200) return undefined;
    return (await response.json()) as ClusterView;
  } catch {
    return undefined;
  }
}

/**
 * Every slot owned and fired (its owner reported an epoch) only by `nodes`, all of them
 * registered, their loads within one of each other.
 */
export function isBalanced(view: ClusterView | undefined, nodes: readonly string[]): boolean {
  if (!view) return false;
  const counts = new Map<string, number>(nodes.map((node) => [node, 0]));
  for (const { owner, epoch } of view.slots) {
    if (owner === null || epoch === null || !counts.has(owner)) return false;
    counts.set(owner, (counts.get(owner) ?? 0) + 1);
  }
  const registered = new Set(view.nodes.map((node) => node.id));
  if (registered.size !== nodes.length || nodes.some((node) => !registered.has(node))) return false;
  const loads = [...counts.values()];
  return Math.max(...loads) - Math.min(...loads) <= 1;
}

export class TestCluster {
  readonly nodes = new Map<string, ChildNode>();

  constructor(private readonly settings: ClusterSettings) {}

  overrides(id: string): ConfigOverrides {
    const s = this.settings;
    return {
      node: { id },
      // Port 0: every node process gets its own gRPC port from the OS.
      grpc: { host: '127.0.0.1', port: 0 },
      postgres: { url: s.postgresUrl, poolSize: 10 },
      kafka: { brokers: s.kafkaBrokers, createTopics: false },
      etcd: { endpoints: s.etcdEndpoints },
      cluster: {
        mode: 'etcd',
        slots: s.slots,
        leaseTtlSeconds: s.leaseTtlSeconds,
        etcdPrefix: s.etcdPrefix,
        rebalanceDelayMs: s.rebalanceDelayMs,
      },
      core: { horizonMinutes: 1, loaderIntervalMs: 250, hintDrainIntervalMs: 250 },
      log: { level: process.env.HOURGLASS_TEST_NODE_LOG ?? 'warn' },
      apps: [{ name: APP, token: APP_TOKEN, topics: [s.topic] }],
      auth: { adminToken: ADMIN_TOKEN },
    };
  }

  /** Creates and starts nodes (in parallel); resolves when each answers /readyz. */
  async start(...ids: string[]): Promise<ChildNode[]> {
    const nodes = await Promise.all(ids.map((id) => ChildNode.create(this.overrides(id))));
    ids.forEach((id, i) => this.nodes.set(id, nodes[i] as ChildNode));
    await Promise.all(nodes.map((node) => node.start(60_000)));
    return nodes;
  }

  /**
   * Starts nodes with `extra` layered over their usual settings and waits until they share the
   * slots evenly; resolves with the nodes in `ids` order.
   */
  async startBalanced(ids: readonly string[], extra: ConfigOverrides = {}): Promise<ChildNode[]> {
    const nodes = await Promise.all(
      ids.map((id) => ChildNode.create({ ...this.overrides(id), ...extra })),
    );
    ids.forEach((id, i) => this.nodes.set(id, nodes[i] as ChildNode));
    await Promise.all(nodes.map((node) => node.start(60_000)));
    await this.waitForView(ids[0]!, 'balanced', (view) => isBalanced(view, ids), 30_000);
    return nodes;
  }

  node(id: string): ChildNode {
    const node = this.nodes.get(id);
    if (!node) throw new Error(`no node ${id} in this cluster`);
    return node;
  }

  /** Polls `via` until the view satisfies `condition`; the time it took, or a timeout error. */
  async waitForView(
    via: string,
    what: string,
    condition: (view: ClusterView) => boolean,
    timeoutMs: number,
    intervalMs = 100,
  ): Promise<{ view: ClusterView; tookMs: number }> {
    const started = Date.now();
    let last: ClusterView | undefined;
    for (;;) {
      const view = await fetchView(this.node(via).url);
      if (view) {
        last = view;
        if (condition(view)) return { view, tookMs: Date.now() - started };
      }
      if (Date.now() - started > timeoutMs) {
        const owners = last ? summarize(last) : 'no answer';
        throw new Error(
          `timed out after ${timeoutMs} ms waiting until ${what} (last view: ${owners})`,
        );
      }
      await sleep(intervalMs);
    }
  }

  /** Writes each node's output (stdout and stderr) to `<dir>/<id>.log`; returns the directory. */
  dumpLogs(): string {
    const dir = mkdtempSync(join(tmpdir(), 'hourglass-cluster-'));
    for (const [id, node] of this.nodes) writeFileSync(join(dir, `${id}.log`), node.output);
    return dir;
  }

  /** Stops every node still running (SIGTERM, then waits for its exit). */
  async stopAll(): Promise<void> {
    await Promise.all(
      [...this.nodes.values()].map(async (node) => {
        node.signal('SIGCONT'); // a test that failed mid-SIGSTOP must not leave a frozen process
        await node.stop('SIGTERM');
      }),
    );
  }
}

export function summarize(view: ClusterView): string {
  const counts = new Map<string, number>();
  for (const { owner } of view.slots)
    counts.set(owner ?? '(none)', (counts.get(owner ?? '(none)') ?? 0) + 1);
  return [...counts].map(([owner, count]) => `${owner}=${count}`).join(' ');
}

/** One poll of the cluster view: when it was answered, and each slot's owner. */
export interface Observation {
  /** When the request was sent: the state read was at least this recent. */
  readonly sentAtMs: number;
  /** When the answer arrived. */
  readonly atMs: number;
  /** Each slot's owner key (null: none). */
  readonly owners: ReadonlyArray<string | null>;
  /** Whether the owner fires the slot (it reported its epoch after acquiring it in its engine). */
  readonly firing: readonly boolean[];
  readonly nodes: readonly string[];
}

/** Polls one node's cluster view at a fixed interval and keeps every answer. */
export class ViewRecorder {
  readonly observations: Observation[] = [];
  private running = false;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly url: string,
    private readonly intervalMs: number,
  ) {}

  start(): this {
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        const started = Date.now();
        const view = await fetchView(this.url, 1000);
        if (view) {
          this.observations.push({
            sentAtMs: started,
            atMs: Date.now(),
            owners: view.slots.map((slot) => slot.owner),
            firing: view.slots.map((slot) => slot.owner !== null && slot.epoch !== null),
            nodes: view.nodes.map((node) => node.id),
          });
        }
        await sleep(Math.max(0, this.intervalMs - (Date.now() - started)));
      }
    })();
    return this;
  }

  /** Resolves once `count` more observations than now have been recorded. */
  async more(count: number, timeoutMs = 10_000): Promise<void> {
    const target = this.observations.length + count;
    const deadline = Date.now() + timeoutMs;
    while (this.observations.length < target) {
      if (Date.now() > deadline)
        throw new Error(`the cluster view did not answer ${count} times within ${timeoutMs} ms`);
      await sleep(this.intervalMs / 2);
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}

/**
 * For each slot `from` fired at the first observation that later moved to another node: the gap
 * between the last observation still showing `from` as its owner and the first showing the new
 * owner firing it. An upper bound of the real gap (old owner stops firing → new owner fires) with
 * the poll interval (plus the request's own time) as its resolution.
 */
export function handoffGaps(
  observations: readonly Observation[],
  from: string,
): Array<{ slot: number; gapMs: number; to: string }> {
  const first = observations[0];
  if (!first) return [];
  const gaps: Array<{ slot: number; gapMs: number; to: string }> = [];
  first.owners.forEach((owner, slot) => {
    if (owner !== from) return;
    let lastOld: number | undefined;
    for (const observation of observations) {
      const now = observation.owners[slot] ?? null;
      if (now === from) lastOld = observation.atMs;
      else if (now !== null && observation.firing[slot] && lastOld !== undefined) {
        gaps.push({ slot, gapMs: observation.atMs - lastOld, to: now });
        return;
      }
    }
  });
  return gaps;
}

/**
 * How many observations showed some slot not being fired (no owner, or an owner still taking it
 * over), and the longest run of consecutive observations one slot spent so (first to last, ms).
 */
export function unownedSpells(observations: readonly Observation[]): {
  observationsWithUnowned: number;
  longestMs: number;
} {
  let observationsWithUnowned = 0;
  let longestMs = 0;
  const since = new Map<number, number>();
  for (const observation of observations) {
    if (observation.firing.some((firing) => !firing)) observationsWithUnowned++;
    observation.firing.forEach((firing, slot) => {
      if (!firing) {
        const start = since.get(slot) ?? observation.atMs;
        since.set(slot, start);
        longestMs = Math.max(longestMs, observation.atMs - start);
      } else since.delete(slot);
    });
  }
  return { observationsWithUnowned, longestMs };
}

export interface Accepted {
  readonly id: string;
  readonly deliverAtMs: number;
  readonly via: string;
}

/**
 * Posts a batch of messages every `intervalMs` to a random node among `targets`, due
 * `minDelayMs`..`maxDelayMs` later. Keeps what was accepted (201); a request that failed or timed
 * out is counted but not expected (the node may or may not have committed it).
 */
export class LoadGenerator {
  readonly accepted: Accepted[] = [];
  failedRequests = 0;
  targets: string[] = [];
  private running = false;
  private loop: Promise<void> | undefined;
  private sequence = 0;

  constructor(
    private readonly cluster: TestCluster,
    private readonly topic: string,
    private readonly options: {
      batchSize: number;
      intervalMs: number;
      minDelayMs: number;
      maxDelayMs: number;
      runTag: string;
    },
  ) {}

  start(targets: string[]): this {
    this.targets = [...targets];
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        const started = Date.now();
        const target = this.targets[Math.floor(Math.random() * this.targets.length)];
        if (target) await this.postBatch(target);
        await sleep(Math.max(0, this.options.intervalMs - (Date.now() - started)));
      }
    })();
    return this;
  }

  without(id: string): void {
    this.targets = this.targets.filter((target) => target !== id);
  }

  with(id: string): void {
    if (!this.targets.includes(id)) this.targets.push(id);
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  private async postBatch(target: string): Promise<void> {
    const { batchSize, minDelayMs, maxDelayMs, runTag } = this.options;
    const now = Date.now();
    const messages = Array.from({ length: batchSize }, () => ({
      id: `${runTag}-${++this.sequence}`,
      topic: this.topic,
      payload: { n: this.sequence },
      deliverAt: now + minDelayMs + Math.floor(Math.random() * (maxDelayMs - minDelayMs)),
    }));
    try {
      const response = await fetch(`${this.cluster.node(target).url}/v1/messages/batch`, {
        method: 'POST',
        headers: { authorization: `Bearer ${APP_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ messages }),
        signal: AbortSignal.timeout(3000),
      });
      if (response.status !== 200) {
        this.failedRequests++;
        await response.arrayBuffer();
        return;
      }
      const body = (await response.json()) as {
        results: Array<{ status: number; message?: { id: string; deliverAt: string } }>;
      };
      for (const result of body.results) {
        if (result.status === 201 && result.message) {
          this.accepted.push({
            id: result.message.id,
            deliverAtMs: Date.parse(result.message.deliverAt),
            via: target,
          });
        }
      }
    } catch {
      this.failedRequests++;
    }
  }
}

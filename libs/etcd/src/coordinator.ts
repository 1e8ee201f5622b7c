/**
 * Slot ownership on etcd: lease membership, fenced ownership keys, rebalance, handoff and
 * self-fencing. docs/cluster.md explains the protocol and why it is safe. The invariants:
 *
 * - A node fires a slot only while it holds the slot's owner key (created if absent, bound to its
 *   lease) AND its engine acquired the slot with the key's create revision as the epoch floor.
 *   Postgres fences every claim and mark by that epoch, so whatever timing goes wrong, a node that
 *   lost a slot changes nothing of it once the next owner acquired it.
 * - Handoff: the old owner stops firing (the engine waits for in-flight batches) BEFORE it deletes
 *   its key; the new owner creates the key only once it is gone.
 * - Self-fence: `canFire()` is false once the last keepalive etcd acknowledged was sent more than
 *   `ttl - margin` ago; by then the lease may have expired and another node may own our slots.
 *   The etcd3 client reports `lost` late (up to 2 × TTL while cut off), so this is measured here.
 * - One pass at a time: every change of ownership runs inside a serialized reconcile pass, so the
 *   engine sees acquire and release calls in the order ownership changed.
 */
import type { SlotLease } from '@hourglass/core';
import { DependencyUnavailableError, HourglassError, assignSlots } from '@hourglass/core';
import type {
  Clock,
  ClusterView,
  Logger,
  SlotCoordinator,
  SlotEngine,
} from '@hourglass/core';
import type { IOperation, IOptions, Lease, Namespace, Watcher } from 'etcd3';
import { Etcd3 } from 'etcd3';
import { NODE_ID_PATTERN, drainedKey, keyBase, nodeKey, ownerKey, pinKey } from './keys';
import type { NodeInfo } from './keys';
import { planPass } from './plan';
import type { HeldSlot, PassPlan } from './plan';
import { isRemovalOnly, membershipOf, ownersOf, parseClusterState } from './state';
import type { ClusterState, Membership } from './state';

export interface EtcdCoordinatorOptions {
  /** etcd client URLs, `http(s)://host:port`. */
  endpoints: readonly string[];
  /** The cluster's key prefix; every node of a cluster uses the same one. @default '/hourglass' */
  prefix?: string;
  /** Unique in the cluster (`[A-Za-z0-9._-]`, 1-64 characters). */
  nodeId: string;
  /** Published under the node's key for admins and other nodes. */
  httpUrl: string;
  grpcAddress: string;
  /** The cluster's fixed slot count. */
  slotCount: number;
  /** TTL of the membership lease; a dead node's slots move after about this long. @default 5 */
  leaseTtlSeconds?: number;
  /** How long membership (and pins and drains) must be stable before slots move. @default 1000 */
  rebalanceDelayMs?: number;
  /** Full reconcile every so often, in case a watch event was missed. @default 1000 */
  resyncIntervalMs?: number;
  /**
   * How long before the lease could expire (counted from the send time of the last acknowledged
   * keepalive) the node stops firing. @default max(1000, TTL / 4)
   */
  fenceMarginMs?: number;
  /** Deadline of each unary etcd call. @default max(1000, TTL × 1000 / 2) */
  callTimeoutMs?: number;
  /** @default Date.now */
  clock?: Clock;
  /** @default silent */
  logger?: Logger;
}

/** The options with defaults applied. */
interface Settings {
  readonly endpoints: readonly string[];
  readonly base: string;
  readonly nodeId: string;
  readonly httpUrl: string;
  readonly grpcAddress: string;
  readonly slotCount: number;
  readonly ttlSeconds: number;
  readonly rebalanceDelayMs: number;
  readonly resyncIntervalMs: number;
  readonly fenceMarginMs: number;
  readonly callTimeoutMs: number;
  readonly clock: Clock;
  readonly logger: Logger;
}

const silentLogger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};
const systemClock: Clock = { now: () => Date.now() };

/** etcd transactions in flight at once when keys are tried one by one. */
const TXN_CONCURRENCY = 32;
/** Keys per transaction; etcd refuses more than 128 operations per list (`--max-txn-ops`). */
const TXN_MAX_KEYS = 64;
/**
 * How long a leaving node keeps firing after unregistering: the others rebalance as soon as they
 * see it go (no debounce for departures) and then take each slot the moment its key disappears.
 */
const LEAVE_NOTICE_MS = 300;
/** Debounce cap: membership that keeps changing is adopted after this many delays anyway. */
const MAX_DEBOUNCE_FACTOR = 5;
/** Watch reconnect backoff: 100 ms doubling to at most 1 s (the etcd3 default grows to 30 s). */
const WATCH_BACKOFF_MAX_MS = 1000;

interface Session {
  readonly lease: Lease;
  leaseId: string;
  /** Set by the lease's `lost` event or when our node key is found gone; never cleared. */
  lost: boolean;
  /** Send time of the last keepalive etcd acknowledged (or of the grant): the lease lives TTL past it. */
  renewedAtMs: number;
  /** Send times of keepalives awaiting their answer, oldest first (etcd answers in order). */
  readonly sentAtMs: number[];
  /** Mod revision of our node key, to delete exactly that registration when leaving. */
  nodeKeyRevision: number;
}

type Lifecycle = 'idle' | 'running' | 'stopping' | 'stopped';

type WatchBackoff = NonNullable<NonNullable<IOptions['faultHandling']>['watchBackoff']>;

function watchBackoff(attempt: number): WatchBackoff {
  return {
    duration: Math.min(WATCH_BACKOFF_MAX_MS, 100 * 2 ** attempt),
    next: () => watchBackoff(attempt + 1),
  };
}

function settings(options: EtcdCoordinatorOptions): Settings {
  const ttlSeconds = options.leaseTtlSeconds ?? 5;
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 2)
    throw new RangeError(`leaseTtlSeconds must be an integer >= 2, got ${ttlSeconds}`);
  if (!NODE_ID_PATTERN.test(options.nodeId))
    throw new RangeError(`node id "${options.nodeId}" must be 1-64 of A-Z a-z 0-9 . _ -`);
  if (!Number.isInteger(options.slotCount) || options.slotCount < 1)
    throw new RangeError(`slotCount must be a positive integer, got ${options.slotCount}`);
  const ttlMs = ttlSeconds * 1000;
  const fenceMarginMs = options.fenceMarginMs ?? Math.max(1000, ttlMs / 4);
  if (fenceMarginMs >= ttlMs)
    throw new RangeError(
      `fenceMarginMs (${fenceMarginMs}) must be below the lease TTL (${ttlMs} ms)`,
    );
  return {
    endpoints: options.endpoints,
    base: keyBase(options.prefix ?? '/hourglass'),
    nodeId: options.nodeId,
    httpUrl: options.httpUrl,
    grpcAddress: options.grpcAddress,
    slotCount: options.slotCount,
    ttlSeconds,
    rebalanceDelayMs: options.rebalanceDelayMs ?? 1000,
    resyncIntervalMs: options.resyncIntervalMs ?? 1000,
    fenceMarginMs,
    callTimeoutMs: options.callTimeoutMs ?? Math.max(1000, ttlMs / 2),
    clock: options.clock ?? systemClock,
    logger: options.logger ?? silentLogger,
  };
}

/** Runs `work` over `items` with at most `limit` in flight; resolves with the failures. */
async function settleAll<T>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<void>,
): Promise<unknown[]> {
  const failures: unknown[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      try {
        await work(item);
      } catch (error) {
        failures.push(error);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return failures;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export class EtcdCoordinator implements SlotCoordinator {
  private readonly settings: Settings;
  private readonly client: Etcd3;
  /** The cluster's keys, relative to the prefix. */
  private readonly ns: Namespace;
  private lifecycle: Lifecycle = 'idle';
  private stopping: Promise<void> | undefined;
  private session: Session | undefined;
  /** Leases of earlier sessions, revoked (best effort) so their keys go at once, not after the TTL. */
  private readonly staleLeases = new Set<Lease>();
  /** Slots whose owner key we created under the current session. */
  private readonly held = new Map<number, HeldSlot>();
  /** The membership the assignment currently follows, and the change waiting out the debounce. */
  private adopted: Membership | undefined;
  private pending: { signature: string; sinceMs: number; firstSinceMs: number } | undefined;
  private watcher: Watcher | undefined;
  private watchRetry: NodeJS.Timeout | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private passTimer: NodeJS.Timeout | undefined;
  private passTimerDueMs = Number.POSITIVE_INFINITY;
  private passLoop: Promise<void> | undefined;
  private passAgain = false;
  /** Engine acquisitions still running (a pass does not wait for them). */
  private readonly acquisitions = new Set<Promise<void>>();
  private failingSince: number | undefined;

  constructor(
    private readonly engine: SlotEngine,
    options: EtcdCoordinatorOptions,
  ) {
    this.settings = settings(options);
    const { callTimeoutMs } = this.settings;
    this.client = new Etcd3({
      hosts: [...this.settings.endpoints],
      // A hung etcd must not hang a pass (or a graceful stop) forever; streams have their own timeouts.
      defaultCallOptions: (context) =>
        context.isStream ? {} : { deadline: Date.now() + callTimeoutMs },
      faultHandling: { watchBackoff: watchBackoff(0) },
      dialTimeout: callTimeoutMs,
      // A large cluster's range read (one key per slot) can exceed gRPC's 4 MiB default.
      grpcOptions: { 'grpc.max_receive_message_length': 64 * 1024 * 1024 },
    });
    this.ns = this.client.namespace(this.settings.base);
  }

  get nodeId(): string {
    return this.settings.nodeId;
  }

  get slotCount(): number {
    return this.settings.slotCount;
  }

  /** Slots this node holds keys for and fires (the engine acquired them). For tests and logs. */
  ownedSlots(): number[] {
    return [...this.held]
      .filter(([, held]) => held.acquired)
      .map(([slot]) => slot)
      .sort((a, b) => a - b);
  }

  /**
   * Joins: grants the lease, registers the node and starts watching. Slots are acquired in the
   * background once the membership has been stable for `rebalanceDelayMs`.
   * @throws DependencyUnavailableError when etcd cannot be reached.
   */
  async start(): Promise<void> {
    if (this.lifecycle !== 'idle') {
      if (this.lifecycle === 'running') return;
      throw new Error('EtcdCoordinator cannot be restarted after stop(); create a new one');
    }
    this.lifecycle = 'running';
    try {
      await this.join();
      await this.watch();
    } catch (error) {
      this.lifecycle = 'stopped';
      await this.session?.lease.revoke().catch(() => undefined);
      this.session = undefined;
      await this.watcher?.cancel().catch(() => undefined);
      this.client.close();
      throw new DependencyUnavailableError('etcd', error);
    }
    this.resyncTimer = setInterval(() => this.kick(0), this.settings.resyncIntervalMs);
    this.kick(0);
  }

  /**
   * Graceful leave: unregisters (the others rebalance at once), keeps firing while they adopt the
   * new membership, then stops firing, deletes its owner keys and revokes its lease. Resolves when
   * the engine fires none of our slots any more and the etcd client is closed.
   */
  stop(): Promise<void> {
    if (this.lifecycle === 'idle') {
      this.lifecycle = 'stopped';
      this.client.close();
      return Promise.resolve();
    }
    // A start() that failed already cleaned up.
    if (this.lifecycle === 'stopped' && !this.stopping) return Promise.resolve();
    this.stopping ??= this.leave();
    return this.stopping;
  }

  ownershipConfirmed(): boolean {
    if (this.lifecycle !== 'running' && this.lifecycle !== 'stopping') return false;
    const session = this.session;
    return session !== undefined && !session.lost && this.isFresh(session);
  }

  // ---------------------------------------------------------------------------------------------
  // Admin operations. Any node can serve them: they only write etcd, and every node reacts to the
  // change through its watch (after the rebalance debounce).

  /** Nodes, owners, epochs and pins as etcd has them right now. */
  async clusterView(): Promise<ClusterView> {
    const state = await this.adminRead();
    const slotsOf = new Map<string, number[]>();
    for (const owner of state.owners.values()) {
      const list = slotsOf.get(owner.node) ?? [];
      list.push(owner.slot);
      slotsOf.set(owner.node, list);
    }
    const nodes = [...state.nodes.values()]
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .map((node) => ({
        id: node.id,
        httpUrl: node.httpUrl,
        grpcAddress: node.grpcAddress,
        startedAt: node.startedAt,
        drained: state.drained.has(node.id),
        slots: (slotsOf.get(node.id) ?? []).sort((a, b) => a - b),
      }));
    const slots: ClusterView['slots'] = [];
    for (let slot = 0; slot < this.settings.slotCount; slot++) {
      const owner = state.owners.get(slot);
      const pinnedTo = state.pins.get(slot);
      slots.push({
        slot,
        owner: owner?.node ?? null,
        epoch: owner?.epoch ?? null,
        ...(pinnedTo !== undefined ? { pinnedTo } : {}),
      });
    }
    return { slotCount: this.settings.slotCount, nodes, slots };
  }

  /**
   * Pins a slot to a live node. The pin outlives the node: while the node is gone or drained the
   * slot is assigned as usual, and it goes back when the node returns.
   * @throws HourglassError `not_found` when no live node has that id.
   */
  async pinSlot(slot: number, node: string): Promise<void> {
    this.checkSlot(slot);
    const state = await this.adminRead();
    if (!state.nodes.has(node)) throw new HourglassError('not_found', `no live node "${node}"`);
    await this.adminWrite(() => this.ns.put(pinKey(slot)).value(node).exec());
  }

  /** Removes a slot's pin; removing a pin that does not exist succeeds (idempotent). */
  async unpinSlot(slot: number): Promise<void> {
    this.checkSlot(slot);
    await this.adminWrite(() => this.ns.delete().key(pinKey(slot)).exec());
  }

  /**
   * Drains a node: it keeps running and accepting messages but owns no slot. Persistent until
   * undrained, so a drained node that restarts stays drained.
   * @throws HourglassError `not_found` when no live node has that id.
   */
  async drainNode(node: string): Promise<void> {
    const state = await this.adminRead();
    if (!state.nodes.has(node)) throw new HourglassError('not_found', `no live node "${node}"`);
    await this.adminWrite(() =>
      this.ns
        .put(drainedKey(node))
        .value(JSON.stringify({ since: new Date(this.settings.clock.now()).toISOString() }))
        .exec(),
    );
  }

  /** @throws HourglassError `not_found` when the node is neither live nor drained. */
  async undrainNode(node: string): Promise<void> {
    const state = await this.adminRead();
    if (!state.nodes.has(node) && !state.drained.has(node))
      throw new HourglassError('not_found', `no node "${node}"`);
    await this.adminWrite(() => this.ns.delete().key(drainedKey(node)).exec());
  }

  private checkSlot(slot: number): void {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.settings.slotCount) {
      throw new HourglassError(
        'invalid_request',
        `slot must be an integer from 0 to ${this.settings.slotCount - 1}`,
        [{ path: 'slot', message: 'out of range' }],
      );
    }
  }

  private async adminRead(): Promise<ClusterState> {
    try {
      return await this.readState();
    } catch (error) {
      throw new DependencyUnavailableError('etcd', error);
    }
  }

  private async adminWrite(write: () => Promise<unknown>): Promise<void> {
    try {
      await write();
    } catch (error) {
      throw new DependencyUnavailableError('etcd', error);
    }
    this.kick(0);
  }

  // ---------------------------------------------------------------------------------------------
  // Session: lease, keepalive bookkeeping, registration.

  private isFresh(session: Session): boolean {
    return (
      this.settings.clock.now() - session.renewedAtMs <
      this.settings.ttlSeconds * 1000 - this.settings.fenceMarginMs
    );
  }

  private async join(): Promise<Session> {
    const { clock, nodeId, ttlSeconds, logger } = this.settings;
    const lease = this.client.lease(ttlSeconds);
    const session: Session = {
      lease,
      leaseId: '',
      lost: false,
      renewedAtMs: clock.now(),
      sentAtMs: [],
      nodeKeyRevision: 0,
    };
    lease.on('lost', (error) => this.onLeaseLost(session, error));
    lease.on('keepaliveEstablished', () => {
      session.sentAtMs.length = 0;
    });
    lease.on('keepaliveFired', () => {
      session.sentAtMs.push(clock.now());
    });
    lease.on('keepaliveSucceeded', () => {
      const sentAt = session.sentAtMs.shift();
      if (sentAt !== undefined && sentAt > session.renewedAtMs) session.renewedAtMs = sentAt;
    });
    try {
      session.leaseId = await lease.grant();
      await this.revokeStaleLeases();
      const info: NodeInfo = {
        id: nodeId,
        httpUrl: this.settings.httpUrl,
        grpcAddress: this.settings.grpcAddress,
        startedAt: new Date(clock.now()).toISOString(),
      };
      const put = await this.ns
        .put(nodeKey(nodeId))
        .value(JSON.stringify(info))
        .lease(session.leaseId)
        .exec();
      session.nodeKeyRevision = Number(put.header.revision);
    } catch (error) {
      session.lost = true;
      this.staleLeases.add(lease);
      throw error;
    }
    if (session.lost) throw new Error('the lease was lost while registering');
    this.session = session;
    logger.info({ lease: session.leaseId, ttlSeconds }, 'joined the cluster');
    return session;
  }

  private onLeaseLost(session: Session, error: unknown): void {
    if (session.lost) return;
    session.lost = true;
    if (this.session !== session) return;
    this.settings.logger.warn(
      { err: error, lease: session.leaseId },
      'etcd lease lost: stopping every slot, then rejoining',
    );
    this.kick(0);
  }

  private async revokeStaleLeases(): Promise<void> {
    for (const lease of [...this.staleLeases]) {
      try {
        await lease.revoke();
        this.staleLeases.delete(lease);
      } catch (error) {
        this.settings.logger.debug(
          { err: error },
          'revoking an old lease failed; it expires on its own',
        );
      }
    }
  }

  /**
   * Stops firing everything and forgets the session. Called when the lease is (or may be) lost:
   * our keys are gone or going, and another node may own our slots any moment.
   */
  private async dropAll(reason: string): Promise<void> {
    const session = this.session;
    this.session = undefined;
    if (session) {
      session.lost = true;
      session.lease.release();
      this.staleLeases.add(session.lease);
    }
    const firing = this.ownedSlots();
    this.held.clear();
    if (firing.length > 0) {
      await this.engine.releaseSlots(firing);
      this.settings.logger.warn({ slots: firing.length, reason }, 'stopped firing every slot');
    }
  }

  private async watch(): Promise<void> {
    const watcher = await this.client.watch().prefix(this.settings.base).create();
    this.watcher = watcher;
    // Events only wake a pass; the pass reads a full snapshot, so a missed or replayed event is harmless.
    watcher.on('data', () => this.kick(0));
    watcher.on('connected', () => this.kick(0));
    watcher.on('disconnected', (error) =>
      this.settings.logger.debug({ err: error }, 'etcd watch disconnected; reconnecting'),
    );
    watcher.on('error', (error) => {
      // The watch was cancelled by etcd (e.g. compacted revision): make a new one.
      this.settings.logger.warn({ err: error }, 'etcd watch failed; re-creating it');
      if (this.watcher === watcher) this.watcher = undefined;
      void watcher.cancel().catch(() => undefined);
      this.rewatchLater();
    });
  }

  private rewatchLater(): void {
    if (this.lifecycle !== 'running' || this.watchRetry) return;
    this.watchRetry = setTimeout(() => {
      this.watchRetry = undefined;
      if (this.lifecycle !== 'running' || this.watcher) return;
      this.watch().then(
        () => this.kick(0),
        () => this.rewatchLater(),
      );
    }, WATCH_BACKOFF_MAX_MS);
  }

  // ---------------------------------------------------------------------------------------------
  // Reconcile passes.

  /** Runs a pass after `delayMs` (or sooner if one is already due sooner). */
  private kick(delayMs: number): void {
    if (this.lifecycle !== 'running') return;
    const dueMs = Date.now() + delayMs;
    if (this.passTimer && this.passTimerDueMs <= dueMs) return;
    clearTimeout(this.passTimer);
    this.passTimerDueMs = dueMs;
    this.passTimer = setTimeout(() => {
      this.passTimer = undefined;
      this.passTimerDueMs = Number.POSITIVE_INFINITY;
      this.runPasses();
    }, delayMs);
  }

  private runPasses(): void {
    if (this.passLoop) {
      this.passAgain = true;
      return;
    }
    this.passLoop = (async () => {
      do {
        this.passAgain = false;
        try {
          await this.pass();
          if (this.failingSince !== undefined) {
            this.settings.logger.info(
              { failedForMs: Date.now() - this.failingSince },
              'etcd reachable again',
            );
            this.failingSince = undefined;
          }
        } catch (error) {
          // Logged once per outage: with etcd down every resync fails the same way.
          if (this.failingSince === undefined) {
            this.failingSince = Date.now();
            this.settings.logger.warn(
              { err: error },
              'cluster pass failed (etcd or Postgres unavailable?); retrying',
            );
          } else {
            this.settings.logger.debug({ err: error }, 'cluster pass failed again');
          }
        }
      } while (this.passAgain && this.lifecycle === 'running');
    })().finally(() => {
      this.passLoop = undefined;
    });
  }

  private async pass(): Promise<void> {
    if (this.lifecycle !== 'running') return;
    let session = this.session;
    if (!session || session.lost) {
      await this.dropAll(session ? 'lease lost' : 'not joined');
      if (this.lifecycle !== 'running') return;
      session = await this.join();
    }
    const state = await this.readState();
    if (this.session !== session || session.lost || this.lifecycle !== 'running') return;
    const self = state.nodes.get(this.settings.nodeId);
    if (!self || self.lease !== session.leaseId) {
      // Our registration is gone: the lease expired (we were paused or cut off past the TTL)
      // even if the client has not said so yet.
      this.onLeaseLost(
        session,
        new Error(`node key of ${this.settings.nodeId} is gone or held by another lease`),
      );
      return;
    }
    const target = this.targetFor(state);
    const plan = planPass({
      me: this.settings.nodeId,
      leaseId: session.leaseId,
      held: this.held,
      state,
      target,
      slotCount: this.settings.slotCount,
    });
    await this.apply(session, plan, target);
  }

  private async readState(): Promise<ClusterState> {
    const response = await this.ns.getAll().exec();
    return parseClusterState(
      Number(response.header.revision),
      response.kvs.map((kv) => ({
        key: kv.key.toString(),
        value: kv.value.toString(),
        createRevision: Number(kv.create_revision),
        modRevision: Number(kv.mod_revision),
        lease: String(kv.lease),
      })),
      this.settings.slotCount,
    );
  }

  /**
   * The assignment to move towards. Membership changes (nodes, drains, pins) are adopted only
   * after `rebalanceDelayMs` without further change, so a burst of joins moves slots once; the
   * current owners are always fresh, so handoffs proceed as soon as keys disappear.
   */
  private targetFor(state: ClusterState): Map<number, string> | undefined {
    const { clock, rebalanceDelayMs, slotCount, logger } = this.settings;
    const membership = membershipOf(state);
    const now = clock.now();
    if (membership.signature === this.adopted?.signature) {
      this.pending = undefined;
    } else if (!this.adopted && state.owners.size > 0) {
      // Joining a running cluster: the others debounce our arrival before they let slots go, and
      // we take each as soon as its key disappears. Debouncing here too would only widen that gap
      // (we start counting later than they do). A cold start (no owners) still debounces, so
      // nodes starting together coalesce before anyone claims.
      this.adopted = membership;
      this.pending = undefined;
    } else if (this.adopted && isRemovalOnly(this.adopted, membership)) {
      // Nodes left (lease expired or graceful leave) and nothing else changed: their slots are
      // unowned or about to be, so waiting would only lengthen the failover. Debouncing exists to
      // coalesce joins and admin changes, which move slots that are being fired.
      logger.info(
        {
          nodes: membership.nodes,
          left: this.adopted.nodes.filter((id) => !membership.nodes.includes(id)),
        },
        'nodes left; rebalancing now',
      );
      this.adopted = membership;
      this.pending = undefined;
    } else {
      if (this.pending?.signature !== membership.signature) {
        this.pending = {
          signature: membership.signature,
          sinceMs: now,
          firstSinceMs: this.pending?.firstSinceMs ?? now,
        };
      }
      const dueMs = Math.min(
        this.pending.sinceMs + rebalanceDelayMs,
        this.pending.firstSinceMs + MAX_DEBOUNCE_FACTOR * rebalanceDelayMs,
      );
      if (now >= dueMs) {
        logger.info(
          { nodes: membership.nodes, drained: [...membership.drained], pins: membership.pins.size },
          'membership settled; rebalancing',
        );
        this.adopted = membership;
        this.pending = undefined;
      } else {
        this.kick(dueMs - now);
      }
    }
    if (!this.adopted) return undefined;
    return assignSlots({
      slotCount,
      nodes: this.adopted.nodes,
      drained: this.adopted.drained,
      pins: this.adopted.pins,
      previous: ownersOf(state),
    });
  }

  private async apply(
    session: Session,
    plan: PassPlan,
    target: ReadonlyMap<number, string> | undefined,
  ): Promise<void> {
    const { logger, nodeId } = this.settings;
    for (const owner of plan.adopt)
      this.held.set(owner.slot, { revision: owner.createRevision, acquired: false });

    // 1. Stop firing what we lost or hand over, before any key goes.
    const stopFiring = [...plan.lost, ...plan.release].filter(
      (slot) => this.held.get(slot)?.acquired,
    );
    for (const slot of plan.lost) this.held.delete(slot);
    for (const slot of plan.release) {
      const held = this.held.get(slot);
      if (held) held.acquired = false;
    }
    if (stopFiring.length > 0) await this.engine.releaseSlots(stopFiring);
    if (plan.lost.length > 0)
      logger.warn({ slots: plan.lost }, 'owner keys vanished under us; stopped firing those slots');

    // 2. Hand over: delete the keys of released slots (guarded, so only the key we created). One
    //    transaction for all of them, so the new owners see them go in one event and take them in
    //    one pass (one engine acquisition instead of several queued one after the other).
    const releasing = plan.release.flatMap((slot) => {
      const held = this.held.get(slot);
      return held ? [{ slot, revision: held.revision }] : [];
    });
    const released = await this.guardedTxns(
      releasing,
      (entry) => ({ key: ownerKey(entry.slot), createRevision: entry.revision }),
      (entry) => this.ns.delete().key(ownerKey(entry.slot)),
    );
    for (const entry of releasing) {
      // Errored ones stay held (not acquired) and are retried next pass; the others are gone or were never ours.
      if (!released.errored.has(entry)) this.held.delete(entry.slot);
    }
    if (releasing.length > 0)
      logger.info({ slots: releasing.length, failed: released.errored.size }, 'released slots');
    await this.guardedTxns(
      plan.stale,
      (owner) => ({ key: ownerKey(owner.slot), createRevision: owner.createRevision }),
      (owner) => this.ns.delete().key(ownerKey(owner.slot)),
    );
    if (released.errors.length > 0) throw released.errors[0];

    // 3. Take: create the keys of free slots assigned to us, then acquire them in the engine.
    if (!target || session.lost || !this.isFresh(session)) return;
    if (plan.claim.length > 0) {
      const value = JSON.stringify({ node: nodeId });
      const claimed = await this.guardedTxns(
        plan.claim,
        (slot) => ({ key: ownerKey(slot), createRevision: 0 }),
        (slot) => this.ns.put(ownerKey(slot)).value(value).lease(session.leaseId),
      );
      if (!session.lost)
        for (const [slot, revision] of claimed.committed)
          this.held.set(slot, { revision, acquired: false });
      if (claimed.committed.size < plan.claim.length)
        logger.debug(
          { wanted: plan.claim.length, won: claimed.committed.size },
          'some slots were taken first',
        );
    }
    const toAcquire = [...this.held].filter(
      ([slot, held]) => !held.acquired && target.get(slot) === nodeId,
    );
    if (toAcquire.length === 0 || session.lost || !this.isFresh(session)) return;
    const slots = toAcquire.map(([slot]) => slot);
    const minEpoch = toAcquire.reduce((max, [, held]) => Math.max(max, held.revision), 0);
    // Not awaited: loading the slots can take a while, and the next pass must not wait for it to
    // claim the next released key. The engine runs acquire and release calls in the order they are
    // made, so marking them acquired now is safe: a later release queues behind this acquire.
    for (const [, held] of toAcquire) held.acquired = true;
    const startedMs = Date.now();
    const acquisition = this.engine.acquireSlots(slots, minEpoch).then(
      async (leases) => {
        logger.info(
          {
            slots: slots.length,
            minEpoch,
            owned: this.ownedSlots().length,
            tookMs: Date.now() - startedMs,
          },
          'acquired slots',
        );
        await this.publishEpochs(session, toAcquire, leases);
      },
      (error: unknown) => {
        for (const [slot, held] of toAcquire)
          if (this.held.get(slot) === held) held.acquired = false;
        logger.warn(
          { err: error, slots: slots.length },
          'acquiring slots in the engine failed; retrying',
        );
        this.kick(1000);
      },
    );
    this.acquisitions.add(acquisition);
    void acquisition.finally(() => this.acquisitions.delete(acquisition));
  }

  /** Rewrites our owner keys with the epochs Postgres gave us, for the admin view (informational). */
  private async publishEpochs(
    session: Session,
    acquired: ReadonlyArray<[number, HeldSlot]>,
    leases: readonly SlotLease[],
  ): Promise<void> {
    const epochs = new Map(leases.map((lease) => [lease.slot, lease.epoch]));
    const publish = acquired.flatMap(([slot, held]) => {
      const epoch = epochs.get(slot);
      return epoch !== undefined && this.held.get(slot) === held
        ? [{ slot, revision: held.revision, epoch }]
        : [];
    });
    if (publish.length === 0 || session.lost) return;
    const { errors } = await this.guardedTxns(
      publish,
      (entry) => ({ key: ownerKey(entry.slot), createRevision: entry.revision }),
      (entry) =>
        this.ns
          .put(ownerKey(entry.slot))
          .value(JSON.stringify({ node: this.settings.nodeId, epoch: entry.epoch }))
          .ignoreLease(),
    );
    if (errors.length > 0)
      this.settings.logger.debug({ err: errors[0] }, 'could not publish some epochs');
  }

  /**
   * Commits `op` for each item whose key still has the given create revision (0: absent), in one
   * transaction per {@link TXN_MAX_KEYS} items: a chunk commits as a whole, so other nodes see it
   * in one watch event. When a guard fails the chunk's items are tried one by one.
   * `committed`: item → revision of its commit. `errored`: items that met an error (not a failed guard).
   */
  private async guardedTxns<T>(
    items: readonly T[],
    guard: (item: T) => { key: string; createRevision: number },
    op: (item: T) => IOperation,
  ): Promise<{ committed: Map<T, number>; errored: Set<T>; errors: unknown[] }> {
    const committed = new Map<T, number>();
    const errored = new Set<T>();
    const errors: unknown[] = [];
    const commit = async (chunk: readonly T[]): Promise<boolean> => {
      const [first, ...rest] = chunk.map(guard);
      if (!first) return true;
      const txn = this.ns.if(first.key, 'Create', '==', first.createRevision);
      for (const more of rest) txn.and(more.key, 'Create', '==', more.createRevision);
      const result = await txn.then(...chunk.map(op)).commit();
      if (result.succeeded)
        for (const item of chunk) committed.set(item, Number(result.header.revision));
      return result.succeeded;
    };
    for (let i = 0; i < items.length; i += TXN_MAX_KEYS) {
      const chunk = items.slice(i, i + TXN_MAX_KEYS);
      try {
        if ((await commit(chunk)) || chunk.length === 1) continue;
      } catch (error) {
        // etcd unreachable or refusing: one by one would fail the same way.
        errors.push(error);
        for (const item of chunk) errored.add(item);
        continue;
      }
      await settleAll(chunk, TXN_CONCURRENCY, async (item) => {
        try {
          await commit([item]);
        } catch (error) {
          errors.push(error);
          errored.add(item);
        }
      });
    }
    return { committed, errored, errors };
  }

  // ---------------------------------------------------------------------------------------------
  // Leaving.

  private async leave(): Promise<void> {
    const { logger, nodeId } = this.settings;
    this.lifecycle = 'stopping';
    clearInterval(this.resyncTimer);
    clearTimeout(this.passTimer);
    clearTimeout(this.watchRetry);
    this.passTimer = undefined;
    await this.passLoop;
    await Promise.all([...this.acquisitions]);
    const session = this.session;
    const startedMs = Date.now();
    if (session && !session.lost && this.held.size > 0) {
      let others = false;
      try {
        await this.ns
          .if(nodeKey(nodeId), 'Mod', '==', session.nodeKeyRevision)
          .then(this.ns.delete().key(nodeKey(nodeId)))
          .commit();
        const state = await this.readState();
        others = [...state.nodes.keys()].some((id) => id !== nodeId && !state.drained.has(id));
      } catch (error) {
        logger.warn({ err: error }, 'could not unregister from etcd; releasing slots now');
      }
      // Until the others have seen us go we keep firing, so a slot is without a firing owner only
      // for the handoff itself: our release, the key's deletion, their claim.
      if (others) await sleep(LEAVE_NOTICE_MS);
    }
    const firing = this.ownedSlots();
    if (firing.length > 0) await this.engine.releaseSlots(firing);
    if (session && !session.lost) {
      const { errored, errors } = await this.guardedTxns(
        [...this.held],
        ([slot, held]) => ({ key: ownerKey(slot), createRevision: held.revision }),
        ([slot]) => this.ns.delete().key(ownerKey(slot)),
      );
      if (errors.length > 0)
        logger.warn(
          { err: errors[0], slots: errored.size },
          'could not delete some owner keys; they go when the lease is revoked or expires',
        );
    }
    this.held.clear();
    this.session = undefined;
    this.lifecycle = 'stopped';
    if (session) {
      this.staleLeases.add(session.lease);
      await this.revokeStaleLeases();
    }
    await this.watcher?.cancel().catch(() => undefined);
    this.watcher = undefined;
    this.client.close();
    logger.info({ slots: firing.length, tookMs: Date.now() - startedMs }, 'left the cluster');
  }
}

/**
 * Slot ownership on etcd: lease membership, fenced ownership keys, rebalance and handoff.
 * docs/cluster.md explains the protocol and why it is safe; this class only wires the parts:
 *
 *   session.ts    the lease, its keepalive, freshness, the node key
 *   watcher.ts    the watch of the prefix that wakes passes
 *   passes.ts     pass scheduling and plan application (plan.ts: the rules; target.ts: the debounce)
 *   ownership.ts  the keys we hold, what the engine fires, the engine call queue
 *   admin.ts      cluster view, pins, drains
 *   leave.ts      graceful leave
 *
 * The invariants:
 * - A node's ownership is confirmed (`ownershipConfirmed()`) only while its lease is known alive
 *   and every slot its engine fires is covered by an owner key of that lease. Otherwise the engine
 *   keeps firing, under the store's epoch lock: another node can raise a slot's epoch only after
 *   creating its key, and from then on the old owner produces nothing of it.
 * - Handoff: the old owner stops firing (the engine waits for in-flight batches) BEFORE it deletes
 *   its key; the new owner creates the key only once it is gone, and acquires with the key's
 *   create revision as the epoch floor.
 * - Losing etcd or the lease releases nothing: once etcd answers, each slot still fired is kept,
 *   claimed again, or released, as the state then says.
 */
import { DependencyUnavailableError } from '@hourglass/core';
import type { ClusterView, SlotCoordinator, SlotEngine } from '@hourglass/core';
import type { Etcd3, Namespace } from 'etcd3';
import { ClusterAdmin } from './admin';
import { leave } from './leave';
import { createClient, settings } from './options';
import type { EtcdCoordinatorOptions, Settings } from './options';
import { Ownership } from './ownership';
import { Passes } from './passes';
import { Sessions } from './session';
import { Rebalance } from './target';
import { ClusterWatch } from './watcher';

export type { EtcdCoordinatorOptions } from './options';

type Lifecycle = 'idle' | 'running' | 'stopping' | 'stopped';

export class EtcdCoordinator implements SlotCoordinator {
  private readonly settings: Settings;
  private readonly client: Etcd3;
  /** The cluster's keys, relative to the prefix. */
  private readonly ns: Namespace;
  private readonly sessions: Sessions;
  private readonly ownership: Ownership;
  private readonly passes: Passes;
  private readonly watch: ClusterWatch;
  private readonly admin: ClusterAdmin;
  private lifecycle: Lifecycle = 'idle';
  private stopping: Promise<void> | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;

  constructor(engine: SlotEngine, options: EtcdCoordinatorOptions) {
    const s = settings(options);
    this.settings = s;
    this.client = createClient(s);
    this.ns = this.client.namespace(s.base);
    this.sessions = new Sessions(this.client, this.ns, s, {
      lost: (session, reason) => {
        if (this.sessions.current !== session) return;
        s.logger.warn(
          { err: reason, lease: session.leaseId, firing: this.ownership.engaged().size },
          'etcd lease lost: the engine keeps firing its slots, fenced; rejoining',
        );
        this.passes.kick(0);
      },
      reconnected: () => this.passes.kick(0),
    });
    this.ownership = new Ownership(engine, s.logger);
    this.passes = new Passes(s, this.ns, this.sessions, this.ownership, new Rebalance(s));
    this.watch = new ClusterWatch(this.client, s, () => this.passes.kick(0));
    this.admin = new ClusterAdmin(s, this.ns, () => this.passes.kick(0));
  }

  get nodeId(): string {
    return this.settings.nodeId;
  }

  get slotCount(): number {
    return this.settings.slotCount;
  }

  /** Slots this node holds keys for and fires (the engine acquired them). For tests and logs. */
  ownedSlots(): number[] {
    return this.ownership.owned();
  }

  /**
   * etcd's current revision. Revisions only grow; a store that recorded higher ones (see
   * MessageStore.forgetOwnerRevisionsAbove) saw an earlier history of this etcd.
   * @throws DependencyUnavailableError when etcd cannot be reached.
   */
  async currentRevision(): Promise<number> {
    try {
      const response = await this.ns.get('revision-probe').exec();
      return Number(response.header.revision);
    } catch (error) {
      throw new DependencyUnavailableError('etcd', error);
    }
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
      await this.sessions.join();
      await this.watch.start();
    } catch (error) {
      this.lifecycle = 'stopped';
      await this.passes.stop();
      const session = this.sessions.current;
      if (session) this.sessions.retire(session);
      await this.sessions.revokeStale();
      await this.watch.stop();
      this.client.close();
      throw new DependencyUnavailableError('etcd', error);
    }
    this.resyncTimer = setInterval(() => this.passes.kick(0), this.settings.resyncIntervalMs);
    this.passes.kick(0);
  }

  /**
   * Graceful leave (leave.ts). Resolves when the engine fires none of our slots any more and the
   * etcd client is closed.
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
    return this.sessions.confirmed() && this.ownership.backed();
  }

  slotsFenced(slots: readonly number[]): void {
    this.ownership.fenced(slots);
    this.settings.logger.warn({ slots }, 'another node raised the epochs of slots we fired');
    this.passes.kick(0);
  }

  clusterView(): Promise<ClusterView> {
    return this.admin.clusterView();
  }

  pinSlot(slot: number, node: string): Promise<void> {
    return this.admin.pinSlot(slot, node);
  }

  unpinSlot(slot: number): Promise<void> {
    return this.admin.unpinSlot(slot);
  }

  drainNode(node: string): Promise<void> {
    return this.admin.drainNode(node);
  }

  undrainNode(node: string): Promise<void> {
    return this.admin.undrainNode(node);
  }

  private async leave(): Promise<void> {
    this.lifecycle = 'stopping';
    clearInterval(this.resyncTimer);
    await this.passes.stop();
    try {
      const { settings: s, ns, sessions, ownership } = this;
      await leave({ settings: s, ns, sessions, ownership });
    } finally {
      this.lifecycle = 'stopped';
      await this.watch.stop();
      this.client.close();
    }
  }
}

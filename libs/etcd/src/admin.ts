/**
 * Admin operations: the cluster view, pins and drains. Any node can serve them: they only read or
 * write etcd, and every node reacts to a change through its watch (after the rebalance debounce).
 */
import { DependencyUnavailableError, HourglassError } from '@hourglass/core';
import type { ClusterView } from '@hourglass/core';
import type { Namespace } from 'etcd3';
import { readState } from './etcd-io';
import { drainedKey, pinKey } from './keys';
import type { Settings } from './options';
import type { ClusterState } from './state';

export class ClusterAdmin {
  constructor(
    private readonly settings: Settings,
    private readonly ns: Namespace,
    /** Called after every successful write, so this node reacts without waiting for its watch. */
    private readonly written: () => void,
  ) {}

  /** Nodes, owners, epochs and pins as etcd has them right now. */
  async clusterView(): Promise<ClusterView> {
    const { slotCount } = this.settings;
    const state = await this.read();
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
    for (let slot = 0; slot < slotCount; slot++) {
      const owner = state.owners.get(slot);
      const pinnedTo = state.pins.get(slot);
      slots.push({
        slot,
        owner: owner?.node ?? null,
        epoch: owner?.epoch ?? null,
        ...(pinnedTo !== undefined ? { pinnedTo } : {}),
      });
    }
    return { slotCount, nodes, slots };
  }

  /**
   * Pins a slot to a live node. The pin outlives the node: while the node is gone or drained the
   * slot is assigned as usual, and it goes back when the node returns.
   * @throws HourglassError `not_found` when no live node has that id.
   */
  async pinSlot(slot: number, node: string): Promise<void> {
    this.checkSlot(slot);
    const state = await this.read();
    if (!state.nodes.has(node)) throw new HourglassError('not_found', `no live node "${node}"`);
    await this.write(() => this.ns.put(pinKey(slot)).value(node).exec());
  }

  /** Removes a slot's pin; removing a pin that does not exist succeeds (idempotent). */
  async unpinSlot(slot: number): Promise<void> {
    this.checkSlot(slot);
    await this.write(() => this.ns.delete().key(pinKey(slot)).exec());
  }

  /**
   * Drains a node: it keeps running and accepting messages but owns no slot. Persistent until
   * undrained, so a drained node that restarts stays drained.
   * @throws HourglassError `not_found` when no live node has that id.
   */
  async drainNode(node: string): Promise<void> {
    const state = await this.read();
    if (!state.nodes.has(node)) throw new HourglassError('not_found', `no live node "${node}"`);
    const since = new Date(this.settings.clock.now()).toISOString();
    await this.write(() => this.ns.put(drainedKey(node)).value(JSON.stringify({ since })).exec());
  }

  /** @throws HourglassError `not_found` when the node is neither live nor drained. */
  async undrainNode(node: string): Promise<void> {
    const state = await this.read();
    if (!state.nodes.has(node) && !state.drained.has(node))
      throw new HourglassError('not_found', `no node "${node}"`);
    await this.write(() => this.ns.delete().key(drainedKey(node)).exec());
  }

  private checkSlot(slot: number): void {
    const { slotCount } = this.settings;
    if (!Number.isInteger(slot) || slot < 0 || slot >= slotCount) {
      throw new HourglassError(
        'invalid_request',
        `slot must be an integer from 0 to ${slotCount - 1}`,
        [{ path: 'slot', message: 'out of range' }],
      );
    }
  }

  private async read(): Promise<ClusterState> {
    try {
      return await readState(this.ns, this.settings.slotCount);
    } catch (error) {
      throw new DependencyUnavailableError('etcd', error);
    }
  }

  private async write(write: () => Promise<unknown>): Promise<void> {
    try {
      await write();
    } catch (error) {
      throw new DependencyUnavailableError('etcd', error);
    }
    this.written();
  }
}

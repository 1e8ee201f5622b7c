/**
 * A consistent snapshot of one cluster's keys (one etcd range read at one revision), and the
 * membership derived from it. Pure: no etcd client here, only its key/value shape.
 */
import { DRAINED, NODES, NODE_ID_PATTERN, OWNERS, PINS, parseSlot } from './keys';
import type { NodeInfo } from './keys';

/** The fields of an etcd KeyValue this package reads (etcd3's IKeyValue has them all). */
export interface RawKeyValue {
  /** Relative to the cluster prefix. */
  readonly key: string;
  readonly value: string;
  readonly createRevision: number;
  readonly modRevision: number;
  /** Lease id, decimal; '0' when the key has none. */
  readonly lease: string;
}

export interface NodeEntry extends NodeInfo {
  readonly lease: string;
}

export interface OwnerEntry {
  readonly slot: number;
  readonly node: string;
  /** The ownership epoch floor: etcd revisions only grow, so each new owner key has a larger one. */
  readonly createRevision: number;
  /** The slot's epoch in Postgres, written by the owner once its engine acquired the slot (fires it). */
  readonly epoch: number | undefined;
  readonly lease: string;
}

/** The value of an owner key: `{"node": id}` when claimed, plus `"epoch"` once the owner fires the slot. */
export interface OwnerValue {
  readonly node: string;
  readonly epoch?: number;
}

export function parseOwnerValue(text: string): OwnerValue | undefined {
  try {
    const value = JSON.parse(text) as { node?: unknown; epoch?: unknown };
    if (typeof value.node !== 'string' || !NODE_ID_PATTERN.test(value.node)) return undefined;
    return Number.isSafeInteger(value.epoch)
      ? { node: value.node, epoch: value.epoch as number }
      : { node: value.node };
  } catch {
    return undefined;
  }
}

export interface ClusterState {
  /** The etcd revision the snapshot was read at. */
  readonly revision: number;
  readonly nodes: ReadonlyMap<string, NodeEntry>;
  readonly owners: ReadonlyMap<number, OwnerEntry>;
  readonly pins: ReadonlyMap<number, string>;
  readonly drained: ReadonlySet<string>;
}

/** The inputs of the assignment apart from the current owners. */
export interface Membership {
  readonly nodes: readonly string[];
  readonly drained: ReadonlySet<string>;
  readonly pins: ReadonlyMap<number, string>;
  /** Equal for equal memberships whatever the key order; what the debounce compares. */
  readonly signature: string;
}

/**
 * Reads the keys of a cluster. Entries that do not parse (a slot out of range, a node key with
 * bad JSON) are skipped rather than trusted: an operator's stray key must not stop the cluster.
 */
export function parseClusterState(
  revision: number,
  kvs: readonly RawKeyValue[],
  slotCount: number,
): ClusterState {
  const nodes = new Map<string, NodeEntry>();
  const owners = new Map<number, OwnerEntry>();
  const pins = new Map<number, string>();
  const drained = new Set<string>();
  const slotOf = (text: string): number | undefined => {
    const slot = parseSlot(text);
    return slot !== undefined && slot < slotCount ? slot : undefined;
  };
  for (const kv of kvs) {
    if (kv.key.startsWith(NODES)) {
      const id = kv.key.slice(NODES.length);
      const info = parseNodeInfo(kv.value);
      if (info && info.id === id) nodes.set(id, { ...info, lease: kv.lease });
    } else if (kv.key.startsWith(OWNERS)) {
      const slot = slotOf(kv.key.slice(OWNERS.length));
      const value = parseOwnerValue(kv.value);
      // A slot key that does not parse still blocks the slot (it exists, so no one can create it);
      // it is shown as owned by '?' and only its lease expiry or an operator removes it.
      if (slot !== undefined) {
        owners.set(slot, {
          slot,
          node: value?.node ?? '?',
          createRevision: kv.createRevision,
          epoch: value?.epoch,
          lease: kv.lease,
        });
      }
    } else if (kv.key.startsWith(PINS)) {
      const slot = slotOf(kv.key.slice(PINS.length));
      if (slot !== undefined && NODE_ID_PATTERN.test(kv.value)) pins.set(slot, kv.value);
    } else if (kv.key.startsWith(DRAINED)) {
      const id = kv.key.slice(DRAINED.length);
      if (NODE_ID_PATTERN.test(id)) drained.add(id);
    }
  }
  return { revision, nodes, owners, pins, drained };
}

function parseNodeInfo(text: string): NodeInfo | undefined {
  try {
    const value = JSON.parse(text) as Partial<Record<keyof NodeInfo, unknown>>;
    if (typeof value.id !== 'string' || !NODE_ID_PATTERN.test(value.id)) return undefined;
    return {
      id: value.id,
      httpUrl: typeof value.httpUrl === 'string' ? value.httpUrl : '',
      grpcAddress: typeof value.grpcAddress === 'string' ? value.grpcAddress : '',
      startedAt: typeof value.startedAt === 'string' ? value.startedAt : '',
    };
  } catch {
    return undefined;
  }
}

export function membershipOf(state: ClusterState): Membership {
  return membership(state.nodes.keys(), state.drained, state.pins);
}

function membership(
  ids: Iterable<string>,
  allDrained: Iterable<string>,
  allPins: Iterable<[number, string]>,
): Membership {
  const nodes = [...ids].sort();
  // Drains and pins of nodes that are not live change nothing in the assignment, so they do not
  // count as a change either (a stale drain key of a departed node must not trigger a rebalance).
  const live = new Set(nodes);
  const drained = new Set([...allDrained].filter((id) => live.has(id)));
  const pins = new Map([...allPins].filter(([, node]) => live.has(node)));
  const signature = JSON.stringify([
    nodes,
    [...drained].sort(),
    [...pins].sort(([a], [b]) => a - b),
  ]);
  return { nodes, drained, pins, signature };
}

/**
 * Whether `next` is `previous` minus some nodes and nothing else (no node added, no drain or pin
 * changed). Such a change is final, whatever caused it: the departed nodes' keys are gone (lease
 * expired) or going (graceful leave), so there is nothing to debounce.
 */
export function isRemovalOnly(previous: Membership, next: Membership): boolean {
  if (next.nodes.length >= previous.nodes.length) return false;
  const before = new Set(previous.nodes);
  if (!next.nodes.every((id) => before.has(id))) return false;
  return membership(next.nodes, previous.drained, previous.pins).signature === next.signature;
}

/** The current owner of every owned slot, as the assignment's `previous`. */
export function ownersOf(state: ClusterState): Map<number, string> {
  return new Map([...state.owners].map(([slot, owner]) => [slot, owner.node]));
}

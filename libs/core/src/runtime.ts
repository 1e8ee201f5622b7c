/**
 * The runtime ports shared by the engine and the adapters that drive it: time, logging, and slot
 * ownership. They sit here, below both, so an adapter (libs/etcd) implements them without
 * depending on the engine.
 */
import type { SlotLease } from './ports';

/** Time is passed in, so tests drive a fake clock. */
export interface Clock {
  now(): number;
}
export const systemClock: Clock = { now: () => Date.now() };

export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export const silentLogger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

/**
 * What a coordinator drives: the slot lifecycle of the engine. Acquire and release calls run in
 * the order they are made.
 */
export interface SlotEngine {
  /**
   * Takes over slots with at least this epoch (the ownership key's revision): raises their epochs
   * in the store, fencing out earlier owners, and starts loading them. Resolves with the leases
   * once the epochs are raised; loading goes on in the background and is retried by the engine
   * until it succeeds. A slot this node already fires is taken over again under a new epoch. A
   * slot whose stored epoch was set by a newer owner (a higher `minEpoch`) is refused: it is
   * missing from the result.
   */
  acquireSlots(slots: readonly number[], minEpoch?: number): Promise<readonly SlotLease[]>;
  /** Stops firing the slots; resolves once nothing of them is in flight. Idempotent. */
  releaseSlots(slots: readonly number[]): Promise<void>;
  /** The slots the engine fires now, with their epochs. */
  ownedSlots(): SlotLease[];
}

export interface SlotCoordinator {
  /** Joins and starts acquiring slots for the engine. */
  start(): Promise<void>;
  /** Hands every owned slot back (graceful leave) and leaves. Resolves when done. */
  stop(): Promise<void>;
  /**
   * True while this node's ownership lease is known to be alive. False when it may have expired
   * (the coordination store is unreachable, or the process was paused): the engine then keeps
   * firing its slots, but only under the store's epoch lock, so that once another node has
   * raised a slot's epoch this node produces nothing more of it (docs/cluster.md).
   */
  ownershipConfirmed(): boolean;
  /**
   * Told by the engine when the store showed that another node raised the epoch of slots this
   * node still fired: the engine has dropped them; the coordinator must not count them as held.
   */
  slotsFenced?(slots: readonly number[]): void;
}

/** What `GET /v1/admin/cluster` answers. */
export interface ClusterView {
  slotCount: number;
  nodes: Array<{
    id: string;
    httpUrl: string;
    grpcAddress: string;
    startedAt: string;
    drained: boolean;
    slots: number[];
  }>;
  /**
   * `epoch`: the slot's fencing epoch in Postgres, as its owner reported it once it began firing
   * the slot; null while unowned or while the owner is still taking it over.
   */
  slots: Array<{ slot: number; owner: string | null; epoch: number | null; pinnedTo?: string }>;
}

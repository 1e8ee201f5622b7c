/**
 * The domain interfaces between the engine and the outside world. Each external system has one
 * adapter package implementing one of these (libs/postgres, libs/kafka, libs/etcd, libs/redis).
 * Methods are domain operations; no connection, transaction or driver type crosses them.
 * Adapters throw {@link DependencyUnavailableError} when their system cannot be reached.
 */
import type { StoredMessage, PayloadEncoding } from './message';
import type { WheelItem } from './wheel';

/** Proof of ownership of a slot: the fencing token every slot-scoped write carries. */
export interface SlotLease {
  readonly slot: number;
  readonly epoch: number;
}

/** A message ready to insert: validated, with its id and slot assigned. */
export interface NewMessage {
  readonly app: string;
  readonly id: string;
  readonly slot: number;
  readonly topic: string;
  readonly key: string | null;
  readonly payload: Buffer;
  readonly payloadEncoding: PayloadEncoding;
  readonly headers: Readonly<Record<string, string>>;
  readonly deliverAtMs: number;
  readonly fingerprint: string;
}

export interface InsertContext {
  /** The epochs of the slots this node owns right now (empty on a node that owns nothing). */
  readonly ownedEpochs: ReadonlyMap<number, number>;
  /**
   * Messages due before this instant that this node cannot wheel itself (their slot's epoch in the
   * store is not one of `ownedEpochs`) get a wheel hint, so the owner picks them up at once.
   */
  readonly hintBeforeMs: number;
}

export type InsertOutcome =
  /** Committed. `wheelable`: the slot's epoch matched ours inside the insert transaction, so this node may put it in its wheel; otherwise a hint was left for the owner when it was near due. */
  | { readonly kind: 'created'; readonly message: StoredMessage; readonly wheelable: boolean }
  /** The same app sent the same id with the same fingerprint before. */
  | { readonly kind: 'existing'; readonly message: StoredMessage }
  /** The id exists with a different fingerprint. */
  | { readonly kind: 'conflict'; readonly message: StoredMessage };

export type CancelOutcome =
  | { readonly kind: 'cancelled'; readonly message: StoredMessage }
  | { readonly kind: 'not_found' }
  | { readonly kind: 'refused'; readonly message: StoredMessage };

/** A claimed message, everything needed to produce it. */
export interface ClaimedMessage {
  readonly app: string;
  readonly id: string;
  readonly slot: number;
  readonly topic: string;
  readonly key: string | null;
  readonly payload: Buffer;
  readonly headers: Readonly<Record<string, string>>;
  readonly deliverAtMs: number;
  readonly attempts: number;
}

export interface MessageRef {
  readonly app: string;
  readonly id: string;
  readonly slot: number;
}

export interface MessageStore {
  /** Runs the versioned migrations (idempotent, safe when several nodes start at once) and checks
   * the cluster's slot count, storing it on first start. Throws if it differs. */
  migrate(slotCount: number): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Answers when the store is reachable (readiness). */
  ping(): Promise<void>;

  /** Inserts a batch in one round trip; outcomes are in input order. */
  insertBatch(messages: readonly NewMessage[], context: InsertContext): Promise<InsertOutcome[]>;
  get(app: string, id: string): Promise<StoredMessage | null>;
  /** Cancels if still scheduled; a message claimed for delivery is refused (the cancel lost). */
  cancel(app: string, id: string, nowMs: number): Promise<CancelOutcome>;

  /**
   * Takes over slots after winning their ownership in the coordinator: raises each slot's epoch to
   * at least `minEpoch` and above its previous value, resets claims left by earlier owners and drops
   * the slots' wheel hints (the load that follows sees their messages). Returns the new epochs.
   */
  acquireSlots(slots: readonly number[], minEpoch: number): Promise<SlotLease[]>;
  /** Scheduled messages of the slots due in [fromMs, untilMs), ascending; at most `limit`. */
  loadDue(slots: readonly number[], fromMs: number, untilMs: number, limit: number, after?: WheelItem): Promise<WheelItem[]>;
  /** Removes and returns the wheel hints of these slots. */
  drainHints(slots: readonly number[]): Promise<WheelItem[]>;
  /** Calls back with a slot whenever a hint for it is committed (best effort; drainHints is the guarantee). */
  onHint(listener: (slot: number) => void): void;

  /**
   * Claims due messages for delivery (scheduled → delivering), fenced: only rows of slots whose
   * epoch still equals the lease's. Messages already cancelled, claimed or delivered are skipped.
   */
  claim(refs: readonly MessageRef[], leases: ReadonlyMap<number, number>, nowMs: number): Promise<ClaimedMessage[]>;
  /** delivering → delivered, fenced. Returns how many rows changed. */
  markDelivered(refs: readonly MessageRef[], leases: ReadonlyMap<number, number>, nowMs: number): Promise<number>;
  /** delivering → scheduled (retry later) or → failed when `giveUp`, recording the error; fenced. */
  releaseClaims(refs: readonly MessageRef[], leases: ReadonlyMap<number, number>, error: string, giveUp: boolean, nowMs: number): Promise<number>;
}

/** One Kafka record as Hourglass produces it. */
export interface OutboundRecord {
  readonly topic: string;
  readonly key: string | null;
  readonly value: Buffer;
  readonly headers: Readonly<Record<string, string>>;
}

export class PublishError extends Error {
  override readonly name = 'PublishError';
  constructor(
    message: string,
    /** Transient (broker down, leader moving): retry without counting toward giving up. */
    readonly retriable: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface Publisher {
  start(): Promise<void>;
  stop(): Promise<void>;
  ping(): Promise<void>;
  /** Resolves only once Kafka acknowledged every record (acks=all); throws {@link PublishError}. */
  publish(records: readonly OutboundRecord[]): Promise<void>;
  /** Creates missing topics. */
  ensureTopics(topics: readonly string[]): Promise<void>;
}

/**
 * The domain interfaces between the engine and the outside world. Each external system has one
 * adapter package implementing one of these (libs/postgres, libs/kafka, libs/etcd, libs/redis).
 * Methods are domain operations; no connection, transaction or driver type crosses them.
 * Adapters throw {@link DependencyUnavailableError} when their system cannot be reached.
 */
import type { StoredMessage, PayloadEncoding } from './message';
import type { MessageChange, MessageUpdated } from './message-patch';
import type { DebounceOutcome, DebounceSpec } from './debounce';
import type { RetryStrategy } from './retry-strategy';
import type {
  FilterCancelBatch,
  IdsCancelOutcome,
  MessageFilter,
  SearchPage,
  SearchPosition,
} from './search';
import type { AppRetention, FinishedGroup, RemovalBatch, RemovedBatch } from './retention';
import type { TargetSpec, TargetState } from './targets';
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
  /** Null or absent for a Kafka fast-path message (only `topic`). */
  readonly targets?: readonly TargetSpec[] | null;
  readonly retry?: RetryStrategy | null;
  readonly contentType?: string | null;
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
  /**
   * Committed, with the store's sequence number `seq` (what the wheel holds and claims refer to).
   * `wheelable`: the slot's epoch matched ours inside the insert transaction, so this node may put
   * it in its wheel; otherwise a hint was left for the owner when it was near due.
   */
  | {
      readonly kind: 'created';
      readonly message: StoredMessage;
      readonly seq: number;
      readonly wheelable: boolean;
    }
  /** The same app sent the same id with the same fingerprint before. */
  | { readonly kind: 'existing'; readonly message: StoredMessage }
  /** The id exists with a different fingerprint. */
  | { readonly kind: 'conflict'; readonly message: StoredMessage };

export type CancelOutcome =
  /** Cancelled now. `seq` (the store's sequence number, internal) lets the engine drop it from its wheel. */
  | { readonly kind: 'cancelled'; readonly message: StoredMessage; readonly seq: number }
  | { readonly kind: 'not_found' }
  | { readonly kind: 'refused'; readonly message: StoredMessage };

/**
 * A claimed message, everything needed to deliver it (app and id go into the Kafka headers).
 * `attempts`: deliveries attempted and answered so far (a success or a refusal; an outage does not
 * count).
 */
export interface ClaimedMessage {
  readonly seq: number;
  readonly app: string;
  readonly id: string;
  readonly slot: number;
  readonly topic: string;
  readonly key: string | null;
  readonly payload: Buffer;
  readonly headers: Readonly<Record<string, string>>;
  readonly deliverAtMs: number;
  readonly attempts: number;
  /** The rest is for messages with a target list; null or absent for the Kafka fast path. */
  readonly payloadEncoding?: PayloadEncoding;
  readonly targets?: readonly TargetSpec[] | null;
  readonly targetStates?: readonly TargetState[] | null;
  readonly retry?: RetryStrategy | null;
  readonly contentType?: string | null;
  /** The due time as accepted (deliverAtMs is the current attempt's once a retry moved it). */
  readonly firstDeliverAtMs?: number | null;
}

/** One attempt of one target, for the attempt log. */
export interface AttemptRecord {
  readonly target: number;
  readonly attempt: number;
  readonly atMs: number;
  readonly durationMs: number;
  readonly status: number | null;
  readonly error: string | null;
  readonly response: string | null;
}

export interface LoggedAttempt extends AttemptRecord {
  readonly type: 'kafka' | 'http';
}

/**
 * How a message with a target list stands after an attempt: its targets' new states, and what
 * the message becomes (scheduled again until `deliverAtMs`, delivered or failed).
 */
export interface TargetSettlement {
  readonly ref: MessageRef;
  readonly state: 'scheduled' | 'delivered' | 'failed';
  /** The next attempt's due time (with state scheduled); otherwise unchanged. */
  readonly deliverAtMs: number;
  readonly targetStates: readonly TargetState[];
  /** Attempts that counted in this round (added to messages.attempts). */
  readonly countedAttempts: number;
  readonly lastError: string | null;
  readonly attempts: readonly AttemptRecord[];
}

/**
 * A message as the firing path refers to it: its sequence number, unique across the store and
 * below 2^53 (Postgres: `messages.seq`), and its slot (for the epoch fence).
 */
export interface MessageRef {
  readonly seq: number;
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
   *
   * `minEpoch` is the ownership's revision in the coordinator (0 for a standalone node). A slot
   * whose epoch was last raised with a higher revision belongs to a newer owner: it is left
   * untouched and missing from the result, so a late acquisition by an old owner never takes the
   * epoch back.
   */
  acquireSlots(slots: readonly number[], minEpoch: number): Promise<SlotLease[]>;
  /**
   * Forgets owner revisions above `revision`, the coordinator's current one, and returns how many
   * slots had one. Revisions only grow, so such a revision comes from an earlier history of the
   * coordinator (an etcd wiped or restored from a backup numbers from lower again); left in place,
   * it would refuse every acquisition of its slot for good. Called before a node joins.
   */
  forgetOwnerRevisionsAbove(revision: number): Promise<number>;
  /**
   * Scheduled messages of the slots due in [fromMs, untilMs), in (due, seq) order; at most
   * `limit`, after `after` (the last item of the previous page) when given.
   */
  loadDue(
    slots: readonly number[],
    fromMs: number,
    untilMs: number,
    limit: number,
    after?: WheelItem,
  ): Promise<WheelItem[]>;
  /**
   * The wheel hints of these slots, at most `limit`. They stay until {@link deleteHints}: a drain
   * whose reply is lost loses nothing (the engine wheels first and deletes after).
   */
  readHints(slots: readonly number[], limit: number): Promise<WheelItem[]>;
  /** Deletes these hints (by slot and seq); deleting one that is gone is not an error. */
  deleteHints(hints: readonly WheelItem[]): Promise<void>;
  /** Calls back with a slot whenever a hint for it is committed (best effort; readHints is the guarantee). */
  onHint(listener: (slot: number) => void): void;

  /** The slots' current epochs in the store (a slot that does not exist is missing). */
  currentEpochs(slots: readonly number[]): Promise<Map<number, number>>;
  /**
   * Runs `work` while holding the slots' epoch rows in a shared lock, for the slots whose epoch
   * still equals the lease (`confirmed`). A takeover's epoch bump waits until `work` has settled,
   * so whatever `work` does for a confirmed slot happens before any new owner of it fires; and
   * once a bump committed, the slot is never confirmed to the old lease again. Used to keep
   * delivering while the coordination service cannot confirm ownership (docs/cluster.md).
   */
  withEpochLock<T>(
    leases: ReadonlyMap<number, number>,
    work: (confirmed: ReadonlySet<number>) => Promise<T>,
  ): Promise<T>;
  /** Rows of these slots claimed under the given leases (`delivering`), at most `limit`. */
  findDelivering(leases: ReadonlyMap<number, number>, limit: number): Promise<MessageRef[]>;

  /**
   * Claims due messages for delivery (scheduled → delivering), fenced: only rows of slots whose
   * epoch still equals the lease's. Only scheduled messages are taken: messages already cancelled,
   * claimed (by anyone, this node included) or delivered are skipped, so a ref given twice, or
   * again while its first claim is in flight, is claimed once. A ref repeated within one call is
   * returned once.
   */
  claim(
    refs: readonly MessageRef[],
    leases: ReadonlyMap<number, number>,
    nowMs: number,
  ): Promise<ClaimedMessage[]>;
  /** delivering → delivered, fenced; counts the attempt. Returns how many rows changed. */
  markDelivered(
    refs: readonly MessageRef[],
    leases: ReadonlyMap<number, number>,
    nowMs: number,
  ): Promise<number>;
  /** delivering → scheduled (retry later) or → failed, recording the error; fenced. */
  releaseClaims(
    refs: readonly MessageRef[],
    leases: ReadonlyMap<number, number>,
    release: ClaimRelease,
    nowMs: number,
  ): Promise<number>;
  /**
   * delivering → scheduled (the next attempt at `deliverAtMs`), delivered or failed, for messages
   * with a target list; writes their target states and attempt log rows in the same statement.
   * Fenced like markDelivered. Returns how many were settled.
   */
  settleTargets(
    settlements: readonly TargetSettlement[],
    leases: ReadonlyMap<number, number>,
    nowMs: number,
  ): Promise<number>;
  /** The attempt log of a message, oldest first. */
  listAttempts(app: string, id: string): Promise<LoggedAttempt[]>;
  /**
   * failed → scheduled now, with `targetStates` (failed targets re-armed) and a fresh budget.
   * Returns the seq and slot when it was failed (a hint for the owner is written like an insert's),
   * or null when it was not failed (then nothing changed).
   */
  rearmFailed(
    app: string,
    id: string,
    targetStates: readonly TargetState[] | null,
    nowMs: number,
    context: InsertContext,
  ): Promise<{ seq: number; slot: number; wheelable: boolean } | null>;
  /**
   * Replaces a scheduled message's content (and due time, when the change has one) if its version
   * is still `expectedVersion`, raising the version; a near due time this node does not own gets a
   * wheel hint like an insert's. Null when nothing changed: the message is gone, no longer
   * scheduled, or at another version (the caller reads it to say which).
   */
  updateScheduled(
    app: string,
    id: string,
    expectedVersion: number,
    change: MessageChange,
    context: InsertContext,
  ): Promise<MessageUpdated | null>;
  /**
   * Inserts a message under a debounce key, race-free across nodes: merged into (trailing) or
   * yielding to (leading) the scheduled, unclaimed message that holds the key, else created with
   * it. Hints the owner of a near-due message like an insert.
   */
  insertDebounced(
    message: NewMessage,
    debounce: DebounceSpec,
    nowMs: number,
    context: InsertContext,
  ): Promise<DebounceOutcome>;

  /**
   * One page of messages matching `filter`, in descending (app, id) order after `after`: at most
   * `limit` messages, found among at most `scanLimit` rows read in key order, so a page costs the
   * same whatever the filter matches (see ./search.ts, "Bounded pages").
   */
  searchMessages(
    filter: MessageFilter,
    after: SearchPosition | null,
    limit: number,
    scanLimit: number,
  ): Promise<SearchPage>;
  /** Cancels those of the app's ids that are still scheduled, with the same guard as {@link cancel}. */
  cancelIds(app: string, ids: readonly string[], nowMs: number): Promise<IdsCancelOutcome>;
  /**
   * One batch of a filter cancel (`filter.app` set, scheduled states only): cancels the matching
   * scheduled messages among at most `scanLimit` pending rows after `after` in ascending id
   * order, at most `batchSize` of them, with the same guard as {@link cancel}.
   */
  cancelMatching(
    filter: MessageFilter,
    after: SearchPosition | null,
    batchSize: number,
    scanLimit: number,
    nowMs: number,
  ): Promise<FilterCancelBatch>;
}

/** How a claim ends without a delivery. */
export interface ClaimRelease {
  readonly error: string;
  /**
   * The target answered and refused (counts toward the retry limit), as opposed to an outage or
   * a claim this node could not use (which never fail a message).
   */
  readonly countAttempt: boolean;
  /** → failed (finished) instead of back to scheduled. */
  readonly giveUp: boolean;
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

/**
 * How one message's delivery ended. `target` names what it was delivered to, at the grain at which
 * outages happen (the Kafka cluster; an HTTP host), so that the firing path can hold back what
 * waits for a target that is down and release it all the moment one delivery to it succeeds.
 */
export type DeliveryOutcome =
  | { readonly kind: 'delivered'; readonly target: string }
  | {
      readonly kind: 'failed';
      readonly target: string;
      readonly error: string;
      /**
       * Transient (broker down, leader moving, timeout): retried without counting toward giving up.
       * Otherwise the target refused this message, and the attempt counts.
       */
      readonly retriable: boolean;
    };

/**
 * The delivery port: the firing path hands it claimed messages and gets one outcome per message,
 * in order. It resolves (it does not throw for a message's failure) within a bounded time, and a
 * failure of one message, topic or target decides nothing about the others.
 */
export interface Delivery {
  deliver(messages: readonly ClaimedMessage[]): Promise<DeliveryOutcome[]>;
}

/** The Kafka side outside of delivery: connection lifecycle, readiness and topic creation. */
export interface Publisher {
  start(): Promise<void>;
  stop(): Promise<void>;
  ping(): Promise<void>;
  /** Creates missing topics (existing ones are left as they are); options default to the adapter's. */
  ensureTopics(
    topics: readonly string[],
    options?: { partitions?: number; replicationFactor?: number },
  ): Promise<void>;
}

/**
 * The store side of retention, archiving and the message counters (libs/postgres; ADR 0008).
 * Removal is fenced like the firing path's writes: only rows of slots whose epoch still equals
 * the caller's lease are touched, so a node that lost a slot stops removing its rows.
 */
export interface RetentionStore {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Folds the counter deltas into the counters; null when another node is compacting right now. */
  compactCounters(): Promise<number | null>;
  /** The (app, final state) pairs that have finished rows, from the counters. */
  finishedGroups(): Promise<FinishedGroup[]>;
  /** The apps that override a retention period. */
  retentionOverrides(): Promise<Map<string, AppRetention>>;
  /** Removes (and archives, see {@link RemovalBatch.archiveFromMs}) one batch, with its attempt log. */
  removeFinished(batch: RemovalBatch, leases: ReadonlyMap<number, number>): Promise<RemovedBatch>;
  /**
   * Creates the archive's day partitions from `fromDay` through `untilDay` that are missing, and
   * drops those of days before `fromDay`. Returns the dropped days.
   */
  maintainArchive(fromDay: number, untilDay: number): Promise<number[]>;
}

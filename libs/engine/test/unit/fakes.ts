/**
 * In-memory stand-ins for the engine's ports, for the engine unit tests: a MessageStore that
 * implements the port's contract (states, per-slot epochs and fencing, claim only of scheduled
 * rows due by the given now), a Publisher that records what it was given, and an event hub the
 * tests await instead of sleeping. Both fakes take injectable failures and gates (hold an
 * operation until the test opens it).
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import type {
  FilterCancelBatch,
  IdsCancelOutcome,
  SearchPage,
  CancelOutcome,
  ClaimRelease,
  AttemptRecord,
  ClaimedMessage,
  DebounceOutcome,
  HttpCallRequest,
  HttpCallResult,
  HttpCaller,
  LoggedAttempt,
  TargetSettlement,
  TargetState,
  InsertContext,
  InsertOutcome,
  MessageChange,
  MessageRef,
  MessageUpdated,
  MessageState,
  MessageStore,
  NewMessage,
  Delivery,
  DeliveryOutcome,
  OutboundRecord,
  PublishError,
  SlotLease,
  StoredMessage,
  WheelItem,
} from '@hourglass/core';
import { DependencyUnavailableError, INITIAL_TARGET_STATE, kafkaRecordOf } from '@hourglass/core';
import type { Logger } from '@hourglass/core';

/**
 * Something observable changed (a store write, a publish): waiters whose condition now holds are
 * resolved. `tick()` numbers events, so tests can order them more finely than by milliseconds.
 */
export class Events {
  private waiters: Array<{ check: () => boolean; resolve: () => void }> = [];
  private ticks = 0;

  tick(): number {
    return ++this.ticks;
  }

  notify(): void {
    this.waiters = this.waiters.filter((waiter) => {
      if (!waiter.check()) return true;
      waiter.resolve();
      return false;
    });
  }

  /**
   * Resolves as soon as `check()` holds (checked now and after every event). Rejects after
   * `timeoutMs` naming `what`, so a test that waits for something that never happens fails
   * with a message instead of the mocha timeout.
   */
  until(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((waiter) => waiter !== entry);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`));
      }, timeoutMs);
      const entry = {
        check,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      this.waiters.push(entry);
    });
  }
}

/** A gate an operation waits at while closed. */
class Gate {
  private opened!: () => void;
  readonly passed: Promise<void> = new Promise<void>((resolve) => (this.opened = resolve));
  /** Operations currently waiting at it. */
  waiting = 0;
  open(): void {
    this.opened();
  }
}

/** `before`: throws without changing anything. `after`: commits, then throws (outcome unknown). */
export type StoreFailure = 'before' | 'after';
/** A planned outcome of one call: a failure, or `ok` (the call succeeds; lets a later one fail). */
export type StorePlan = StoreFailure | 'ok';

export type StoreOp =
  | 'insertBatch'
  | 'get'
  | 'cancel'
  | 'acquireSlots'
  | 'loadDue'
  | 'readHints'
  | 'deleteHints'
  | 'currentEpochs'
  | 'withEpochLock'
  | 'findDelivering'
  | 'claim'
  | 'markDelivered'
  | 'releaseClaims'
  | 'settleTargets';

export interface Row {
  readonly seq: number;
  /** Replaced (not mutated) when a retry moves its due time. */
  message: NewMessage;
  /** With a target list: one state per target; and the first due time once a retry moved it. */
  targetStates?: TargetState[];
  firstDeliverAtMs?: number | null;
  /** Raised by updateScheduled; absent: 1. */
  version?: number;
  state: MessageState;
  claimedEpoch: number | null;
  attempts: number;
  lastError: string | null;
  readonly createdAtMs: number;
  finishedAtMs: number | null;
  /** Every state change, with the wall clock and event tick. */
  readonly history: Array<{ state: MessageState; at: number; tick: number }>;
}

/** One store call, recorded when it took effect (or failed). */
export interface StoreCall {
  readonly op: StoreOp;
  readonly at: number;
  readonly tick: number;
  readonly refs: readonly MessageRef[];
  /** The `nowMs` argument of claim, markDelivered, releaseClaims and cancel. */
  readonly nowMs?: number;
  readonly error?: string;
  readonly giveUp?: boolean;
  /** Rows claimed, marked or released (claim: their seqs). */
  readonly changed: readonly number[];
  readonly failed?: StoreFailure;
}

export class FakeStore implements MessageStore {
  readonly rows = new Map<number, Row>();
  readonly epochs = new Map<number, number>();
  /** The coordinator revision that last raised each slot's epoch (see acquireSlots). */
  readonly ownerRevisions = new Map<number, number>();
  /** Slots whose epoch row is held by withEpochLock now: acquireSlots of them waits. */
  private readonly locked = new Map<number, number>();
  private lockReleased: Array<() => void> = [];
  readonly calls: StoreCall[] = [];
  private readonly byKey = new Map<string, number>();
  private hints: WheelItem[] = [];
  private hintListeners: Array<(slot: number) => void> = [];
  private nextSeq = 1;
  private readonly failures = new Map<StoreOp, StorePlan[]>();
  private readonly gates = new Map<StoreOp, Gate>();
  private readonly replyGates = new Map<StoreOp, Gate>();

  constructor(
    private readonly events: Events,
    slotCount: number,
  ) {
    for (let slot = 0; slot < slotCount; slot++) this.epochs.set(slot, 0);
  }

  // ---- test controls --------------------------------------------------------------------------

  /** The next calls of `op` fail, one failure each (`ok`: that call succeeds). */
  failNext(op: StoreOp, ...failures: StorePlan[]): void {
    this.failures.set(op, [...(this.failures.get(op) ?? []), ...failures]);
  }

  /** Calls of `op` wait (before taking effect) until the returned function is called. */
  hold(op: StoreOp): () => void {
    const gate = new Gate();
    this.gates.set(op, gate);
    return () => {
      if (this.gates.get(op) === gate) this.gates.delete(op);
      gate.open();
    };
  }

  /** How many calls of `op` wait at its gate. */
  waitingAt(op: StoreOp): number {
    return this.gates.get(op)?.waiting ?? 0;
  }

  /**
   * Calls of `op` take effect (and are recorded), then their reply waits until the returned
   * function is called: the statement committed, the caller does not know yet.
   */
  holdReply(op: StoreOp): () => void {
    const gate = new Gate();
    this.replyGates.set(op, gate);
    return () => {
      if (this.replyGates.get(op) === gate) this.replyGates.delete(op);
      gate.open();
    };
  }

  /** How many committed calls of `op` wait for their reply. */
  replyWaitingAt(op: StoreOp): number {
    return this.replyGates.get(op)?.waiting ?? 0;
  }

  openAll(): void {
    for (const gate of this.gates.values()) gate.open();
    for (const gate of this.replyGates.values()) gate.open();
    this.gates.clear();
    this.replyGates.clear();
    this.failures.clear();
  }

  /** Adds a scheduled row directly (as another node's insert would). */
  seed(messages: readonly NewMessage[]): number[] {
    const seqs = messages.map((message) => this.create(message, Date.now()).seq);
    this.events.notify();
    return seqs;
  }

  seqOf(app: string, id: string): number {
    const seq = this.byKey.get(key(app, id));
    if (seq === undefined) throw new Error(`no message ${app}/${id}`);
    return seq;
  }

  row(seq: number): Row {
    const row = this.rows.get(seq);
    if (!row) throw new Error(`no row ${seq}`);
    return row;
  }

  stateOf(seq: number): MessageState {
    return this.row(seq).state;
  }

  count(state: MessageState, seqs?: readonly number[]): number {
    let n = 0;
    if (seqs) {
      for (const seq of seqs) if (this.row(seq).state === state) n++;
      return n;
    }
    for (const row of this.rows.values()) if (row.state === state) n++;
    return n;
  }

  callsOf(op: StoreOp): StoreCall[] {
    return this.calls.filter((call) => call.op === op);
  }

  // ---- the port -------------------------------------------------------------------------------

  migrate(): Promise<void> {
    return Promise.resolve();
  }
  start(): Promise<void> {
    return Promise.resolve();
  }
  stop(): Promise<void> {
    return Promise.resolve();
  }
  ping(): Promise<void> {
    return Promise.resolve();
  }

  insertBatch(messages: readonly NewMessage[], context: InsertContext): Promise<InsertOutcome[]> {
    return this.run('insertBatch', () => {
      const now = Date.now();
      const hinted = new Set<number>();
      const outcomes = messages.map((message): InsertOutcome => {
        const existing = this.byKey.get(key(message.app, message.id));
        if (existing !== undefined) {
          const stored = this.toStored(this.row(existing));
          const same = stored.fingerprint === message.fingerprint;
          return same
            ? { kind: 'existing', message: stored }
            : { kind: 'conflict', message: stored };
        }
        const row = this.create(message, now);
        const owned = context.ownedEpochs.get(message.slot);
        const wheelable = owned !== undefined && owned === this.epochs.get(message.slot);
        if (!wheelable && message.deliverAtMs < context.hintBeforeMs) {
          this.hints.push({ seq: row.seq, slot: message.slot, dueMs: message.deliverAtMs });
          hinted.add(message.slot);
        }
        return { kind: 'created', message: this.toStored(row), seq: row.seq, wheelable };
      });
      for (const slot of hinted) for (const listener of this.hintListeners) listener(slot);
      return { result: outcomes };
    });
  }

  get(app: string, id: string): Promise<StoredMessage | null> {
    return this.run('get', () => {
      const seq = this.byKey.get(key(app, id));
      return { result: seq === undefined ? null : this.toStored(this.row(seq)) };
    });
  }

  cancel(app: string, id: string, nowMs: number): Promise<CancelOutcome> {
    return this.run('cancel', (): { result: CancelOutcome; changed?: number[] } => {
      const seq = this.byKey.get(key(app, id));
      if (seq === undefined) return { result: { kind: 'not_found' } };
      const row = this.row(seq);
      if (row.state !== 'scheduled')
        return { result: { kind: 'refused', message: this.toStored(row) } };
      row.finishedAtMs = nowMs;
      this.transition(row, 'cancelled');
      return { result: { kind: 'cancelled', message: this.toStored(row), seq }, changed: [seq] };
    });
  }

  async acquireSlots(slots: readonly number[], minEpoch: number): Promise<SlotLease[]> {
    // A takeover's FOR UPDATE waits for every shared lock on its slots' epoch rows.
    while (slots.some((slot) => (this.locked.get(slot) ?? 0) > 0))
      await new Promise<void>((resolve) => this.lockReleased.push(resolve));
    return this.run('acquireSlots', () => {
      const leases: SlotLease[] = [];
      const taken = new Set<number>();
      for (const slot of new Set(slots)) {
        const previous = this.epochs.get(slot);
        if (previous === undefined) throw new Error(`no such slot ${slot}`);
        // A newer owner raised it: a late acquisition of an old owner changes nothing.
        if ((this.ownerRevisions.get(slot) ?? 0) > minEpoch) continue;
        const epoch = Math.max(previous + 1, minEpoch);
        this.epochs.set(slot, epoch);
        this.ownerRevisions.set(slot, minEpoch);
        leases.push({ slot, epoch });
        taken.add(slot);
      }
      // Every claim of the slots goes back to scheduled, whatever its epoch; hints are dropped.
      for (const row of this.rows.values()) {
        if (taken.has(row.message.slot) && row.state === 'delivering') {
          row.claimedEpoch = null;
          this.transition(row, 'scheduled');
        }
      }
      this.hints = this.hints.filter((hint) => !taken.has(hint.slot));
      return { result: leases.sort((a, b) => a.slot - b.slot) };
    });
  }

  forgetOwnerRevisionsAbove(revision: number): Promise<number> {
    return this.run('acquireSlots', () => {
      let cleared = 0;
      for (const [slot, owner] of this.ownerRevisions)
        if (owner > revision) {
          this.ownerRevisions.set(slot, 0);
          cleared++;
        }
      return { result: cleared };
    });
  }

  loadDue(
    slots: readonly number[],
    fromMs: number,
    untilMs: number,
    limit: number,
    after?: WheelItem,
  ): Promise<WheelItem[]> {
    return this.run('loadDue', () => {
      const wanted = new Set(slots);
      const items: WheelItem[] = [];
      for (const row of this.rows.values()) {
        const { slot, deliverAtMs } = row.message;
        if (row.state !== 'scheduled' || !wanted.has(slot)) continue;
        if (deliverAtMs < fromMs || deliverAtMs >= untilMs) continue;
        if (
          after &&
          (deliverAtMs < after.dueMs || (deliverAtMs === after.dueMs && row.seq <= after.seq))
        )
          continue;
        items.push({ seq: row.seq, slot, dueMs: deliverAtMs });
      }
      items.sort((a, b) => a.dueMs - b.dueMs || a.seq - b.seq);
      return { result: items.slice(0, Math.max(0, limit)) };
    });
  }

  readHints(slots: readonly number[], limit: number): Promise<WheelItem[]> {
    return this.run('readHints', () => {
      const wanted = new Set(slots);
      return { result: this.hints.filter((hint) => wanted.has(hint.slot)).slice(0, limit) };
    });
  }

  deleteHints(hints: readonly WheelItem[]): Promise<void> {
    return this.run('deleteHints', () => {
      // By due time too, like the store: a message's later hint (a change) is not one of these.
      const key = (hint: WheelItem) => `${hint.slot}:${hint.seq}:${hint.dueMs}`;
      const gone = new Set(hints.map(key));
      this.hints = this.hints.filter((hint) => !gone.has(key(hint)));
      return { result: undefined };
    });
  }

  /** Hints waiting to be drained. */
  get hintCount(): number {
    return this.hints.length;
  }

  currentEpochs(slots: readonly number[]): Promise<Map<number, number>> {
    return this.run('currentEpochs', () => {
      const epochs = new Map<number, number>();
      for (const slot of slots) {
        const epoch = this.epochs.get(slot);
        if (epoch !== undefined) epochs.set(slot, epoch);
      }
      return { result: epochs };
    });
  }

  async withEpochLock<T>(
    leases: ReadonlyMap<number, number>,
    work: (confirmed: ReadonlySet<number>) => Promise<T>,
  ): Promise<T> {
    const confirmed = await this.run('withEpochLock', () => {
      const held = new Set<number>();
      for (const [slot, epoch] of leases) if (this.epochs.get(slot) === epoch) held.add(slot);
      return { result: held };
    });
    for (const slot of confirmed) this.locked.set(slot, (this.locked.get(slot) ?? 0) + 1);
    try {
      return await work(confirmed);
    } finally {
      for (const slot of confirmed) this.locked.set(slot, (this.locked.get(slot) ?? 1) - 1);
      const waiting = this.lockReleased;
      this.lockReleased = [];
      for (const resolve of waiting) resolve();
    }
  }

  findDelivering(leases: ReadonlyMap<number, number>, limit: number): Promise<MessageRef[]> {
    return this.run('findDelivering', () => {
      const found: MessageRef[] = [];
      for (const row of this.rows.values()) {
        const lease = leases.get(row.message.slot);
        if (row.state === 'delivering' && lease !== undefined && row.claimedEpoch === lease)
          found.push({ seq: row.seq, slot: row.message.slot });
      }
      return { result: found.slice(0, limit) };
    });
  }

  onHint(listener: (slot: number) => void): void {
    this.hintListeners.push(listener);
  }

  claim(
    refs: readonly MessageRef[],
    leases: ReadonlyMap<number, number>,
    nowMs: number,
  ): Promise<ClaimedMessage[]> {
    return this.run(
      'claim',
      () => {
        const claimed: ClaimedMessage[] = [];
        for (const row of this.fenced(refs, leases)) {
          // Only scheduled rows due by nowMs: never a row some batch is delivering.
          if (row.state !== 'scheduled' || row.message.deliverAtMs > nowMs) continue;
          row.claimedEpoch = leases.get(row.message.slot)!;
          this.transition(row, 'delivering');
          const m = row.message;
          claimed.push({
            seq: row.seq,
            app: m.app,
            id: m.id,
            slot: m.slot,
            topic: m.topic,
            key: m.key,
            payload: m.payload,
            headers: m.headers,
            deliverAtMs: m.deliverAtMs,
            attempts: row.attempts,
            payloadEncoding: m.payloadEncoding,
            targets: m.targets ?? null,
            targetStates: m.targets
              ? (row.targetStates ?? m.targets.map(() => INITIAL_TARGET_STATE))
              : null,
            retry: m.retry ?? null,
            contentType: m.contentType ?? null,
            firstDeliverAtMs: row.firstDeliverAtMs ?? null,
          });
        }
        return { result: claimed, changed: claimed.map((message) => message.seq) };
      },
      { refs, nowMs },
    );
  }

  markDelivered(
    refs: readonly MessageRef[],
    leases: ReadonlyMap<number, number>,
    nowMs: number,
  ): Promise<number> {
    return this.run(
      'markDelivered',
      () => {
        const changed: number[] = [];
        for (const row of this.fenced(refs, leases)) {
          if (row.state !== 'delivering' || row.claimedEpoch !== leases.get(row.message.slot))
            continue;
          row.finishedAtMs = nowMs;
          row.claimedEpoch = null;
          row.attempts++;
          this.transition(row, 'delivered');
          changed.push(row.seq);
        }
        return { result: changed.length, changed };
      },
      { refs, nowMs },
    );
  }

  /** Attempt log rows, by seq (settleTargets writes them). */
  readonly attemptLog = new Map<number, AttemptRecord[]>();

  settleTargets(
    settlements: readonly TargetSettlement[],
    leases: ReadonlyMap<number, number>,
    nowMs: number,
  ): Promise<number> {
    return this.run(
      'settleTargets',
      () => {
        const changed: number[] = [];
        const bySeq = new Map(settlements.map((s) => [s.ref.seq, s]));
        for (const row of this.fenced(
          settlements.map((s) => s.ref),
          leases,
        )) {
          const settlement = bySeq.get(row.seq);
          if (!settlement) continue;
          if (row.state !== 'delivering' || row.claimedEpoch !== leases.get(row.message.slot))
            continue;
          if (settlement.deliverAtMs !== row.message.deliverAtMs) {
            row.firstDeliverAtMs ??= row.message.deliverAtMs;
            row.message = { ...row.message, deliverAtMs: settlement.deliverAtMs };
          }
          row.targetStates = [...settlement.targetStates];
          row.attempts += settlement.countedAttempts;
          if (settlement.lastError !== null) row.lastError = settlement.lastError;
          row.claimedEpoch = null;
          row.finishedAtMs = settlement.state === 'scheduled' ? null : nowMs;
          const log = this.attemptLog.get(row.seq) ?? [];
          log.push(...settlement.attempts);
          this.attemptLog.set(row.seq, log);
          this.transition(row, settlement.state);
          changed.push(row.seq);
        }
        return { result: changed.length, changed };
      },
      { refs: settlements.map((s) => s.ref), nowMs },
    );
  }

  listAttempts(app: string, id: string): Promise<LoggedAttempt[]> {
    const seq = this.byKey.get(key(app, id));
    const row = seq === undefined ? undefined : this.rows.get(seq);
    return Promise.resolve(
      (seq === undefined ? [] : (this.attemptLog.get(seq) ?? [])).map((attempt) => ({
        ...attempt,
        type: row?.message.targets?.[attempt.target]?.type ?? 'kafka',
      })),
    );
  }

  rearmFailed(
    app: string,
    id: string,
    targetStates: readonly TargetState[] | null,
    nowMs: number,
  ): Promise<{ seq: number; slot: number; wheelable: boolean } | null> {
    const seq = this.byKey.get(key(app, id));
    const row = seq === undefined ? undefined : this.rows.get(seq);
    if (!row || row.state !== 'failed') return Promise.resolve(null);
    row.firstDeliverAtMs ??= row.message.deliverAtMs;
    row.message = { ...row.message, deliverAtMs: nowMs };
    if (targetStates) row.targetStates = [...targetStates];
    else row.attempts = 0;
    row.finishedAtMs = null;
    this.transition(row, 'scheduled');
    return Promise.resolve({ seq: row.seq, slot: row.message.slot, wheelable: true });
  }

  /** Not used by the engine's unit tests; debouncing is tested against Postgres. */
  insertDebounced(): Promise<DebounceOutcome> {
    return Promise.reject(new Error('FakeStore does not debounce'));
  }

  updateScheduled(
    app: string,
    id: string,
    expectedVersion: number,
    change: MessageChange,
    context: InsertContext,
  ): Promise<MessageUpdated | null> {
    const seq = this.byKey.get(key(app, id));
    const row = seq === undefined ? undefined : this.rows.get(seq);
    if (!row || row.state !== 'scheduled' || (row.version ?? 1) !== expectedVersion)
      return Promise.resolve(null);
    const previousDeliverAtMs = row.message.deliverAtMs;
    const { targetStates, deliverAtMs, ...content } = change;
    row.message = {
      ...row.message,
      ...content,
      deliverAtMs: deliverAtMs ?? previousDeliverAtMs,
    };
    if (deliverAtMs !== null) row.firstDeliverAtMs = null;
    if (targetStates) row.targetStates = [...targetStates];
    row.version = (row.version ?? 1) + 1;
    const slot = row.message.slot;
    return Promise.resolve({
      seq: row.seq,
      slot,
      deliverAtMs: row.message.deliverAtMs,
      previousDeliverAtMs,
      version: row.version,
      wheelable: context.ownedEpochs.get(slot) === this.epochs.get(slot),
    });
  }

  /** Search and bulk cancel are SQL through and through: libs/postgres/test/integration/search.test.ts. */
  searchMessages(): Promise<SearchPage> {
    return Promise.reject(new Error('FakeStore has no search'));
  }

  cancelIds(): Promise<IdsCancelOutcome> {
    return Promise.reject(new Error('FakeStore has no bulk cancel'));
  }

  cancelMatching(): Promise<FilterCancelBatch> {
    return Promise.reject(new Error('FakeStore has no bulk cancel'));
  }

  releaseClaims(
    refs: readonly MessageRef[],
    leases: ReadonlyMap<number, number>,
    release: ClaimRelease,
    nowMs: number,
  ): Promise<number> {
    const { error, giveUp, countAttempt } = release;
    return this.run(
      'releaseClaims',
      () => {
        const changed: number[] = [];
        for (const row of this.fenced(refs, leases)) {
          if (row.state !== 'delivering' || row.claimedEpoch !== leases.get(row.message.slot))
            continue;
          row.lastError = error;
          row.claimedEpoch = null;
          if (countAttempt) row.attempts++;
          row.finishedAtMs = giveUp ? nowMs : null;
          this.transition(row, giveUp ? 'failed' : 'scheduled');
          changed.push(row.seq);
        }
        return { result: changed.length, changed };
      },
      { refs, nowMs, error, giveUp },
    );
  }

  // ---- internals ------------------------------------------------------------------------------

  /**
   * The rows of the refs (each once) whose slot's epoch equals the caller's lease, as the real
   * store's `fence` CTE: a ref whose slot is not its message's touches nothing.
   */
  private fenced(refs: readonly MessageRef[], leases: ReadonlyMap<number, number>): Row[] {
    const seen = new Set<number>();
    const rows: Row[] = [];
    for (const ref of refs) {
      if (seen.has(ref.seq)) continue;
      seen.add(ref.seq);
      const row = this.rows.get(ref.seq);
      if (!row || row.message.slot !== ref.slot) continue;
      const lease = leases.get(ref.slot);
      if (lease === undefined || lease !== this.epochs.get(ref.slot)) continue;
      rows.push(row);
    }
    return rows;
  }

  /** One round trip: waits a turn (and at the op's gate), fails as injected, records the call. */
  private async run<T>(
    op: StoreOp,
    apply: () => { result: T; changed?: readonly number[] },
    details: Partial<Pick<StoreCall, 'refs' | 'nowMs' | 'error' | 'giveUp'>> = {},
  ): Promise<T> {
    await nextTurn();
    const gate = this.gates.get(op);
    if (gate) {
      gate.waiting++;
      this.events.notify();
      await gate.passed;
      gate.waiting--;
    }
    const planned = this.failures.get(op)?.shift();
    const failure = planned === 'ok' ? undefined : planned;
    const record = (changed: readonly number[]): void => {
      this.calls.push({
        op,
        at: Date.now(),
        tick: this.events.tick(),
        refs: details.refs ?? [],
        changed,
        ...(details.nowMs === undefined ? {} : { nowMs: details.nowMs }),
        ...(details.error === undefined ? {} : { error: details.error }),
        ...(details.giveUp === undefined ? {} : { giveUp: details.giveUp }),
        ...(failure === undefined ? {} : { failed: failure }),
      });
    };
    if (failure === 'before') {
      record([]);
      this.events.notify();
      throw new DependencyUnavailableError('postgres', new Error(`injected: ${op} failed`));
    }
    const { result, changed = [] } = apply();
    record(changed);
    this.events.notify();
    const replyGate = this.replyGates.get(op);
    if (replyGate) {
      replyGate.waiting++;
      this.events.notify();
      await replyGate.passed;
      replyGate.waiting--;
    }
    if (failure === 'after') {
      throw new DependencyUnavailableError(
        'postgres',
        new Error(`injected: ${op} committed, then the connection broke`),
      );
    }
    return result;
  }

  private create(message: NewMessage, now: number): Row {
    const row: Row = {
      seq: this.nextSeq++,
      message,
      state: 'scheduled',
      claimedEpoch: null,
      attempts: 0,
      lastError: null,
      createdAtMs: now,
      finishedAtMs: null,
      history: [{ state: 'scheduled', at: now, tick: this.events.tick() }],
    };
    this.rows.set(row.seq, row);
    this.byKey.set(key(message.app, message.id), row.seq);
    return row;
  }

  private transition(row: Row, state: MessageState): void {
    row.state = state;
    row.history.push({ state, at: Date.now(), tick: this.events.tick() });
  }

  private toStored(row: Row): StoredMessage {
    const m = row.message;
    return {
      targets: m.targets ?? null,
      targetStates: m.targets
        ? (row.targetStates ?? m.targets.map(() => INITIAL_TARGET_STATE))
        : null,
      retry: m.retry ?? null,
      contentType: m.contentType ?? null,
      firstDeliverAtMs: row.firstDeliverAtMs ?? null,
      app: m.app,
      id: m.id,
      slot: m.slot,
      topic: m.topic,
      key: m.key,
      payload: m.payload,
      payloadEncoding: m.payloadEncoding,
      headers: m.headers,
      deliverAtMs: m.deliverAtMs,
      state: row.state,
      createdAtMs: row.createdAtMs,
      finishedAtMs: row.finishedAtMs,
      attempts: row.attempts,
      lastError: row.lastError,
      fingerprint: m.fingerprint,
      version: row.version ?? 1,
    };
  }
}

function key(app: string, id: string): string {
  return `${app}\0${id}`;
}

/** One delivery call: when it was made, its records, and how it ended. */
export interface PublishAttempt {
  readonly at: number;
  readonly tick: number;
  readonly records: readonly OutboundRecord[];
  /** Set once answered, if any record of it was delivered. */
  ackedAt?: number;
  ackTick?: number;
  /** Set when the whole call failed. */
  error?: PublishError;
  /** Ids of records that failed on their own (failRecordIf), with the error. */
  readonly recordErrors: Map<string, PublishError>;
}

/**
 * The delivery port, recording what it was given. `failNext` and `failIf` fail a whole call;
 * `failRecordIf` fails single records (as Kafka fails one topic's request and not another's).
 */
export class FakePublisher implements Delivery {
  readonly attempts: PublishAttempt[] = [];
  private failures: PublishError[] = [];
  private failWhen: ((records: readonly OutboundRecord[]) => PublishError | undefined) | undefined;
  private failRecordWhen: ((record: OutboundRecord) => PublishError | undefined) | undefined;
  private gate: Gate | undefined;

  constructor(private readonly events: Events) {}

  /** The next delivery calls fail with these errors, one each. */
  failNext(...errors: PublishError[]): void {
    this.failures.push(...errors);
  }

  /** Every delivery call whose records `decide` returns an error for fails with it. */
  failIf(decide: (records: readonly OutboundRecord[]) => PublishError | undefined): void {
    this.failWhen = decide;
  }

  /** Every record `decide` returns an error for fails with it; the others of its call succeed. */
  failRecordIf(decide: ((record: OutboundRecord) => PublishError | undefined) | undefined): void {
    this.failRecordWhen = decide;
  }

  /** Delivery calls are made (recorded) but not answered until the returned function is called. */
  holdAcks(): () => void {
    const gate = new Gate();
    this.gate = gate;
    return () => {
      if (this.gate === gate) this.gate = undefined;
      gate.open();
    };
  }

  /** How many delivery calls wait for their answer at the gate. */
  get waiting(): number {
    return this.gate?.waiting ?? 0;
  }

  openAll(): void {
    this.gate?.open();
    this.gate = undefined;
    this.failures = [];
    this.failWhen = undefined;
    this.failRecordWhen = undefined;
  }

  /** The attempts that included the message with this `hourglass-id`. */
  attemptsOf(id: string): PublishAttempt[] {
    return this.attempts.filter((attempt) =>
      attempt.records.some((r) => r.headers['hourglass-id'] === id),
    );
  }

  /** Delivered records, each with the time its request was made and answered. */
  acked(): Array<{ id: string; deliverAtMs: number; at: number; ackTick: number }> {
    const acked: Array<{ id: string; deliverAtMs: number; at: number; ackTick: number }> = [];
    for (const attempt of this.attempts) {
      if (attempt.ackTick === undefined) continue;
      for (const record of attempt.records) {
        const id = record.headers['hourglass-id']!;
        if (attempt.recordErrors.has(id)) continue;
        acked.push({
          id,
          deliverAtMs: Number(record.headers['hourglass-deliver-at']),
          at: attempt.at,
          ackTick: attempt.ackTick,
        });
      }
    }
    return acked;
  }

  /** How many times the message was delivered. */
  ackedCount(id: string): number {
    return this.acked().filter((record) => record.id === id).length;
  }

  async deliver(messages: readonly ClaimedMessage[]): Promise<DeliveryOutcome[]> {
    const records = messages.map(kafkaRecordOf);
    const attempt: PublishAttempt = {
      at: Date.now(),
      tick: this.events.tick(),
      records,
      recordErrors: new Map(),
    };
    this.attempts.push(attempt);
    this.events.notify();
    await nextTurn();
    const gate = this.gate;
    if (gate) {
      gate.waiting++;
      this.events.notify();
      await gate.passed;
      gate.waiting--;
    }
    const error = this.failures.shift() ?? this.failWhen?.(records);
    if (error) {
      attempt.error = error;
      this.events.notify();
      return records.map(() => ({
        kind: 'failed',
        target: 'kafka',
        error: error.message,
        retriable: error.retriable,
      }));
    }
    const outcomes = records.map((record): DeliveryOutcome => {
      const failure = this.failRecordWhen?.(record);
      if (!failure) return { kind: 'delivered', target: 'kafka' };
      attempt.recordErrors.set(record.headers['hourglass-id']!, failure);
      return {
        kind: 'failed',
        target: 'kafka',
        error: failure.message,
        retriable: failure.retriable,
      };
    });
    if (attempt.recordErrors.size < records.length) {
      attempt.ackedAt = Date.now();
      attempt.ackTick = this.events.tick();
    }
    this.events.notify();
    return outcomes;
  }
}

/** Keeps what the engine logs, for assertions and for a failing test's message. */
export class TestLogger implements Logger {
  readonly entries: Array<{ level: string; msg: string | undefined; obj: object }> = [];
  debug(obj: object, msg?: string): void {
    this.entries.push({ level: 'debug', msg, obj });
  }
  info(obj: object, msg?: string): void {
    this.entries.push({ level: 'info', msg, obj });
  }
  warn(obj: object, msg?: string): void {
    this.entries.push({ level: 'warn', msg, obj });
  }
  error(obj: object, msg?: string): void {
    this.entries.push({ level: 'error', msg, obj });
  }
}

/** One call the fake HTTP caller got, with when it was made. */
export interface HttpCallMade {
  readonly at: number;
  readonly request: HttpCallRequest;
}

export type HttpScript = (
  request: HttpCallRequest,
  index: number,
) => Partial<HttpCallResult> | 'hang';

/**
 * The HTTP caller port for engine unit tests: records every call and answers as `script` says
 * (a success by default). `hang` keeps a call open until `releaseHung()`, like a receiver that
 * does not answer.
 */
export class FakeHttpCaller implements HttpCaller {
  readonly calls: HttpCallMade[] = [];
  private hung: Array<() => void> = [];

  constructor(
    private readonly events: Events,
    private script: HttpScript = () => ({}),
  ) {}

  answer(script: HttpScript): void {
    this.script = script;
  }

  callsTo(url: string): HttpCallMade[] {
    return this.calls.filter((call) => call.request.url === url);
  }

  releaseHung(): void {
    for (const release of this.hung.splice(0)) release();
  }

  async call(request: HttpCallRequest): Promise<HttpCallResult> {
    const index = this.calls.length;
    this.calls.push({ at: Date.now(), request });
    this.events.notify();
    const reply = this.script(request, index);
    if (reply === 'hang') {
      await new Promise<void>((resolve) => this.hung.push(resolve));
      return {
        ok: false,
        status: null,
        durationMs: request.timeoutMs,
        error: `timed out after ${request.timeoutMs} ms`,
        retryAfterMs: null,
        gone: false,
        responseSnippet: null,
      };
    }
    const ok = reply.ok ?? true;
    return {
      ok,
      status: reply.status ?? (ok ? 200 : 500),
      durationMs: reply.durationMs ?? 1,
      error: ok ? null : (reply.error ?? `HTTP ${reply.status ?? 500}`),
      retryAfterMs: reply.retryAfterMs ?? null,
      gone: reply.gone ?? false,
      responseSnippet: reply.responseSnippet ?? null,
    };
  }

  stop(): Promise<void> {
    this.releaseHung();
    return Promise.resolve();
  }
}
